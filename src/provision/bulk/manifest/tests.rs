use super::*;
use crate::ticket::{
    Audience, Claims, Device, Evidence, Fido2Op, Op, SigningKey, TicketAlg, sign_compact,
};
use zeroize::Zeroizing;

const MAX: usize = crate::ticket::DEFAULT_MAX_BYTES;

fn key() -> SigningKey {
    SigningKey::generate(TicketAlg::EdDsa, &Zeroizing::new([3u8; 32]))
        .unwrap()
        .0
}

fn ticket(jti: &str, serial: Option<u32>) -> String {
    let claims = Claims {
        ver: crate::ticket::VERSION,
        iss: "https://idp.example.org".into(),
        sub: format!("user-{jti}@example.org"),
        aud: Audience::One("bulk-station".into()),
        iat: 1_700_000_000,
        nbf: 1_700_000_000,
        exp: 1_700_000_900,
        jti: j(jti),
        ial: 2,
        evidence: Evidence {
            method: "in_person_document".into(),
            verifier: "hr".into(),
            time: None,
            reference: None,
        },
        ops: vec![Op::Fido2(Fido2Op {
            rp_id: "example.org".into(),
            user: None,
            user_name: None,
        })],
        replaces: None,
        device: serial.map(|serial| Device {
            serial,
            model: None,
        }),
        policy: "default".into(),
        approvals: 1,
    };
    sign_compact(&claims, &key(), "k1").unwrap()
}

/// A valid ticket id (16 characters at least) from a short name.
fn j(s: &str) -> String {
    format!("{s}-000000000000000")
}

fn jsonl(rows: &[serde_json::Value]) -> Vec<u8> {
    rows.iter()
        .map(|r| format!("{r}\n"))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn json_lines_with_devices_and_labels() {
    let text = jsonl(&[
        serde_json::json!({"ticket": ticket("a", None), "label": "desk 1"}),
        serde_json::json!({"ticket": ticket("b", None), "device": "serial:200"}),
        serde_json::json!({"ticket": ticket("c", Some(300))}),
        serde_json::json!({"ticket": ticket("d", None), "device": 400}),
    ]);
    let m = parse(&text, Format::JsonLines, MAX).unwrap();
    let got: Vec<_> = m
        .entries
        .iter()
        .map(|e| (e.line, e.jti.clone(), e.serial, e.label.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (1, j("a"), None, Some("desk 1")),
            (2, j("b"), Some(200), None),
            (3, j("c"), Some(300), None),
            (4, j("d"), Some(400), None),
        ]
    );
    assert_eq!(m.entries[0].sub, "user-a@example.org");
}

#[test]
fn csv_with_header_any_column_order() {
    let text = format!(
        "label,ticket,device\n\"Smith, Ann\",{},\n,{},12345678\n\n",
        ticket("a", None),
        ticket("b", None)
    );
    let m = parse(text.as_bytes(), Format::Csv, MAX).unwrap();
    assert_eq!(m.entries.len(), 2);
    assert_eq!(m.entries[0].label.as_deref(), Some("Smith, Ann"));
    assert_eq!(m.entries[0].line, 2);
    assert_eq!(m.entries[1].serial, Some(12_345_678));
    assert_eq!(m.entries[1].line, 3);
}

#[test]
fn format_detection() {
    let p = Path::new;
    assert_eq!(Format::detect(p("m.csv"), b"{"), Format::Csv);
    assert_eq!(Format::detect(p("m.jsonl"), b"ticket"), Format::JsonLines);
    assert_eq!(
        Format::detect(p("m"), b"\n  {\"ticket\":1}"),
        Format::JsonLines
    );
    assert_eq!(Format::detect(p("m.txt"), b"ticket,label\n"), Format::Csv);
}

fn err(text: &[u8], format: Format) -> String {
    parse(text, format, MAX).unwrap_err().to_string()
}

#[test]
fn malformed_lines_are_named() {
    let good = serde_json::json!({"ticket": ticket("a", None)}).to_string();
    let cases: Vec<(Vec<u8>, Format, &str)> = vec![
        (
            format!("{good}\n{{\"ticket\": \n").into_bytes(),
            Format::JsonLines,
            "manifest line 2: not a JSON object",
        ),
        (
            format!("{good}\n\n{{\"ticket\": \"x.y.z\"}}\n").into_bytes(),
            Format::JsonLines,
            "manifest line 3: the ticket is malformed",
        ),
        (
            format!(
                "{good}\n{{\"ticket\": \"{}\", \"pin\": \"1234\"}}\n",
                ticket("b", None)
            )
            .into_bytes(),
            Format::JsonLines,
            "manifest line 2: not a JSON object",
        ),
        (
            format!(
                "{{\"ticket\": \"{}\", \"device\": \"reader 1\"}}\n",
                ticket("b", None)
            )
            .into_bytes(),
            Format::JsonLines,
            "manifest line 1: device \"reader 1\" is not a key serial",
        ),
        (
            format!(
                "{{\"ticket\": \"{}\", \"device\": [1]}}\n",
                ticket("b", None)
            )
            .into_bytes(),
            Format::JsonLines,
            "\"device\" must be a string or a number",
        ),
        (
            format!("{}\n", ticket("a", None)).into_bytes(),
            Format::Csv,
            "manifest line 1: unknown column",
        ),
        (
            b"device,label\n1,x\n".to_vec(),
            Format::Csv,
            "no \"ticket\" column",
        ),
        (
            format!("ticket,label\n{},a,b\n", ticket("a", None)).into_bytes(),
            Format::Csv,
            "manifest line 2: CSV error",
        ),
        (
            format!("ticket\n{}\n\"\"\n ok\n", ticket("a", None)).into_bytes(),
            Format::Csv,
            "manifest line 4: the ticket is malformed",
        ),
        (b"\n\n".to_vec(), Format::JsonLines, "no ticket"),
        (b"ticket,label\n".to_vec(), Format::Csv, "no ticket"),
        (
            vec![0xFF, 0xFE, b'\n'],
            Format::JsonLines,
            "manifest line 1",
        ),
    ];
    for (text, format, want) in cases {
        let e = err(&text, format);
        assert!(e.contains(want), "want {want:?} in {e:?}");
    }
}

#[test]
fn duplicate_jti_names_both_lines() {
    let text = jsonl(&[
        serde_json::json!({"ticket": ticket("a", None)}),
        serde_json::json!({"ticket": ticket("b", None)}),
        serde_json::json!({"ticket": ticket("a", None), "label": "again"}),
    ]);
    let e = err(&text, Format::JsonLines);
    assert!(
        e.contains("line 3") && e.contains(&format!("{:?}", j("a"))) && e.contains("line 1"),
        "{e}"
    );
}

#[test]
fn device_conflicts() {
    let text = jsonl(&[serde_json::json!({"ticket": ticket("a", Some(5)), "device": "6"})]);
    let e = err(&text, Format::JsonLines);
    assert!(e.contains("serial 6") && e.contains("serial 5"), "{e}");
    let text = jsonl(&[
        serde_json::json!({"ticket": ticket("a", Some(5))}),
        serde_json::json!({"ticket": ticket("b", None), "device": 5}),
    ]);
    let e = err(&text, Format::JsonLines);
    assert!(
        e.contains("line 2: serial 5") && e.contains("line 1"),
        "{e}"
    );
}

#[test]
fn size_limits_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    // A file over the limit is refused from its size alone (sparse: no
    // gigabytes written).
    let big = dir.path().join("big.jsonl");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(MAX_MANIFEST_BYTES + 1).unwrap();
    let e = load(&big, MAX).unwrap_err();
    assert!(matches!(e, ManifestError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("larger than"), "{e}");
    // One over-long line.
    let line = format!(
        "{{\"ticket\": \"{}\"}}\n",
        "A".repeat(MAX + 2 * LINE_OVERHEAD)
    );
    let e = err(line.as_bytes(), Format::JsonLines);
    assert!(e.contains("manifest line 1") && e.contains("bytes"), "{e}");
    // An oversized ticket in CSV.
    let csv = format!("ticket\n{}\n", "A".repeat(MAX + 1));
    let e = err(csv.as_bytes(), Format::Csv);
    assert!(
        e.contains("manifest line 2") && e.contains("malformed"),
        "{e}"
    );
    // Missing file.
    let e = load(&dir.path().join("nope.csv"), MAX).unwrap_err();
    assert!(e.to_string().contains("nope.csv"), "{e}");
}

#[test]
fn too_many_entries() {
    let t = ticket("a", None);
    let mut text = String::from("ticket\n");
    for _ in 0..=MAX_ENTRIES {
        text.push_str(&t);
        text.push('\n');
    }
    let e = err(text.as_bytes(), Format::Csv);
    assert!(e.contains("more than 10000 tickets"), "{e}");
}

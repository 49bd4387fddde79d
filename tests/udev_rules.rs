//! udev/70-keyward-fido.rules: generated from udev/fidodevs (and current),
//! well-formed, and giving FIDO keys' hidraw nodes — and nothing else — to
//! the seat user (uaccess) and group keyward.
//!
//! The lint checks what udev would refuse or silently ignore (unknown keys,
//! a match operator on an assignment, a GOTO without its LABEL, bad modes
//! and ids). The match test runs the rules, in order and with their GOTOs,
//! over the properties udev gives a YubiKey's FIDO hidraw node on systemd
//! 244+ (ID_SECURITY_TOKEN from 60-fido-id.rules), the same key on older
//! udev (vendor/product only), and a USB keyboard's hidraw node.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

const MATCH_KEYS: &[&str] = &["ACTION", "SUBSYSTEM", "KERNEL", "ENV", "ATTRS"];
const ASSIGN_KEYS: &[&str] = &["GROUP", "MODE", "TAG", "GOTO", "LABEL"];

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Token {
    key: String,
    attr: Option<String>,
    op: String,
    value: String,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rules_text() -> String {
    std::fs::read_to_string(root().join("udev/70-keyward-fido.rules")).unwrap()
}

/// One rule line to its tokens, or what is wrong with it.
fn parse_line(line: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        let key_end = rest
            .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .ok_or("a key without operator")?;
        let key = &rest[..key_end];
        rest = &rest[key_end..];
        let mut attr = None;
        if let Some(r) = rest.strip_prefix('{') {
            let end = r.find('}').ok_or("unclosed {")?;
            attr = Some(r[..end].to_string());
            rest = &r[end + 1..];
        }
        let op = ["==", "!=", "+=", "-=", ":=", "="]
            .into_iter()
            .find(|op| rest.starts_with(op))
            .ok_or_else(|| format!("no operator after {key}"))?;
        rest = rest[op.len()..]
            .strip_prefix('"')
            .ok_or_else(|| format!("{key}: value not quoted"))?;
        let end = rest
            .find('"')
            .ok_or_else(|| format!("{key}: unterminated value"))?;
        out.push(Token {
            key: key.into(),
            attr,
            op: op.into(),
            value: rest[..end].into(),
        });
        rest = rest[end + 1..].trim_start();
        if !rest.is_empty() {
            rest = rest
                .strip_prefix(',')
                .ok_or_else(|| format!("expected ',' before {rest:?}"))?
                .trim_start();
        }
    }
    Ok(out)
}

/// `(line number, tokens)` of every rule.
fn rules() -> Vec<(usize, Vec<Token>)> {
    rules_text()
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| {
            let t = parse_line(l).unwrap_or_else(|e| panic!("line {}: {e}: {l}", i + 1));
            (i + 1, t)
        })
        .collect()
}

fn lint(rules: &[(usize, Vec<Token>)]) -> Vec<String> {
    let mut problems = Vec::new();
    let labels: Vec<&str> = rules
        .iter()
        .flat_map(|(_, t)| {
            t.iter()
                .filter(|x| x.key == "LABEL")
                .map(|x| x.value.as_str())
        })
        .collect();
    let hex4 = |v: &str| {
        v.len() == 4
            && v.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    };
    let mut seen = std::collections::HashSet::new();
    for (n, toks) in rules {
        let mut p = |m: String| problems.push(format!("line {n}: {m}"));
        if !seen.insert(toks.clone()) {
            p("duplicate rule".into());
        }
        let matches = toks.iter().filter(|t| t.op == "==" || t.op == "!=").count();
        for t in toks {
            let is_match = t.op == "==" || t.op == "!=";
            let known = if is_match { MATCH_KEYS } else { ASSIGN_KEYS };
            if !known.contains(&t.key.as_str()) {
                p(format!(
                    "{} with operator {} is not a {} key here",
                    t.key,
                    t.op,
                    if is_match { "match" } else { "assignment" }
                ));
            }
            if matches!(t.key.as_str(), "ENV" | "ATTRS") != t.attr.is_some() {
                p(format!("{}: attribute braces wrong", t.key));
            }
            match t.key.as_str() {
                "GOTO" if !labels.contains(&t.value.as_str()) => {
                    p(format!("GOTO {:?} has no LABEL", t.value))
                }
                "MODE" if t.value != "0660" => p(format!("MODE {:?}: keys get 0660", t.value)),
                "GROUP" if t.value != "keyward" => p(format!("GROUP {:?}", t.value)),
                "ATTRS" if !hex4(&t.value) => {
                    p(format!("{:?} is not a 4-digit lowercase hex id", t.value))
                }
                _ => {}
            }
        }
        let assigns = |k: &str| {
            toks.iter()
                .any(|t| t.key == k && t.op != "==" && t.op != "!=")
        };
        if assigns("GROUP") {
            if matches == 0 {
                p("assigns without matching anything".into());
            }
            if !(assigns("MODE")
                && toks
                    .iter()
                    .any(|t| t.key == "TAG" && t.op == "+=" && t.value == "uaccess"))
            {
                p("GROUP without MODE=\"0660\" and TAG+=\"uaccess\"".into());
            }
        }
    }
    if labels.len()
        != labels
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len()
    {
        problems.push("a LABEL defined twice".into());
    }
    problems
}

/// A device as udev sees it: its properties and the sysfs attributes of it
/// and its parents.
struct Device {
    props: HashMap<&'static str, &'static str>,
    attrs: Vec<HashMap<&'static str, &'static str>>,
}

/// What the rules did to it.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    group: Option<String>,
    mode: Option<String>,
    tags: Vec<String>,
}

fn run_rules(rules: &[(usize, Vec<Token>)], d: &Device) -> Outcome {
    let mut out = Outcome::default();
    let mut goto: Option<String> = None;
    for (_, toks) in rules {
        if let Some(l) = &goto {
            if toks.iter().any(|t| t.key == "LABEL" && &t.value == l) {
                goto = None;
            }
            continue;
        }
        let holds = |t: &Token| {
            let have = match t.key.as_str() {
                "ENV" => d.props.get(t.attr.as_deref().unwrap()).copied(),
                "ATTRS" => d.attrs.iter().find_map(|a| {
                    a.get(t.attr.as_deref().unwrap())
                        .copied()
                        .filter(|v| *v == t.value)
                }),
                k => d.props.get(k).copied(),
            };
            (have == Some(t.value.as_str())) == (t.op == "==")
        };
        if !toks
            .iter()
            .filter(|t| t.op == "==" || t.op == "!=")
            .all(holds)
        {
            continue;
        }
        for t in toks {
            match (t.key.as_str(), t.op.as_str()) {
                ("GROUP", _) => out.group = Some(t.value.clone()),
                ("MODE", _) => out.mode = Some(t.value.clone()),
                ("TAG", "+=") => out.tags.push(t.value.clone()),
                ("GOTO", _) => goto = Some(t.value.clone()),
                _ => {}
            }
        }
    }
    out
}

fn granted() -> Outcome {
    Outcome {
        group: Some("keyward".into()),
        mode: Some("0660".into()),
        tags: vec!["uaccess".into()],
    }
}

/// A YubiKey 5 NFC's FIDO interface (1050:0407) as hidraw, optionally with
/// the properties systemd 244+'s 60-fido-id.rules adds.
fn yubikey_fido(modern: bool) -> Device {
    let mut props = HashMap::from([
        ("ACTION", "add"),
        ("SUBSYSTEM", "hidraw"),
        ("DEVNAME", "/dev/hidraw3"),
    ]);
    if modern {
        props.insert("ID_FIDO_TOKEN", "1");
        props.insert("ID_SECURITY_TOKEN", "1");
    }
    Device {
        props,
        attrs: vec![
            HashMap::new(),
            HashMap::from([("bInterfaceClass", "03")]),
            HashMap::from([
                ("idVendor", "1050"),
                ("idProduct", "0407"),
                ("product", "YubiKey OTP+FIDO+CCID"),
            ]),
        ],
    }
}

/// A Logitech USB keyboard's hidraw node (046d:c31c).
fn keyboard() -> Device {
    Device {
        props: HashMap::from([
            ("ACTION", "add"),
            ("SUBSYSTEM", "hidraw"),
            ("DEVNAME", "/dev/hidraw0"),
        ]),
        attrs: vec![
            HashMap::new(),
            HashMap::from([("bInterfaceClass", "03"), ("bInterfaceProtocol", "01")]),
            HashMap::from([
                ("idVendor", "046d"),
                ("idProduct", "c31c"),
                ("product", "USB Keyboard"),
            ]),
        ],
    }
}

#[test]
fn rules_are_generated_from_the_data_file_and_current() {
    let out = Command::new("sh")
        .arg(root().join("udev/genrules.sh"))
        .arg(root().join("udev/fidodevs"))
        .output()
        .expect("run udev/genrules.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        rules_text(),
        "udev/70-keyward-fido.rules is stale: run udev/genrules.sh udev/fidodevs > udev/70-keyward-fido.rules"
    );
}

#[test]
fn the_generator_refuses_bad_and_duplicate_ids() {
    let dir = tempfile::tempdir().unwrap();
    for (text, want) in [
        ("1050 04O7 typo\n", "4-digit lowercase hex"),
        ("1050 0407 a\n1050 0407 b\n", "listed twice"),
    ] {
        let f = dir.path().join("devs");
        std::fs::write(&f, text).unwrap();
        let out = Command::new("sh")
            .arg(root().join("udev/genrules.sh"))
            .arg(&f)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(want) && (err.contains(":1:") || err.contains(":2:")),
            "{err}"
        );
    }
}

#[test]
fn rules_lint_clean() {
    let r = rules();
    assert!(r.len() > 10);
    let problems = lint(&r);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_lint_catches_what_udev_would_refuse_or_ignore() {
    for (bad, want) in [
        (
            r#"SUBSYSTEM=="hidraw", GROUP=="keyward", MODE="0660", TAG+="uaccess""#,
            "is not a match key",
        ),
        (r#"SUBSYSTEM=="hidraw", GOTO="nowhere""#, "has no LABEL"),
        (
            r#"ATTRS{idVendor}=="1O50", GROUP="keyward", MODE="0660", TAG+="uaccess""#,
            "4-digit",
        ),
        (
            r#"SUBSYSTEM=="hidraw", GROUP="keyward", MODE="0666", TAG+="uaccess""#,
            "keys get 0660",
        ),
        (r#"SUBSYSTEM=="hidraw", GROUP="keyward""#, "without MODE"),
    ] {
        let r = vec![(1, parse_line(bad).unwrap())];
        let problems = lint(&r).join("\n");
        assert!(problems.contains(want), "{bad}: {problems}");
    }
    assert!(
        parse_line(r#"SUBSYSTEM=="hidraw" GROUP="keyward""#).is_err(),
        "missing comma"
    );
}

#[test]
fn a_fido_key_is_granted_and_a_keyboard_is_not() {
    let r = rules();
    assert_eq!(
        run_rules(&r, &yubikey_fido(true)),
        granted(),
        "systemd 244+"
    );
    assert_eq!(
        run_rules(&r, &yubikey_fido(false)),
        granted(),
        "older udev, by vendor/product"
    );
    assert_eq!(run_rules(&r, &keyboard()), Outcome::default(), "a keyboard");

    // A FIDO key whose ids are in no list: found by its descriptor alone.
    let mut unknown = yubikey_fido(true);
    unknown.attrs[2] = HashMap::from([("idVendor", "abcd"), ("idProduct", "0001")]);
    assert_eq!(run_rules(&r, &unknown), granted());
    // The same key's input-subsystem node and its removal change nothing.
    let mut input = yubikey_fido(true);
    input.props.insert("SUBSYSTEM", "input");
    assert_eq!(run_rules(&r, &input), Outcome::default());
    let mut removed = yubikey_fido(true);
    removed.props.insert("ACTION", "remove");
    assert_eq!(run_rules(&r, &removed), Outcome::default());
}

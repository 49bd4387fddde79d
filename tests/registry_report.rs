//! The fleet report end to end, on SQLite and on a real PostgreSQL: three
//! stations with real ledgers record runs, bindings, a revocation, a
//! replacement and an exception through the ledger API, sync to a registry
//! on loopback; `keyward registry report --json` must give exact numbers
//! per station and overall (and agree with each station's own `keyward
//! report`), and `GET /metrics` must parse and say the same. A refused push
//! counts as refused; a cut-back ledger shows as an incident.
#![cfg(feature = "sim")]

mod sync_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use keyward::store::{
    BindingState, CredentialRecord, DeviceRecord, EnrollmentRecord, RunEnd, RunKind, RunOutcome,
    RunStart, TicketRecord,
};
use keyward::sync::client;
use serde_json::{Value, json};
use sync_support::{Db, Kind, RegistryServer, Station, now, rt};

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite { $( #[test] fn $name() { if let Some(db) = super::Db::new(super::Kind::Sqlite) { super::$name(&db, super::Kind::Sqlite) } } )* }
        mod on_postgres { $( #[test] #[ignore = "needs PostgreSQL (scripts/test installs it)"] fn $name() { if let Some(db) = super::Db::new(super::Kind::Postgres) { super::$name(&db, super::Kind::Postgres) } } )* }
    };
}

both!(fleet_report_and_metrics);

fn keyward() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"));
    c.env_remove("KEYWARD_CONFIG")
        .env_remove("KEYWARD_DB")
        .env("RUST_LOG", "warn");
    c
}

fn json_of(args: &[&str]) -> Value {
    let o = keyward().args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("one JSON document")
}

/// A run that started at `start` and ended `secs` later.
fn run(st: &mut Station, kind: RunKind, start: i64, secs: i64, end: RunEnd) {
    let s = RunStart {
        actor: "test",
        ..RunStart::default()
    };
    let id = st.ledger.run_started(kind, &s, start).unwrap();
    st.ledger
        .run_finished(&id, &end, "test", start + secs)
        .unwrap();
}

fn ok() -> RunEnd {
    RunEnd::completed(None)
}

fn record(subject: &str, serial: &str) -> EnrollmentRecord {
    EnrollmentRecord {
        subject: subject.into(),
        ticket: TicketRecord {
            jti: format!("jti-{serial}"),
            digest: "ab".repeat(32),
            issuer: "https://idp.example.com".into(),
            ial: Some(2),
        },
        device: DeviceRecord {
            kind: "yubikey".into(),
            serial: Some(serial.into()),
            aaguid: None,
            model: None,
            firmware: None,
        },
        policy: Some("default".into()),
        credentials: vec![CredentialRecord {
            kind: "piv".into(),
            credential_id: None,
            rp_id: None,
            slot: Some("9a".into()),
            algorithm: "p256".into(),
            public_key: vec![1, 2, 3],
            attestation: None,
            attestation_format: None,
        }],
        actor: "test".into(),
    }
}

/// kiosk-1: enroll runs completed in 10, 20 and 40 s, one refused, one
/// failed, one aborted, and one completed 40 days ago in 100 s; a completed
/// revoke and unblock; two bindings, one revoked; one exception.
fn kiosk_1(st: &mut Station) {
    let t = now() - 3600;
    for (i, d) in [10, 20, 40].into_iter().enumerate() {
        run(st, RunKind::Enroll, t + 100 * i as i64, d, ok());
    }
    let mut refused = RunEnd::refused("policy-aaguid", "not allowed");
    refused.aaguid = Some("aa".repeat(16));
    run(st, RunKind::Enroll, t + 400, 3, refused);
    run(
        st,
        RunKind::Enroll,
        t + 500,
        2,
        RunEnd::failed("device-removed", "gone"),
    );
    let mut aborted = RunEnd::failed("cancelled", "operator");
    aborted.outcome = RunOutcome::Aborted;
    run(st, RunKind::Enroll, t + 600, 1, aborted);
    run(st, RunKind::Revoke, t + 700, 1, ok());
    run(st, RunKind::Unblock, t + 800, 5, ok());
    let old = now() - 40 * 86_400;
    run(st, RunKind::Enroll, old, 100, ok());
    let (b, _) = st.enroll("alice");
    st.enroll("bob");
    st.ledger
        .transition(&b, BindingState::Revoked, "left", "test", now())
        .unwrap();
    st.ledger
        .add_exception(
            "attestation-none",
            "bob",
            "legacy",
            "ciso",
            now() + 86_400,
            now(),
        )
        .unwrap();
}

/// kiosk-2: enroll runs completed in 5 and 7 s, a replace in 30 s, a
/// completed return; two bindings, one of them replaced by a third.
fn kiosk_2(st: &mut Station) {
    let t = now() - 1800;
    run(st, RunKind::Enroll, t, 5, ok());
    run(st, RunKind::Enroll, t + 10, 7, ok());
    run(st, RunKind::Replace, t + 20, 30, ok());
    run(st, RunKind::Return, t + 60, 4, ok());
    let (dave, _) = st.enroll("dave");
    st.enroll("erin");
    st.ledger
        .commit_replacement(&dave, &record("dave", "77000001"), "damaged", now())
        .unwrap();
}

fn station(reg: &RegistryServer, id: &str) -> Station {
    let st = Station::new(id);
    reg.enroll(id, &st.public_key());
    st
}

fn fleet_report_and_metrics(db: &Db, _: Kind) {
    let reg = RegistryServer::start(&db.url);
    let rt = rt();
    let url = reg.url();
    let (mut k1, mut k2, mut k3) = (
        station(&reg, "kiosk-1"),
        station(&reg, "kiosk-2"),
        station(&reg, "kiosk-3"),
    );
    kiosk_1(&mut k1);
    kiosk_2(&mut k2);
    // kiosk-3: four bindings, and a ledger restored from a backup pushing
    // a shorter chain: refused as audit-cut, recorded as an incident.
    k3.enroll_many(2);
    let backup = k3.dir.path().join("backup");
    k3.backup(&backup);
    k3.enroll_many(2);
    let mut pushes = 0;
    for st in [&mut k1, &mut k2, &mut k3] {
        pushes += st.drain(&rt, &url).unwrap().pushes;
        assert_eq!(st.backlog(), 0);
    }
    let mut old = keyward::store::Ledger::open_default_key(&backup.join("ledger.db")).unwrap();
    let mut o = client::Options::new(&url, "kiosk-3");
    o.timeout = Duration::from_secs(2);
    let e = rt
        .block_on(client::Client::new(o).unwrap().drain(&mut old, now))
        .unwrap_err();
    assert!(e.to_string().contains("audit-cut"), "{e}");
    // An unsigned push: refused before anything is read.
    let status = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{url}/v1/push"))
            .body("{}")
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status.as_u16(), 401);

    let r = json_of(&[
        "registry", "report", "--json", "--since", "7d", "--db", &db.url,
    ]);
    assert_eq!((&r["version"], &r["ok"]), (&json!(1), &json!(true)));
    let by: BTreeMap<String, &Value> = r["stations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["station"].as_str().unwrap().to_string(), s))
        .collect();
    assert_eq!(by.len(), 3);
    let (s1, s2, s3, all) = (by["kiosk-1"], by["kiosk-2"], by["kiosk-3"], &r["overall"]);
    let runs = |f: &Value| {
        let r = &f["runs"];
        [
            &r["started"],
            &r["completed"],
            &r["refused"],
            &r["failed"],
            &r["aborted"],
        ]
        .map(|v| v.as_u64().unwrap())
    };
    assert_eq!(runs(s1), [8, 5, 1, 1, 1]);
    assert_eq!(runs(s2), [4, 4, 0, 0, 0]);
    assert_eq!(runs(s3), [0, 0, 0, 0, 0]);
    assert_eq!(runs(all), [12, 9, 1, 1, 1]);
    assert_eq!(s1["runs_by_kind"]["enroll"]["started"], 6);
    assert_eq!(s2["runs_by_kind"]["replace"]["completed"], 1);
    assert_eq!(
        [
            &s1["completion_rate"],
            &s2["completion_rate"],
            &s3["completion_rate"],
            &all["completion_rate"]
        ],
        [&json!(0.5), &json!(1.0), &Value::Null, &json!(0.625)]
    );
    let tti = |f: &Value| {
        json!([
            f["time_to_issue"]["count"],
            f["time_to_issue"]["median"],
            f["time_to_issue"]["p90"],
            f["time_to_issue"]["max"],
            f["time_to_issue"]["sum"]
        ])
    };
    assert_eq!(tti(s1), json!([3, 20, 40, 40, 70]));
    assert_eq!(tti(s2), json!([3, 7, 30, 30, 42]));
    assert_eq!(s3["time_to_issue"], Value::Null);
    // The fleet's quantiles are of all six values, not of the stations'.
    assert_eq!(tti(all), json!([6, 10, 40, 40, 112]));
    let life = |f: &Value| {
        [
            "bindings_created",
            "replacements",
            "revocations",
            "returns",
            "lost",
            "resets",
            "exceptions",
            "active_bindings",
        ]
        .map(|k| f[k].as_u64().unwrap())
    };
    assert_eq!(life(s1), [2, 0, 1, 0, 0, 1, 1, 1]);
    assert_eq!(life(s2), [3, 1, 0, 0, 0, 1, 0, 2]);
    assert_eq!(life(s3), [4, 0, 0, 0, 0, 0, 0, 4]);
    assert_eq!(life(all), [9, 1, 1, 0, 0, 2, 1, 7]);
    assert_eq!(s3["incidents"], json!({"audit-cut": 1}));
    assert_eq!(all["incidents"], json!({"audit-cut": 1}));
    assert_eq!(s1["incidents"], json!({}));
    for s in [s1, s2, s3] {
        assert!(s["last_seen"].as_i64().unwrap() >= now() - 60, "{s}");
    }
    // Each station's figures are its own `keyward report`'s.
    for (st, f) in [(&k1, s1), (&k2, s2)] {
        agrees_with_local(&st.db, f);
    }
    // All time: kiosk-1's enrollment of 40 days ago counts.
    let r = json_of(&["registry", "report", "--json", "--db", &db.url]);
    assert_eq!(r["overall"]["runs"]["started"], 13);
    assert_eq!(r["since"], 0);
    // The text report names every station.
    let o = keyward()
        .args(["registry", "report", "--since", "7d", "--db", &db.url])
        .output()
        .unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(o.status.success());
    for needle in [
        "station kiosk-1",
        "station kiosk-3",
        "completion rate 62.5%",
        "median 10 s, p90 40 s",
        "incidents audit-cut 1",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
    let bad = keyward()
        .args([
            "registry",
            "report",
            "--since",
            "yesterday",
            "--db",
            &db.url,
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));

    metrics(&reg, &rt, pushes);
}

/// The station's own `keyward report --since 7d` says the same.
fn agrees_with_local(ledger: &Path, f: &Value) {
    let l = json_of(&[
        "--db",
        ledger.to_str().unwrap(),
        "report",
        "--json",
        "--since",
        "7d",
    ]);
    assert_eq!(l["completion_rate"], f["completion_rate"]);
    assert_eq!(l["time_to_issue"], f["time_to_issue"]);
    for k in [
        "bindings_created",
        "replacements",
        "revocations",
        "returns",
        "resets",
        "exceptions",
        "active_bindings",
    ] {
        assert_eq!(l[k], f[k], "{k}");
    }
    for (kind, c) in l["runs"].as_object().unwrap() {
        let g = &f["runs_by_kind"][kind];
        assert_eq!(c["started"], g["started"], "{kind}");
        assert_eq!(c["completed"], g["completed"], "{kind}");
        // The station's failures are the registry's refusals and failures.
        assert_eq!(
            c["failed"].as_u64().unwrap(),
            g["refused"].as_u64().unwrap() + g["failed"].as_u64().unwrap(),
            "{kind}"
        );
    }
}

/// One sample: the name and its labels, sorted.
type Key = (String, Vec<(String, String)>);

/// Parse the text exposition (format 0.0.4), checking every line's form.
fn parse_exposition(text: &str) -> BTreeMap<Key, f64> {
    let mut out = BTreeMap::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut p = rest.splitn(3, ' ');
            let (what, name, tail) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
            assert!(name_ok(name), "{line}");
            match what {
                "HELP" => assert!(!tail.is_empty(), "{line}"),
                "TYPE" => {
                    assert!(["counter", "gauge", "summary"].contains(&tail), "{line}");
                    assert!(typed.insert(name.to_string()), "TYPE twice: {line}");
                }
                _ => panic!("unknown comment: {line}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect(line);
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series, vec![]),
            Some((n, l)) => {
                let l = l.strip_suffix('}').expect(line);
                let labels = l
                    .split(',')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').expect(line);
                        assert!(name_ok(k), "{line}");
                        let v = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .expect(line);
                        (k.to_string(), v.to_string())
                    })
                    .collect::<Vec<_>>();
                (n, labels)
            }
        };
        assert!(name_ok(name), "{line}");
        let family = ["_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
            .unwrap_or(name);
        assert!(typed.contains(family), "sample before its TYPE: {line}");
        let mut labels = labels;
        labels.sort();
        assert!(
            out.insert((name.to_string(), labels), value).is_none(),
            "twice: {line}"
        );
    }
    out
}

fn metrics(reg: &RegistryServer, rt: &tokio::runtime::Runtime, pushes: u64) {
    let (status, ctype, text) = rt.block_on(async {
        let r = reqwest::get(format!("{}/metrics", reg.url()))
            .await
            .unwrap();
        let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
        (r.status().as_u16(), ctype, r.text().await.unwrap())
    });
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let m = parse_exposition(&text);
    let get = |name: &str, labels: &[(&str, &str)]| {
        let mut l: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.sort();
        *m.get(&(name.to_string(), l))
            .unwrap_or_else(|| panic!("{name} {labels:?} missing:\n{text}"))
    };
    let runs = |st, kind, outcome| {
        get(
            "keyward_registry_runs_total",
            &[("station", st), ("kind", kind), ("outcome", outcome)],
        )
    };
    // All time: kiosk-1's old enrollment counts here.
    assert_eq!(runs("kiosk-1", "enroll", "completed"), 4.0);
    assert_eq!(runs("kiosk-1", "enroll", "refused"), 1.0);
    assert_eq!(runs("kiosk-1", "enroll", "aborted"), 1.0);
    assert_eq!(runs("kiosk-2", "replace", "completed"), 1.0);
    assert_eq!(get("keyward_registry_stations", &[]), 3.0);
    assert_eq!(
        get("keyward_registry_pushes_accepted_total", &[]),
        pushes as f64
    );
    assert_eq!(
        get(
            "keyward_registry_pushes_refused_total",
            &[("code", "unsigned")]
        ),
        1.0
    );
    assert_eq!(
        get(
            "keyward_registry_pushes_refused_total",
            &[("code", "audit-cut")]
        ),
        1.0
    );
    assert_eq!(
        get(
            "keyward_registry_incidents_total",
            &[("station", "kiosk-3"), ("kind", "audit-cut")]
        ),
        1.0
    );
    assert_eq!(
        get(
            "keyward_registry_bindings",
            &[("station", "kiosk-3"), ("state", "active")]
        ),
        4.0
    );
    assert_eq!(
        get(
            "keyward_registry_bindings",
            &[("station", "kiosk-1"), ("state", "revoked")]
        ),
        1.0
    );
    assert_eq!(
        get(
            "keyward_registry_revocations_total",
            &[("station", "kiosk-1")]
        ),
        1.0
    );
    assert_eq!(
        get(
            "keyward_registry_replacements_total",
            &[("station", "kiosk-2")]
        ),
        1.0
    );
    assert_eq!(
        get("keyward_registry_resets_total", &[("station", "kiosk-2")]),
        1.0
    );
    assert_eq!(
        get(
            "keyward_registry_exceptions_total",
            &[("station", "kiosk-1")]
        ),
        1.0
    );
    let tti = "keyward_registry_time_to_issue_seconds";
    assert_eq!(
        get(tti, &[("station", "kiosk-1"), ("quantile", "0.5")]),
        20.0
    );
    assert_eq!(
        get(tti, &[("station", "kiosk-1"), ("quantile", "0.9")]),
        100.0
    );
    assert_eq!(get(&format!("{tti}_count"), &[("station", "kiosk-1")]), 4.0);
    assert_eq!(get(&format!("{tti}_sum"), &[("station", "kiosk-2")]), 42.0);
    let fleet = "keyward_registry_fleet_time_to_issue_seconds";
    assert_eq!(get(&format!("{fleet}_count"), &[]), 7.0);
    assert_eq!(get(fleet, &[("quantile", "0.9")]), 100.0);
    let events: f64 = ["kiosk-1", "kiosk-2", "kiosk-3"]
        .iter()
        .map(|s| get("keyward_registry_events_stored_total", &[("station", s)]))
        .sum();
    assert_eq!(events as usize, reg.events(None).len());
    for s in ["kiosk-1", "kiosk-2", "kiosk-3"] {
        let t = get(
            "keyward_registry_last_push_timestamp_seconds",
            &[("station", s)],
        );
        assert!(t >= (now() - 60) as f64, "{s}: {t}");
    }
}

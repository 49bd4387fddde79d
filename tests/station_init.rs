//! `keyward station init` and `keyward config check` from the command line:
//! the packaged example replaced by a checked production configuration; a
//! configured station not overwritten without --force; a bad issuer key
//! leaving nothing behind; a broken file named with its line, exit 5.

use std::path::Path;
use std::process::{Command, Output};

fn keyward() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keyward"));
    c.env("RUST_LOG", "warn")
        .env_remove("KEYWARD_CONFIG")
        .env_remove("KEYWARD_DB");
    c
}

fn run(c: &mut Command) -> Output {
    let o = c.output().unwrap();
    eprintln!(
        "$ {c:?}\n-> {}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// An Ed25519 issuer public key (PEM SPKI) made with openssl.
fn issuer_key(dir: &Path) -> std::path::PathBuf {
    let k = dir.join("k.pem");
    let p = dir.join("idp.pem");
    assert!(
        Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(&k)
            .status()
            .unwrap()
            .success()
    );
    assert!(
        Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&k)
            .arg("-out")
            .arg(&p)
            .status()
            .unwrap()
            .success()
    );
    p
}

fn init(etc: &Path, db: &Path, key: &Path, extra: &[&str]) -> Output {
    run(keyward()
        .arg("--db")
        .arg(db)
        .args(["station", "init"])
        .arg(etc)
        .args([
            "--station-id",
            "kiosk-7",
            "--issuer",
            "https://idp.example.org",
            "--issuer-key",
        ])
        .arg(key)
        .args(extra))
}

fn check(config: &Path, db: &Path) -> Output {
    run(keyward()
        .arg("--config")
        .arg(config)
        .arg("--db")
        .arg(db)
        .args(["config", "check"]))
}

#[test]
fn init_replaces_the_packaged_example_with_a_checked_station() {
    let d = tempfile::tempdir().unwrap();
    let etc = d.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/keyward.toml"),
        etc.join("keyward.toml"),
    )
    .unwrap();
    let db = d.path().join("var/ledger.db");
    let key = issuer_key(d.path());
    let o = init(&etc, &db, &key, &["--profile-template", "privileged"]);
    assert!(o.status.success());
    let cfg = etc.join("keyward.toml");
    let o = check(&cfg, &db);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("station \"kiosk-7\""), "{out}");
    assert!(
        out.contains("ticket issuer \"https://idp.example.org\": may grant fido2, piv, replace"),
        "{out}"
    );
    assert!(
        out.contains("policy profile \"privileged\"")
            && out.contains("privileged (replacement under dual control)"),
        "{out}"
    );
    assert!(out.contains("result: OK, this station enrolls"), "{out}");
    assert!(!db.exists(), "the ledger is the daemon's to create");
    // No staging directory left behind.
    let left: Vec<_> = std::fs::read_dir(&etc)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.iter().all(|n| !n.to_string_lossy().starts_with('.')),
        "{left:?}"
    );

    // Configured now: a second init is refused and changes nothing.
    let before = std::fs::read_to_string(&cfg).unwrap();
    let o = init(&etc, &db, &key, &["--allow", "fido2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), before);
}

#[test]
fn a_bad_issuer_key_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("bad.pem");
    std::fs::write(&bad, "not a key\n").unwrap();
    let etc = d.path().join("etc");
    let o = init(&etc, &d.path().join("l.db"), &bad, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--issuer-key"));
    assert!(!etc.exists());
}

#[test]
fn a_broken_configuration_is_named_with_file_and_line_exit_5() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("keyward.toml");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/keyward.toml"
    ))
    .unwrap()
    .replace("bundled = true ", "bundeld = true ");
    std::fs::write(&cfg, &text).unwrap();
    let line = text.lines().position(|l| l.starts_with("bundeld")).unwrap() + 1;
    let o = check(&cfg, &d.path().join("l.db"));
    assert_eq!(o.status.code(), Some(5));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("{}:{line}:", cfg.display())) && err.contains("bundeld"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
    // A key file that is not there: its [[ticket.issuers]] line.
    std::fs::write(&cfg, "station = \"s\"\n\n[[ticket.issuers]]\niss = \"i\"\nallowed_ops = [\"fido2\"]\nkeys = [{ path = \"gone.pem\" }]\n[policy.profiles.p]\n").unwrap();
    let o = check(&cfg, &d.path().join("l.db"));
    assert_eq!(o.status.code(), Some(5));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("{}:3: ticket.issuers:", cfg.display())) && err.contains("gone.pem"),
        "{err}"
    );
}

//! The Debian package, built as a release would be (packaging/build-deb):
//! its contents and maintainer scripts, the packaged binary run from a
//! temporary root (`--version` with the commit, `config check` on the
//! shipped example), the man page rendered by `man -l` without warnings,
//! the bash completion loaded and completing, the units verified and
//! hardened (`systemd-analyze security --offline=true`, exposure 2.0 or
//! less), and lintian without errors. Also: the README's first command's
//! package detection (scripts/demo --setup-only) against a stand-in
//! dpkg-query, apt-get and sudo; journald priorities on stderr.
//!
//! The release binary is $KEYWARD_RELEASE_BIN when scripts/test built it,
//! else built here. The package tests need cargo-deb, lintian, man and
//! systemd-analyze: they are `#[ignore]`d for a plain `cargo test` and run by
//! scripts/test (`--include-ignored`), where a missing tool fails them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    eprintln!(
        "$ {cmd:?}\n-> {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Fail the test unless `tool` is installed.
fn need(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "this test needs {tool}: run scripts/test (it installs it)"
    );
}

/// The package, built once for all tests here: `(dir holding it, .deb)`.
fn deb() -> &'static (tempfile::TempDir, PathBuf) {
    static DEB: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    DEB.get_or_init(|| {
        let cargo_deb = Command::new("cargo")
            .args(["deb", "--version"])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            cargo_deb,
            "this test needs cargo-deb: run scripts/test (it installs it), or cargo install cargo-deb --locked"
        );
        let out = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(root().join("packaging/build-deb"));
        cmd.arg(out.path());
        // Reuse scripts/test's release build instead of a nested cargo build.
        if std::env::var_os("KEYWARD_RELEASE_BIN").is_some() {
            cmd.env("KEYWARD_NO_BUILD", "1");
        }
        let o = run(&mut cmd);
        assert!(o.status.success(), "packaging/build-deb failed");
        let deb = std::fs::read_dir(out.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .expect("a .deb");
        (out, deb)
    })
}

/// The package extracted into a temporary root.
fn extracted(deb: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let o = run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dir.path()));
    assert!(o.status.success());
    dir
}

#[test]
#[ignore = "needs cargo-deb and the Debian packaging tools (scripts/test installs them)"]
fn the_package_holds_everything_a_station_needs() {
    let (_, deb) = deb();
    let list = stdout(&run(Command::new("dpkg-deb").arg("-c").arg(deb)));
    for path in [
        "./usr/bin/keyward",
        "./etc/keyward/keyward.toml",
        "./usr/lib/systemd/system/keyward.service",
        "./usr/lib/systemd/system/keyward.socket",
        "./usr/lib/sysusers.d/keyward.conf",
        "./usr/lib/tmpfiles.d/keyward.conf",
        "./usr/lib/udev/rules.d/70-keyward-fido.rules",
        "./usr/share/polkit-1/rules.d/50-keyward-pcsc.rules",
        "./usr/share/man/man1/keyward.1.gz",
        "./usr/share/man/man1/keyward-daemon.1.gz",
        "./usr/share/man/man1/keyward-config-check.1.gz",
        "./usr/share/man/man1/keyward-station-init.1.gz",
        "./usr/share/bash-completion/completions/keyward",
        "./usr/share/zsh/vendor-completions/_keyward",
        "./usr/share/fish/vendor_completions.d/keyward.fish",
        "./usr/share/doc/keyward/install.md",
    ] {
        assert!(
            list.lines().any(|l| l.ends_with(path)),
            "{path} missing from the package:\n{list}"
        );
    }
    assert!(
        !list.contains("keyward-manpages"),
        "no page for a hidden command"
    );

    let ctl = tempfile::tempdir().unwrap();
    assert!(
        run(Command::new("dpkg-deb").arg("-e").arg(deb).arg(ctl.path()))
            .status
            .success()
    );
    let read = |f: &str| std::fs::read_to_string(ctl.path().join(f)).unwrap_or_default();
    assert_eq!(read("conffiles").trim(), "/etc/keyward/keyward.toml");
    let postinst = read("postinst");
    assert!(
        postinst.contains("systemd-sysusers") && postinst.contains("keyward.conf"),
        "{postinst}"
    );
    assert!(postinst.contains("systemd-tmpfiles --create"), "{postinst}");
    assert!(
        postinst.contains("udevadm control --reload-rules"),
        "{postinst}"
    );
    assert!(
        postinst.contains("keyward.socket") && postinst.contains("daemon-reload"),
        "{postinst}"
    );
    // The user must exist before tmpfiles gives it the state directory.
    assert!(postinst.find("systemd-sysusers") < postinst.find("systemd-tmpfiles"));
    assert!(!postinst.contains("#DEBHELPER#"));
    assert_eq!(
        postinst.matches("systemd-sysusers").count(),
        1,
        "fragments inserted once: {postinst}"
    );
    let control = read("control");
    assert!(
        control.contains("Package: keyward") && control.contains("Recommends: pcscd"),
        "{control}"
    );
}

#[test]
#[ignore = "needs cargo-deb and the Debian packaging tools (scripts/test installs them)"]
fn the_packaged_binary_runs_from_an_extracted_root() {
    let (_, deb) = deb();
    let r = extracted(deb);
    let bin = r.path().join("usr/bin/keyward");
    let v = stdout(&run(Command::new(&bin).arg("--version")));
    let want = format!("keyward {} (", env!("CARGO_PKG_VERSION"));
    assert!(v.starts_with(&want), "{v}");
    let commit = v.trim().trim_start_matches(&want).trim_end_matches(')');
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{v}"
    );

    // The shipped example: accepted, and it says nothing is enrolled.
    let db = r.path().join("var/lib/keyward/ledger.db");
    let o = run(Command::new(&bin)
        .arg("--config")
        .arg(r.path().join("etc/keyward/keyward.toml"))
        .arg("--db")
        .arg(&db)
        .args(["config", "check"]));
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(
        text.contains("enrolls nothing until one is configured"),
        "{text}"
    );
    assert!(text.contains("policy profile \"standard\""), "{text}");
    assert!(text.contains("enrollment is disabled"), "{text}");
    assert!(!db.exists(), "config check created the ledger");
}

#[test]
#[ignore = "needs cargo-deb and the Debian packaging tools (scripts/test installs them)"]
fn the_man_page_renders_without_warnings() {
    let (_, deb) = deb();
    need("man");
    let r = extracted(deb);
    let man1 = r.path().join("usr/share/man/man1");
    let mut pages: Vec<_> = std::fs::read_dir(&man1)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pages.sort();
    assert!(pages.len() > 20, "{pages:?}");
    for page in &pages {
        let o = run(Command::new("man")
            .args(["--warnings", "-l"])
            .arg(page)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80"));
        assert!(o.status.success());
        let text = stdout(&o);
        assert!(text.contains("NAME") && text.contains("SYNOPSIS"), "{text}");
        assert!(
            o.stderr.is_empty(),
            "{}: {}",
            page.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let text = stdout(&run(Command::new("man")
        .arg("-l")
        .arg(r.path().join("usr/share/man/man1/keyward.1.gz"))
        .env("MANPAGER", "cat")));
    assert!(
        text.contains("keyward-config(1)") || text.contains("config"),
        "{text}"
    );
}

#[test]
#[ignore = "needs cargo-deb and the Debian packaging tools (scripts/test installs them)"]
fn the_bash_completion_loads_and_completes() {
    let (_, deb) = deb();
    let r = extracted(deb);
    let script = r
        .path()
        .join("usr/share/bash-completion/completions/keyward");
    let o = run(Command::new("bash")
        .arg("-c")
        .arg(
            "set -e; source \"$1\"; complete -p keyward; \
             COMP_WORDS=(keyward con); COMP_CWORD=1; COMP_LINE='keyward con'; COMP_POINT=11; \
             _keyward keyward con keyward; printf '%s\\n' \"${COMPREPLY[@]}\"",
        )
        .arg("bash")
        .arg(&script));
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.contains("-F _keyward keyward"), "{out}");
    assert!(out.lines().any(|l| l.trim() == "config"), "{out}");
}

#[test]
#[ignore = "needs cargo-deb and the Debian packaging tools (scripts/test installs them)"]
fn the_units_verify_and_are_hardened() {
    let (_, deb) = deb();
    need("systemd-analyze");
    let r = extracted(deb);
    let units = r.path().join("usr/lib/systemd/system");
    let bin = r.path().join("usr/bin/keyward");
    // The binary where systemd-analyze can find it (ExecStart must exist).
    let dir = tempfile::tempdir().unwrap();
    for name in ["keyward.service", "keyward.socket"] {
        let text = std::fs::read_to_string(units.join(name))
            .unwrap()
            .replace("/usr/bin/keyward", bin.to_str().unwrap());
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let o = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.path().join("keyward.socket"))
        .arg(dir.path().join("keyward.service")));
    assert!(o.status.success() && o.stderr.is_empty());

    let o = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(dir.path().join("keyward.service")));
    let text = stdout(&o);
    let exposure: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for keyward.service:")
                .nth(1)
        })
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(exposure <= 2.0, "exposure {exposure} > 2.0");
    let service = std::fs::read_to_string(units.join("keyward.service")).unwrap();
    for line in [
        "User=keyward",
        "DevicePolicy=closed",
        "DeviceAllow=char-hidraw rw",
        "CapabilityBoundingSet=\n",
    ] {
        assert!(service.contains(line), "{line:?} missing");
    }
}

#[test]
#[ignore = "needs cargo-deb and the Debian packaging tools (scripts/test installs them)"]
fn lintian_reports_no_errors() {
    let (_, deb) = deb();
    need("lintian");
    let o = run(Command::new("lintian")
        .args(["--tag-display-limit", "0", "--allow-root"])
        .arg(deb));
    let text = stdout(&o);
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));
}

/// A stand-in for dpkg-query/apt-get/sudo/id: records what the script
/// asked and "installs" packages into a list file.
fn fake_bin(dir: &Path, installed: &[&str]) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let state = dir.join("installed");
    std::fs::write(&state, installed.join("\n") + "\n").unwrap();
    let log = dir.join("log");
    let scripts = [
        (
            "dpkg-query",
            format!(
                "#!/bin/sh\neval p=\\${{$#}}\ngrep -qx \"$p\" {s} && printf installed || exit 1\n",
                s = state.display()
            ),
        ),
        (
            "apt-get",
            format!(
                "#!/bin/sh\necho \"apt-get $*\" >> {l}\n[ \"$1\" = update ] && exit 0\nfor a; do case $a in -*|install) ;; *) echo \"$a\" >> {s};; esac; done\n",
                l = log.display(),
                s = state.display()
            ),
        ),
        (
            "sudo",
            format!(
                "#!/bin/sh\necho \"sudo $1\" >> {l}\nexec \"$@\"\n",
                l = log.display()
            ),
        ),
        ("id", "#!/bin/sh\necho 1000\n".to_string()),
    ];
    for (name, text) in scripts {
        let p = bin.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

#[test]
fn the_first_command_installs_only_what_is_missing_through_sudo() {
    let dir = tempfile::tempdir().unwrap();
    // A machine with the compiler but without libpcsclite-dev, libudev-dev,
    // pcscd and vpcd.
    let bin = fake_bin(dir.path(), &["build-essential", "pkg-config"]);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let demo = || {
        run(Command::new(root().join("scripts/demo"))
            .arg("--setup-only")
            .env("PATH", &path))
    };
    let o = demo();
    assert!(o.status.success());
    let said = stdout(&o);
    assert!(
        said.contains(
            "installing Debian packages: libpcsclite-dev libudev-dev pcscd vsmartcard-vpcd"
        ),
        "{said}"
    );
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert!(log.contains("sudo env"), "not root: through sudo: {log}");
    assert!(
        log.contains("install -y -qq --no-install-recommends libpcsclite-dev libudev-dev pcscd vsmartcard-vpcd"),
        "{log}"
    );
    // Second run: nothing to install, apt-get not called again.
    let o = demo();
    assert!(o.status.success());
    assert!(!stdout(&o).contains("installing"), "{}", stdout(&o));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("log")).unwrap(),
        log,
        "apt-get ran again"
    );
}

/// Lines a failing daemon start writes to stderr, with `$JOURNAL_STREAM`
/// naming that stderr (as systemd sets it) or not.
fn daemon_stderr(journal: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("k.toml");
    std::fs::write(&cfg, "station = \"s\"\n").unwrap();
    let err_path = dir.path().join("stderr");
    let err = std::fs::File::create(&err_path).unwrap();
    let meta = std::fs::metadata(&err_path).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_keyward"));
    c.arg("--config")
        .arg(&cfg)
        .arg("--db")
        .arg(dir.path().join("l.db"))
        // A socket directory that cannot be created: a warning (no issuer),
        // then an error.
        .args(["daemon", "--socket", "/proc/keyward-none/s.sock"])
        .env("RUST_LOG", "warn")
        .env_remove("JOURNAL_STREAM")
        .stderr(err);
    if journal {
        use std::os::unix::fs::MetadataExt;
        c.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
    }
    let o = c.output().unwrap();
    assert!(!o.status.success());
    std::fs::read_to_string(&err_path).unwrap()
}

#[test]
fn journal_lines_carry_syslog_priorities() {
    let j = daemon_stderr(true);
    let warn = j
        .lines()
        .find(|l| l.contains("no ticket issuer configured"))
        .unwrap_or_else(|| panic!("{j}"));
    assert!(warn.starts_with("<4>"), "warning at priority 4: {j}");
    let err = j
        .lines()
        .find(|l| l.contains("keyward: "))
        .unwrap_or_else(|| panic!("{j}"));
    assert!(err.starts_with("<3>keyward: "), "error at priority 3: {j}");
    // Not the journal (a file, a terminal): no prefixes.
    let plain = daemon_stderr(false);
    assert!(!plain.contains("<4>") && !plain.contains("<3>"), "{plain}");
    assert!(plain.contains("no ticket issuer configured"), "{plain}");
}

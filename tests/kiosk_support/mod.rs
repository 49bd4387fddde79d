//! Shared by the kiosk tests: a `keyward kiosk` process and the check
//! that chromium, node and the npm packages of tests/kiosk are here.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common;
use crate::provision_support::Rig;

/// A `keyward kiosk` process for one test, working standalone
/// (`KEYWARD_NO_DAEMON`) with the rig's station configuration.
pub struct KioskProc {
    pub child: Child,
    /// The start URL it printed (with the launch token).
    pub url: String,
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
    /// The first line it printed.
    pub first_line: String,
    /// Its stderr (log lines), kept in a file.
    pub log: tempfile::NamedTempFile,
}

impl KioskProc {
    pub fn start(rig: &Rig) -> KioskProc {
        let mut cmd = common::keyward();
        cmd.env("KEYWARD_NO_DAEMON", "1")
            .arg("--config")
            .arg(&rig.config);
        KioskProc::spawn(cmd)
    }

    /// `keyward kiosk` with `cmd`'s environment and global flags; returns
    /// once it printed its start URL (plain, or in `--json`).
    pub fn spawn(cmd: Command) -> KioskProc {
        KioskProc::spawn_with(cmd, &[])
    }

    /// [`KioskProc::spawn`] with more `keyward kiosk` flags.
    pub fn spawn_with(mut cmd: Command, kiosk_args: &[&str]) -> KioskProc {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = cmd
            .env("RUST_LOG", "keyward=trace")
            .args(["kiosk", "--port", "0"])
            .args(kiosk_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("spawn keyward kiosk");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the start URL");
        let url = match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(doc) => doc["url"].as_str().unwrap_or_default().to_owned(),
            Err(_) => line.trim().to_owned(),
        };
        assert!(
            url.starts_with("http://127.0.0.1:") && url.contains("/?k="),
            "start URL: {line:?}"
        );
        let origin = url.split_once("/?").unwrap().0.to_owned();
        KioskProc {
            child,
            url,
            origin,
            first_line: line,
            log,
        }
    }
}

impl KioskProc {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for KioskProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fail, naming what to run, unless chromium, node and the npm packages
/// of tests/kiosk are here (scripts/test installs them).
pub fn require_browser() -> PathBuf {
    let chromium = std::env::var_os("KEYWARD_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kiosk");
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let modules = ["playwright-core", "axe-core"].iter().all(|m| {
        dir.join("node_modules")
            .join(m)
            .join("package.json")
            .exists()
    });
    assert!(
        chromium.exists() && node_ok && modules,
        "this test needs Debian's chromium ({}: {}), node ({}) and the npm packages of \
         tests/kiosk ({}): run scripts/test, or `apt-get install chromium nodejs npm` \
         and `npm ci --prefix tests/kiosk`",
        chromium.display(),
        if chromium.exists() {
            "found"
        } else {
            "missing"
        },
        if node_ok { "found" } else { "missing" },
        if modules { "found" } else { "missing" },
    );
    chromium
}

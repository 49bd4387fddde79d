//! A `keyward daemon` process for the daemon tests: its own socket
//! directory (traversable by other users), ledger and log file.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use keyward::daemon::client::{Client, Event, Events};

use crate::common;

/// A daemon on a socket in its own (traversable) temporary directory.
pub struct Daemon {
    pub child: Child,
    pub socket: PathBuf,
    pub db: PathBuf,
    pub log: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Daemon {
    pub fn start(extra: &[&str], env: &[(&str, &Path)]) -> Daemon {
        let dir = common::tempdir();
        // Other users must reach the socket: its own mode guards it.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = dir.path().join("keyward.sock");
        let db = dir.path().join("ledger.db");
        let log = dir.path().join("daemon.log");
        let mut cmd = common::keyward();
        cmd.env("RUST_LOG", "keyward=info,warn")
            .env_remove("NOTIFY_SOCKET")
            .arg("--db")
            .arg(&db)
            .args(["daemon", "--socket"])
            .arg(&socket)
            .args(extra)
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn keyward daemon");
        let mut d = Daemon {
            child,
            socket,
            db,
            log,
            dir,
        };
        d.wait_ready();
        d
    }

    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if Client::new(&self.socket).health().is_ok() {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("daemon exited early ({st}): {}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("daemon not ready in 30 s: {}", self.log_text());
    }

    pub fn client(&self) -> Client {
        Client::new(&self.socket)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not exit within {timeout:?} of SIGTERM: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Read events until `pred` matches one (or panic after `timeout`).
pub fn wait_event(events: &mut Events, timeout: Duration, pred: impl Fn(&Event) -> bool) -> Event {
    let deadline = Instant::now() + timeout;
    for ev in events.by_ref() {
        let ev = ev.expect("event stream");
        if pred(&ev) {
            return ev;
        }
        assert!(
            Instant::now() < deadline,
            "no matching event in {timeout:?}"
        );
    }
    panic!("event stream ended");
}

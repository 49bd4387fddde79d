//! Shared test rig: vpcd readers leased across processes, the `keyward sim`
//! binary attached through pcscd, and the independent clients from the venv.
//!
//! Tests that need pcscd call [`rig`]: without pcscd they skip with a message,
//! except when `CI` is set, where they fail.
#![allow(dead_code)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The vpcd readers `.ci/rig-setup` creates: port → reader name.
pub const READERS: [(u16, &str); 8] = [
    (35963, "Virtual PCD 00 00"),
    (35964, "Virtual PCD 00 01"),
    (35965, "Virtual PCD B 00 00"),
    (35966, "Virtual PCD B 00 01"),
    (35967, "Virtual PCD C 00 00"),
    (35968, "Virtual PCD C 00 01"),
    (35969, "Virtual PCD D 00 00"),
    (35970, "Virtual PCD D 00 01"),
];

/// Whether pcscd and the vpcd readers are here. Panics under CI when not.
pub fn rig() -> bool {
    let present = pcsc::Context::establish(pcsc::Scope::System)
        .ok()
        .and_then(|ctx| ctx.list_readers_owned().ok())
        .is_some_and(|rs| rs.iter().any(|r| r.to_string_lossy() == READERS[0].1));
    if !present {
        if std::env::var_os("CI").is_some() {
            panic!("pcscd with the vpcd readers is required under CI: run .ci/rig-setup");
        }
        eprintln!("SKIP: pcscd with vpcd readers not running (run .ci/rig-setup as root)");
    }
    present
}

/// A vpcd reader held exclusively (flock) by this test until dropped.
pub struct Reader {
    pub port: u16,
    pub name: &'static str,
    _lock: File,
}

impl Reader {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Lease a free reader, waiting up to two minutes for one.
pub fn lease_reader() -> Reader {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        for (port, name) in READERS {
            let path = std::env::temp_dir().join(format!("keyward-vpcd-{port}.lock"));
            let f = File::create(&path).expect("create reader lock file");
            // SAFETY: flock on a file descriptor we own; no memory involved.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Reader {
                    port,
                    name,
                    _lock: f,
                };
            }
        }
        assert!(
            Instant::now() < deadline,
            "no vpcd reader became free in 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `keyward sim --vpcd` process on a leased reader; killed on drop.
pub struct Sim {
    pub reader: Reader,
    child: Child,
}

impl Sim {
    /// Kill the simulator (the card leaves the reader) and wait for pcscd to
    /// notice.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        wait_card(self.reader.name, false, Duration::from_secs(10));
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The keyward binary under test.
pub fn keyward() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keyward"));
    c.env("RUST_LOG", "warn");
    c
}

/// Start `keyward sim --vpcd ADDR EXTRA...` on a fresh reader and wait until
/// pcscd shows the card.
pub fn start_sim(extra: &[&str]) -> Sim {
    let reader = lease_reader();
    start_sim_on(reader, extra)
}

pub fn start_sim_on(reader: Reader, extra: &[&str]) -> Sim {
    wait_card(reader.name, false, Duration::from_secs(10));
    let spawn = |reader: &Reader| {
        keyward()
            .args(["sim", "--vpcd", &reader.addr()])
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn keyward sim")
    };
    let child = spawn(&reader);
    let mut sim = Sim { reader, child };
    if wait_card(sim.reader.name, true, Duration::from_secs(10)) {
        return sim;
    }
    // Rarely, under heavy load, the vpcd driver does not take the new
    // connection (a stale one from a killed simulator in its backlog):
    // re-insert the card once, as a person would.
    eprintln!(
        "card did not appear in {:?} within 10 s; re-inserting it",
        sim.reader.name
    );
    let _ = sim.child.kill();
    let _ = sim.child.wait();
    wait_card(sim.reader.name, false, Duration::from_secs(10));
    sim.child = spawn(&sim.reader);
    if !wait_card(sim.reader.name, true, Duration::from_secs(15)) {
        let status = sim.child.try_wait();
        panic!(
            "card never appeared in {:?} (sim status {status:?})",
            sim.reader.name
        );
    }
    sim
}

/// Wait until `reader` has (or has not) a card; true if it happened in time.
pub fn wait_card(reader: &str, present: bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let Ok(ctx) = pcsc::Context::establish(pcsc::Scope::System) else {
        return false;
    };
    let name = std::ffi::CString::new(reader).expect("reader name");
    loop {
        let mut rs = [pcsc::ReaderState::new(
            name.as_c_str(),
            pcsc::State::UNAWARE,
        )];
        if ctx
            .get_status_change(Duration::from_millis(200), &mut rs)
            .is_ok()
        {
            let has = rs[0].event_state().contains(pcsc::State::PRESENT);
            if has == present {
                return true;
            }
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A program from the test venv (`KEYWARD_VENV`, default /opt/keyward-venv),
/// else from PATH.
pub fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var_os("KEYWARD_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/opt/keyward-venv".into());
    let p = venv.join("bin").join(name);
    if p.exists() { p } else { PathBuf::from(name) }
}

/// Run a command, print its output for the test log, and return it.
pub fn run(cmd: &mut Command) -> Output {
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

/// Run a command that must succeed; returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "command failed: {cmd:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A temporary directory for one test.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// `ykman -r READER ARGS...` against a running simulator; must succeed.
pub fn ykman(sim: &Sim, args: &[&str]) -> String {
    run_ok(
        Command::new(venv_bin("ykman"))
            .args(["-r", sim.reader.name])
            .args(args),
    )
}

/// `openssl ARGS...`; must succeed.
pub fn openssl_ok(args: &[&str]) -> String {
    run_ok(Command::new("openssl").args(args))
}

/// `dir/name` as a string argument.
pub fn path(dir: &std::path::Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

/// The PIV management key every YubiKey (and the simulator) ships with.
pub const FACTORY_MGMT: &str = "010203040506070801020304050607080102030405060708";

/// `ykman piv certificates generate` with the factory management key and
/// PIN: a self-signed certificate for the key in `slot`, whose public key is
/// in the PEM file `public`.
pub fn ykman_self_sign(sim: &Sim, slot: &str, subject: &str, public: &str) -> String {
    ykman(
        sim,
        &[
            "piv",
            "certificates",
            "generate",
            "-m",
            FACTORY_MGMT,
            "-P",
            "123456",
            "-s",
            subject,
            slot,
            public,
        ],
    )
}

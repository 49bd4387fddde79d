//! Shared test rig: vpcd readers leased across processes, the `keyward sim`
//! binary attached through pcscd, and the independent clients from the venv.
//!
//! Tests that need pcscd carry `#[ignore = "needs the test rig: pcscd + vpcd
//! (scripts/test runs it)"]` and call [`require_rig`], which fails loudly when
//! the rig is absent: `cargo test` reports them as ignored, scripts/test runs
//! them with `--include-ignored` (docs/testing.md).
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

/// Whether pcscd answers and lists the first vpcd reader.
pub fn rig_present() -> bool {
    rig_lists(READERS[0].1)
}

/// Fail the test loudly unless pcscd and the vpcd readers are here.
///
/// Tests that need the rig are `#[ignore = "needs the test rig: ..."]`, so a
/// plain `cargo test` reports them as ignored; scripts/test (and `.ci/run`)
/// passes `--include-ignored`, and `cargo test -- --include-ignored` runs
/// them by hand. Once asked for, a missing rig is a failure, never a pass.
pub fn require_rig() {
    assert!(
        rig_present(),
        "this test needs pcscd with the vpcd readers ({:?} not listed): \
         run `bash .ci/rig-setup` as root, or scripts/test",
        READERS[0].1
    );
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
    require_rig();
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

/// A pcscd of one test's own, for tests that stop or restart pcscd: the
/// shared pcscd and the other tests' readers never notice.
///
/// pcscd 1.9 keeps its socket at the compiled-in /run/pcscd/pcscd.comm and
/// refuses to start while that exists, so the private one runs in its own
/// mount namespace (`unshare --mount`, root only) with a temporary directory
/// bound over /run/pcscd, and its own reader.conf.d holding one vpcd block on
/// free ports ("Virtual PCD P 00 00"). The client library takes the socket
/// from `PCSCLITE_CSOCK_NAME`, once per process: so the test runs in a child
/// process of the test binary that has it set from the start
/// ([`rerun_with_private_pcscd`]), where [`PrivatePcscd::inside`] starts the
/// daemon and every PC/SC call (the detector, [`wait_card`]) reaches it.
pub struct PrivatePcscd {
    run: PathBuf,
    conf: PathBuf,
    daemon: Option<Child>,
}

/// The environment variable that tells the child process where its private
/// pcscd lives: `DIR:PORT`.
const PRIVATE_PCSCD: &str = "KEYWARD_TEST_PRIVATE_PCSCD";

/// The private reader's name (the vpcd block's FRIENDLYNAME plus slot).
pub const PRIVATE_READER: &str = "Virtual PCD P 00 00";

/// Run the ignored test `name` of this test binary again in a child process
/// with a private pcscd (see [`PrivatePcscd`]); fails when the child fails.
pub fn rerun_with_private_pcscd(name: &str) {
    require_rig();
    let dir = tempdir();
    let run_dir = dir.path().join("run");
    std::fs::create_dir(&run_dir).expect("create the private pcscd's run dir");
    // vpcd listens on the port and the next one (two slots per block).
    let port = (40_000..60_000)
        .step_by(2)
        .find(|p| {
            std::net::TcpListener::bind(("0.0.0.0", *p)).is_ok()
                && std::net::TcpListener::bind(("0.0.0.0", p + 1)).is_ok()
        })
        .expect("two free consecutive TCP ports for the private vpcd reader");
    let exe = std::env::current_exe().expect("the test binary");
    let out = Command::new(exe)
        .args(["--exact", name, "--include-ignored", "--nocapture"])
        .env("PCSCLITE_CSOCK_NAME", run_dir.join("pcscd.comm"))
        .env(PRIVATE_PCSCD, format!("{}:{port}", dir.path().display()))
        .output()
        .expect("run the test binary again");
    // Indented, so that the child's own "test result:" line is not counted
    // as a second test by whoever sums the summaries (scripts/test).
    for line in String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
    {
        eprintln!("  [private pcscd] {line}");
    }
    assert!(out.status.success(), "{name} with a private pcscd failed");
}

impl PrivatePcscd {
    /// In the child process of [`rerun_with_private_pcscd`]: the private
    /// pcscd, started and listing its reader, and that reader ("Virtual PCD
    /// P 00 00" on its own port). `None` elsewhere.
    pub fn inside() -> Option<(PrivatePcscd, Reader)> {
        let spec = std::env::var(PRIVATE_PCSCD).ok()?;
        let (dir, port) = spec.rsplit_once(':').expect("DIR:PORT");
        let port: u16 = port.parse().expect("port");
        let dir = PathBuf::from(dir);
        let conf = dir.join("reader.conf.d");
        std::fs::create_dir_all(&conf).expect("create reader.conf.d");
        let lib = std::fs::read_to_string("/etc/reader.conf.d/vpcd")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("LIBPATH").map(|p| p.trim().to_string()))
            })
            .unwrap_or_else(|| "/usr/lib/pcsc/drivers/serial/libifdvpcd.so".into());
        std::fs::write(
            conf.join("vpcd"),
            format!(
                "FRIENDLYNAME \"Virtual PCD P\"\nDEVICENAME   /dev/null:{port:#X}\n\
                 LIBPATH      {lib}\nCHANNELID    {port:#X}\n"
            ),
        )
        .expect("write the private reader.conf");
        let lock = File::create(dir.join("reader.lock")).expect("reader lock file");
        let mut p = PrivatePcscd {
            run: dir.join("run"),
            conf,
            daemon: None,
        };
        p.start();
        let reader = Reader {
            port,
            name: PRIVATE_READER,
            _lock: lock,
        };
        Some((p, reader))
    }

    /// Start the private pcscd and wait until it lists its reader.
    pub fn start(&mut self) {
        assert!(self.daemon.is_none(), "the private pcscd is running");
        let _ = std::fs::remove_file(self.run.join("pcscd.comm"));
        let _ = std::fs::remove_file(self.run.join("pcscd.pid"));
        // unshare and sh both exec: the child's pid is pcscd's.
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount --bind "$0" /run/pcscd && exec pcscd --foreground -c "$1""#)
            .arg(&self.run)
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn unshare + pcscd (needs root)");
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !rig_lists(PRIVATE_READER) {
            if let Some(status) = self
                .daemon
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("the private pcscd exited: {status} (unshare --mount needs root)");
            }
            assert!(
                Instant::now() < deadline,
                "the private pcscd did not list {PRIVATE_READER:?} in 10 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop the private pcscd (SIGTERM to the process we started) and wait
    /// for it to exit.
    pub fn stop(&mut self) {
        let mut child = self
            .daemon
            .take()
            .expect("the private pcscd is not running");
        let pid = i32::try_from(child.id()).expect("pid");
        // SAFETY: kill(2) takes no pointers; pid is our own child, not yet
        // reaped (we hold its Child), so the id cannot name another process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        child.wait().expect("wait for the private pcscd");
    }
}

impl Drop for PrivatePcscd {
    fn drop(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether the pcscd this process talks to lists `reader`.
fn rig_lists(reader: &str) -> bool {
    pcsc::Context::establish(pcsc::Scope::System)
        .ok()
        .and_then(|ctx| ctx.list_readers_owned().ok())
        .is_some_and(|rs| rs.iter().any(|r| r.to_string_lossy() == reader))
}

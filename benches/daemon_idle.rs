//! The daemon at rest: start `keyward daemon` (the built binary) on a
//! temporary socket and ledger, let it idle with no device for 10 s, and
//! print its resident memory (VmRSS) and CPU use (utime + stime from
//! /proc/PID/stat over the window). Idle must mean idle: no busy polling.
//!
//! `cargo bench --bench daemon_idle` (KEYWARD_IDLE_SECS changes the window).

use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line (proc(5)).
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn status_field(pid: u32, name: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    s.lines()
        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

fn main() {
    let secs: u64 = std::env::var("KEYWARD_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("keyward.sock");
    let t0 = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .env("RUST_LOG", "warn")
        .env_remove("NOTIFY_SOCKET")
        .arg("--db")
        .arg(dir.path().join("ledger.db"))
        .args(["daemon", "--socket"])
        .arg(&socket)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn keyward daemon");
    let pid = child.id();
    while UnixStream::connect(&socket).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "daemon not listening in 30 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let ready = t0.elapsed();
    // Let start-up work (ledger migration, first PC/SC enumeration) settle.
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: sysconf takes no pointers and has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let before = cpu_ticks(pid);
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let ticks = cpu_ticks(pid) - before;
    let wall = start.elapsed().as_secs_f64();
    let cpu_s = ticks as f64 / hz;
    println!("daemon_idle: ready (socket listening) after {ready:.0?}");
    println!(
        "daemon_idle: idle {wall:.1} s: CPU {cpu_s:.3} s ({:.3} % of one core), RSS {}, peak {}, threads {}",
        100.0 * cpu_s / wall,
        status_field(pid, "VmRSS:"),
        status_field(pid, "VmHWM:"),
        status_field(pid, "Threads:")
    );
    let stop = Instant::now();
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let st = child.wait().expect("wait");
    println!("daemon_idle: SIGTERM to exit {:.0?} ({st})", stop.elapsed());
    assert!(st.success());
}

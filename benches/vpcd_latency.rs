//! APDU round-trip latency through pcscd to the simulator over vpcd.
//!
//! `cargo bench --bench vpcd_latency` (needs the rig: `.ci/rig-setup`).
//! Prints one line: `vpcd_round_trip n=... median_us=... p95_us=... max_us=...`.
//! DESIGN.md's target: ~0.14 ms median, not the 44 ms of the Nagle/delayed-ACK
//! trap.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward::sim::ca::SimCa;
use keyward::sim::device::{SimOptions, build_card};
use keyward::sim::vpcd::{self, Shutdown};
use keyward::sim::{DeviceProfile, Person};

const PORT: u16 = 35970;
const READER: &str = "Virtual PCD D 00 01";
const ROUNDS: usize = 200;

fn main() {
    let lock = File::create(std::env::temp_dir().join(format!("keyward-vpcd-{PORT}.lock")))
        .expect("lock file");
    // SAFETY: flock on a descriptor we own.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };

    let ca = Arc::new(SimCa::from_seed(SimCa::DEFAULT_SEED).expect("CA"));
    let opts = SimOptions::new(DeviceProfile::default(), ca);
    let shutdown = Shutdown::default();
    let sd = shutdown.clone();
    let server = std::thread::spawn(move || {
        let mut card = build_card(&opts);
        let addr = vpcd::resolve(&format!("127.0.0.1:{PORT}")).expect("address");
        vpcd::serve(addr, &mut card, Person::Immediate, &mut (), &sd).expect("serve");
    });

    let ctx = pcsc::Context::establish(pcsc::Scope::System)
        .expect("pcscd is not running: run .ci/rig-setup");
    let name = CString::new(READER).expect("reader name");
    let deadline = Instant::now() + Duration::from_secs(15);
    let card = loop {
        match ctx.connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY) {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("card never appeared in {READER}: {e}"),
        }
    };
    let select_mgmt = [
        0x00, 0xA4, 0x04, 0x00, 0x08, 0xA0, 0x00, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17,
    ];
    let mut buf = [0u8; 300];
    let mut samples = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        card.transmit(&select_mgmt, &mut buf).expect("transmit");
        samples.push(t.elapsed());
    }
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "vpcd_round_trip n={ROUNDS} median_us={:.0} p95_us={:.0} max_us={:.0}",
        us(samples[ROUNDS / 2]),
        us(samples[ROUNDS * 95 / 100]),
        us(samples[ROUNDS - 1])
    );
    drop(card);
    shutdown.stop();
    let _ = server.join();
}

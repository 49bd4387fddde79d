//! CTAP round-trip time over pcscd against the simulator: keyward's client
//! next to python-fido2's, on the same virtual key, same commands.
//!
//! `cargo bench --bench ctap_latency` (needs the rig: `.ci/rig-setup`, and
//! python-fido2 in /opt/keyward-venv or $KEYWARD_VENV). Prints one line per
//! command:
//! `ctap_round_trip cmd=getInfo n=.. keyward_median_us=.. python_fido2_median_us=.. ratio=..`
//! The target: ratio ≤ 0.5.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward::ctap::Ctap2;
use keyward::ctap::commands::make_credential::{MakeCredential, User};
use keyward::sim::ca::SimCa;
use keyward::sim::device::{SimOptions, build_card};
use keyward::sim::vpcd::{self, Shutdown};
use keyward::sim::{DeviceProfile, Person};
use keyward::transport::pcsc::{ApduMode, PcscTransport};

const READERS: [(u16, &str); 8] = [
    (35963, "Virtual PCD 00 00"),
    (35964, "Virtual PCD 00 01"),
    (35965, "Virtual PCD B 00 00"),
    (35966, "Virtual PCD B 00 01"),
    (35967, "Virtual PCD C 00 00"),
    (35968, "Virtual PCD C 00 01"),
    (35969, "Virtual PCD D 00 00"),
    (35970, "Virtual PCD D 00 01"),
];
const ROUNDS: usize = 50;

/// Lease a free vpcd reader (the flock protocol of tests/common).
fn lease() -> (File, u16, &'static str) {
    loop {
        for (port, name) in READERS {
            let f = File::create(std::env::temp_dir().join(format!("keyward-vpcd-{port}.lock")))
                .expect("lock file");
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return (f, port, name);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn timed(mut f: impl FnMut()) -> Vec<f64> {
    (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

/// getInfo and makeCredential samples from keyward's client.
fn measure(reader: &str, mode: Option<ApduMode>) -> (Vec<f64>, Vec<f64>) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let t = loop {
        match PcscTransport::open(reader, mode, Duration::from_secs(5)) {
            Ok(t) => break t,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("no FIDO card in {reader}: {e}"),
        }
    };
    let mut c = Ctap2::new(t);
    let get_info = timed(|| {
        c.get_info().expect("getInfo");
    });
    let mc = MakeCredential {
        client_data_hash: [0x42; 32],
        rp_id: "bench.example".into(),
        user: User {
            id: b"u".to_vec(),
            name: Some("u".into()),
            display_name: None,
        },
        algorithms: vec![-7],
        ..MakeCredential::default()
    };
    let make_credential = timed(|| {
        c.make_credential(&mc, None).expect("makeCredential");
    });
    (get_info, make_credential)
}

fn main() {
    let (_lock, port, reader) = lease();
    let ca = Arc::new(SimCa::from_seed(SimCa::DEFAULT_SEED).expect("CA"));
    let opts = SimOptions::new(DeviceProfile::default(), ca);
    let shutdown = Shutdown::default();
    let sd = shutdown.clone();
    let server = std::thread::spawn(move || {
        let mut card = build_card(&opts);
        let addr = vpcd::resolve(&format!("127.0.0.1:{port}")).expect("address");
        vpcd::serve(addr, &mut card, Person::Immediate, &mut (), &sd).expect("serve");
    });

    // keyward with the framing it picks (extended APDUs here), and with
    // short APDUs + 61xx chaining, python-fido2's default framing.
    let (get_info, make_credential) = measure(reader, None);
    let (get_info_short, make_credential_short) = measure(reader, Some(ApduMode::Short));

    let venv =
        std::env::var_os("KEYWARD_VENV").map_or_else(|| "/opt/keyward-venv".into(), PathBuf::from);
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/ctap/bench_python_fido2.py");
    let out = Command::new(venv.join("bin/python"))
        .arg(script)
        .args([reader, &ROUNDS.to_string()])
        .output()
        .expect("run python-fido2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let py: serde_json::Value = serde_json::from_slice(&out.stdout).expect("python output");
    let samples = |k: &str| -> Vec<f64> {
        py[k]
            .as_array()
            .expect("samples")
            .iter()
            .filter_map(|x| x.as_f64())
            .collect()
    };
    for (name, ours, short, theirs) in [
        ("getInfo", get_info, get_info_short, samples("get_info")),
        (
            "makeCredential",
            make_credential,
            make_credential_short,
            samples("make_credential"),
        ),
    ] {
        let (k, s, p) = (median(ours), median(short), median(theirs));
        println!(
            "ctap_round_trip cmd={name} n={ROUNDS} keyward_median_us={k:.0} keyward_short_apdu_median_us={s:.0} python_fido2_median_us={p:.0} ratio={:.2} ratio_short={:.2}",
            k / p,
            s / p
        );
    }
    shutdown.stop();
    let _ = server.join();
}

//! Bulk issuance throughput: 16 in-process simulated keys, each taking
//! 1.5 s to generate its credential key (as real keys take seconds), run
//! through 16 slots at once, against the time of one key alone. Everything
//! is real but the keys: signed tickets, the CTAP client over in-memory
//! CTAPHID, attestation verification, generated PINs sealed with age, and
//! the SQLite ledger on disk.
//!
//! Target: 16 keys within 1.25× the time of one.
//!
//! `cargo bench --bench bulk` (env BULK_KEYS, BULK_KEYGEN_MS to vary).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/provision_support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward::age::Identity;
use keyward::provision::Cancel;
use keyward::provision::bulk::manifest::{self, Format};
use keyward::provision::bulk::pins::PinFile;
use keyward::provision::bulk::progress::Silent;
use keyward::provision::bulk::{self, BulkOptions, KeyBay};
use keyward::sim::Faults;
use keyward::sim::ca::SimCa;
use keyward::sim::key::SimBay;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One bulk run of `keys` keys through `keys` slots; its wall time.
fn run(keys: usize, keygen: Duration) -> Duration {
    let rig = support::rig();
    let text: String = (0..keys)
        .map(|i| {
            let mut c = support::claims("standard");
            c.sub = format!("bench{i}@example.test");
            let t = String::from_utf8(rig.ticket(&c)).unwrap();
            format!("{}\n", serde_json::json!({ "ticket": t }))
        })
        .collect();
    let m = manifest::parse(text.as_bytes(), Format::JsonLines, 16 * 1024).unwrap();
    let id = Identity::generate(&mut keyward::random::fill);
    let pins = PinFile::new(&rig.dir.path().join("pins.age"), vec![id.recipient()]).unwrap();
    let ca = Arc::new(SimCa::from_seed(SimCa::DEFAULT_SEED).unwrap());
    let mut opts = BulkOptions::new();
    opts.parallel = keys;
    opts.bays = (0..keys)
        .map(|_| Arc::new(SimBay::new(ca.clone(), Faults::none(), keygen)) as Arc<dyn KeyBay>)
        .collect();
    let t0 = Instant::now();
    let report = bulk::run(&rig.station, &m, &opts, &pins, &Silent, &Cancel::new()).unwrap();
    let took = t0.elapsed();
    assert_eq!(report.summary.bound, keys, "{:?}", report.summary);
    assert_eq!(pins.len(), keys);
    took
}

fn main() {
    let keys = env("BULK_KEYS", 16) as usize;
    let keygen = Duration::from_millis(env("BULK_KEYGEN_MS", 1500));
    // Warm up (CA derivation, first ledger, code paths).
    run(1, Duration::ZERO);
    let one: Vec<Duration> = (0..3).map(|_| run(1, keygen)).collect();
    let many: Vec<Duration> = (0..3).map(|_| run(keys, keygen)).collect();
    let median = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        v[v.len() / 2]
    };
    let (t1, tn) = (median(&one), median(&many));
    let ratio = tn.as_secs_f64() / t1.as_secs_f64();
    println!(
        "bulk: keygen latency per key      {:>8.3} s",
        keygen.as_secs_f64()
    );
    println!(
        "bulk: 1 key, 1 slot (median of 3)  {:>8.3} s",
        t1.as_secs_f64()
    );
    println!(
        "bulk: {keys} keys, {keys} slots (median of 3) {:>8.3} s",
        tn.as_secs_f64()
    );
    println!(
        "bulk: ratio {keys} keys / 1 key = {ratio:.3} (target <= 1.25) -> {}",
        if ratio <= 1.25 { "PASS" } else { "FAIL" }
    );
    println!(
        "bulk: throughput {:.1} keys/min",
        keys as f64 / tn.as_secs_f64() * 60.0
    );
}

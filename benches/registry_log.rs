//! Verifiable-log benchmarks: `cargo bench --bench registry_log`.
//!
//! Prints, for a log of N events (default 1,000,000; `KEYWARD_BENCH_LOG_EVENTS`
//! to change it):
//! `log_tree_build events=N seconds=… events_per_s=…` — the in-memory tree
//! built from N digests (what a registry does at start);
//! `log_inclusion size=N prove_us=… verify_us=… path=…` — per event, one
//! inclusion proof produced by the registry and checked by a station;
//! `log_consistency size=N prove_us=… verify_us=…` — per sync, one
//! consistency proof from a random earlier size;
//! `registry_load events=N seconds=…` — a SQLite registry rebuilding its
//! log at open;
//! `registry_verify events=N seconds=… events_per_s=…` — `registry verify`
//! from scratch on that SQLite registry (every event re-hashed, the tree
//! rebuilt, the signed head checked with the registry key).
//! The registry is filled by direct inserts (the bench measures the log,
//! not pushes).

use std::time::Instant;

use keyward::registry::log::{self, EventFields, LogTree, TreeHead};
use keyward::registry::{Registry, verify};
use keyward::store::StationKey;

/// A small deterministic generator (xorshift), so runs compare.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn event(i: u64) -> (String, String, i64, &'static str, String, i64) {
    (
        format!("kiosk-{}", i % 100),
        format!("{:032x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        (i / 100) as i64 + 1,
        "binding.created",
        format!(
            r#"{{"binding":"{:032x}","device":{{"kind":"yubikey","serial":"{}"}},"state":"active","subject":"user{i}@example.org"}}"#,
            i.wrapping_mul(31),
            10_000_000 + i
        ),
        1_800_000_000 + i as i64,
    )
}

fn digest(e: &(String, String, i64, &'static str, String, i64)) -> log::Hash {
    log::event_digest(&EventFields {
        station: &e.0,
        event_id: &e.1,
        seq: e.2,
        kind: e.3,
        payload: &e.4,
        created_at: e.5,
    })
}

fn tree_benches(n: u64) {
    let digests: Vec<log::Hash> = (0..n).map(|i| digest(&event(i))).collect();
    let t = Instant::now();
    let mut tree = LogTree::new();
    for d in &digests {
        tree.push(*d);
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "log_tree_build events={n} seconds={s:.2} events_per_s={:.0}",
        n as f64 / s
    );
    let root = tree.root();
    let mut rng = Rng(0x5eed);
    let k = 20_000;
    let idx: Vec<u64> = (0..k).map(|_| rng.next() % n).collect();
    let t = Instant::now();
    let proofs: Vec<Vec<log::Hash>> = idx.iter().map(|&i| tree.inclusion(i).unwrap()).collect();
    let prove = t.elapsed().as_secs_f64() / k as f64;
    let t = Instant::now();
    for (&i, p) in idx.iter().zip(&proofs) {
        log::verify_inclusion(n, &root, &digests[i as usize], i, p).unwrap();
    }
    let check = t.elapsed().as_secs_f64() / k as f64;
    println!(
        "log_inclusion size={n} prove_us={:.2} verify_us={:.2} path={}",
        prove * 1e6,
        check * 1e6,
        proofs[0].len()
    );
    // Consistency from random earlier sizes: each old root from a prefix.
    let k = 200;
    let olds: Vec<u64> = (0..k).map(|_| 1 + rng.next() % (n - 1)).collect();
    let mut prefix_roots = std::collections::HashMap::new();
    {
        let mut sorted = olds.clone();
        sorted.sort_unstable();
        let mut p = LogTree::new();
        let mut next = sorted.into_iter().peekable();
        for d in &digests {
            p.push(*d);
            while next.next_if(|&s| s == p.size()).is_some() {
                prefix_roots.insert(p.size(), p.root());
            }
        }
    }
    let t = Instant::now();
    let cproofs: Vec<Vec<log::Hash>> = olds.iter().map(|&o| tree.consistency(o).unwrap()).collect();
    let prove = t.elapsed().as_secs_f64() / k as f64;
    let t = Instant::now();
    for (o, p) in olds.iter().zip(&cproofs) {
        log::verify_consistency(*o, &prefix_roots[o], n, &root, p).unwrap();
    }
    let check = t.elapsed().as_secs_f64() / k as f64;
    println!(
        "log_consistency size={n} prove_us={:.2} verify_us={:.2}",
        prove * 1e6,
        check * 1e6
    );
}

/// A SQLite registry holding `n` events and their leaves, one signed head.
fn fill(path: &std::path::Path, n: u64, key: &StationKey) -> std::io::Result<()> {
    let mut c = rusqlite::Connection::open(path).map_err(std::io::Error::other)?;
    let tx = c.transaction().map_err(std::io::Error::other)?;
    {
        let mut st = tx
            .prepare("INSERT INTO stations(id, public_key, key_id, added_at, head_hash) VALUES (?1, ?2, 'bench', 0, ?3)")
            .map_err(std::io::Error::other)?;
        for s in 0..100 {
            st.execute(rusqlite::params![
                format!("kiosk-{s}"),
                [0u8; 32].as_slice(),
                [0u8; 32].as_slice()
            ])
            .map_err(std::io::Error::other)?;
        }
        let mut ev = tx
            .prepare("INSERT INTO events(station_id, event_id, seq, kind, payload, created_at, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)")
            .map_err(std::io::Error::other)?;
        let mut leaf = tx
            .prepare(
                "INSERT INTO log_leaves(idx, station_id, event_id, digest) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(std::io::Error::other)?;
        let mut tree = LogTree::new();
        for i in 0..n {
            let e = event(i);
            let d = digest(&e);
            ev.execute(rusqlite::params![e.0, e.1, e.2, e.3, e.4, e.5])
                .map_err(std::io::Error::other)?;
            leaf.execute(rusqlite::params![i as i64, e.0, e.1, d.as_slice()])
                .map_err(std::io::Error::other)?;
            tree.push(d);
        }
        let head = TreeHead {
            size: n,
            root: tree.root(),
            at: 1_900_000_000,
        };
        tx.execute(
            "INSERT INTO tree_heads(size, root, at, signature) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![
                n as i64,
                head.root.as_slice(),
                head.at,
                log::sign_head(key, &head).as_slice()
            ],
        )
        .map_err(std::io::Error::other)?;
        tx.execute("UPDATE log_state SET size = ?1 WHERE id = 1", [n as i64])
            .map_err(std::io::Error::other)?;
    }
    tx.commit().map_err(std::io::Error::other)
}

fn registry_benches(n: u64) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("registry.db");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let key = StationKey::generate();
    drop(rt.block_on(Registry::open(db.to_str().unwrap())).unwrap());
    let t = Instant::now();
    fill(&db, n, &key).unwrap();
    eprintln!("(filled {n} events in {:.1} s)", t.elapsed().as_secs_f64());
    let reg = rt.block_on(Registry::open(db.to_str().unwrap())).unwrap();
    let t = Instant::now();
    let size = rt.block_on(reg.load_log()).unwrap();
    println!(
        "registry_load events={size} seconds={:.2}",
        t.elapsed().as_secs_f64()
    );
    drop(reg);
    let reg = rt.block_on(Registry::open(db.to_str().unwrap())).unwrap();
    let r = rt
        .block_on(verify::verify(&reg, Some(&key.public_key()), None))
        .unwrap();
    assert_eq!(r.events, n);
    println!(
        "registry_verify events={} seconds={:.2} events_per_s={:.0}",
        r.events, r.seconds, r.events_per_second
    );
}

fn main() {
    let n: u64 = std::env::var("KEYWARD_BENCH_LOG_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
        .max(2);
    tree_benches(n);
    registry_benches(n);
}

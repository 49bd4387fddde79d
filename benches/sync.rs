//! Sync benchmarks: `cargo bench --bench sync`.
//!
//! Prints
//! `sync_station db=sqlite|postgres events=N events_per_s=…` — one station
//! draining N events to a registry on loopback (goal: >= 10,000/s on each
//! database), and
//! `sync_fleet db=postgres stations=10|100 events=N events_per_s=…` — the
//! registry's ingest rate with that many stations pushing at once.
//! PostgreSQL is started from Debian's package as in the tests; without it
//! those lines say SKIP.

#[path = "../tests/sync_support/pg.rs"]
mod pg;

use std::sync::Arc;
use std::time::Instant;

use keyward::registry::{Registry, server};
use keyward::store::Ledger;
use keyward::sync::client::{Client, Options};

fn now() -> i64 {
    keyward::cli::sync::now()
}

/// A station ledger with `n` outbox events (written directly: the bench
/// measures delivery, not enrollment).
fn station(dir: &std::path::Path, id: &str, n: usize) -> Ledger {
    let db = dir.join(format!("{id}.db"));
    let key = keyward::store::StationKey::generate();
    let ledger = Ledger::open(&db, key).unwrap();
    let mut c = rusqlite::Connection::open(&db).unwrap();
    let tx = c.transaction().unwrap();
    {
        let mut ins = tx
            .prepare("INSERT INTO outbox(event_id, kind, payload, created_at) VALUES (?1, 'binding.created', ?2, ?3)")
            .unwrap();
        for i in 0..n {
            let mut b = [0u8; 16];
            keyward::random::fill(&mut b);
            let payload = format!(
                r#"{{"binding":"{}","subject":"user{i}@example.org","state":"active","device":{{"kind":"yubikey","serial":"{}"}}}}"#,
                hex::encode(b),
                10_000_000 + i
            );
            ins.execute(rusqlite::params![hex::encode(b), payload, now()])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    ledger
}

struct Served {
    url: String,
    reg: Arc<Registry>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

async fn serve(db: &str) -> Served {
    let reg = Arc::new(Registry::open(db).await.unwrap());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(reg.clone(), l, Arc::new(now), async {
        let _ = rx.await;
    }));
    Served {
        url,
        reg,
        stop: Some(tx),
    }
}

async fn fleet(db: &str, dir: &std::path::Path, name: &str, stations: usize, per: usize) -> f64 {
    let s = serve(db).await;
    let mut ledgers = Vec::new();
    for i in 0..stations {
        let id = format!("{name}-{stations}-{i}");
        let l = station(dir, &id, per);
        s.reg
            .add_station(&id, &l.station_key().unwrap().public_key(), now())
            .await
            .unwrap();
        ledgers.push((id, l));
    }
    let t = Instant::now();
    let tasks: Vec<_> = ledgers
        .into_iter()
        .map(|(id, mut l)| {
            let c = Client::new(Options::new(&s.url, &id)).unwrap();
            tokio::spawn(async move { c.drain(&mut l, now).await.unwrap().delivered })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let rate = total as f64 / t.elapsed().as_secs_f64();
    assert_eq!(total as usize, stations * per);
    drop(s.stop);
    rate
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let events = 20_000;
    let sqlite = dir.path().join("registry.db").display().to_string();
    let r = rt.block_on(fleet(&sqlite, dir.path(), "sqlite", 1, events));
    println!("sync_station db=sqlite events={events} events_per_s={r:.0}");
    let Some(pg) = pg::PgServer::start() else {
        println!("sync_station db=postgres SKIP (PostgreSQL not installed)");
        return;
    };
    let r = rt.block_on(fleet(&pg.url, dir.path(), "pg", 1, events));
    println!("sync_station db=postgres events={events} events_per_s={r:.0}");
    for (stations, per) in [(10, 2_000), (100, 500)] {
        let r = rt.block_on(fleet(&pg.url, dir.path(), "pg", stations, per));
        println!(
            "sync_fleet db=postgres stations={stations} events={} events_per_s={r:.0}",
            stations * per
        );
    }
}

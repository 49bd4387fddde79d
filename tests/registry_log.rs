//! The registry's verifiable log end to end, on SQLite and on a real
//! PostgreSQL (docs/sync.md, "Verifiable log"): a push's ack proves every
//! event with a tree head signed by the registry key; `registry verify`
//! fails on an event altered, removed or reordered in the database (changed
//! here with rusqlite or tokio-postgres directly, behind the registry's
//! back); a registry that rewrote its log is caught by the station at its
//! next sync, and the events stay queued.
#![cfg(feature = "sim")]

mod sync_support;

use std::path::Path;

use keyward::registry::log;
use keyward::sync::client::{self, SyncError};
use keyward::sync::tree_head::{self, LogCheckError};
use sync_support::{Db, Kind, RegistryServer, Station, now};

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite { $( #[test] fn $name() { if let Some(db) = super::Db::new(super::Kind::Sqlite) { super::$name(&db, super::Kind::Sqlite) } } )* }
        mod on_postgres { $( #[test] #[ignore = "needs PostgreSQL (scripts/test installs it)"] fn $name() { if let Some(db) = super::Db::new(super::Kind::Postgres) { super::$name(&db, super::Kind::Postgres) } } )* }
    };
}

both!(
    ack_proofs_verify_and_the_log_verifies,
    tampering_fails_registry_verify,
    rewritten_log_is_caught_at_next_sync,
);

/// Statements run on the registry database behind the registry's back.
fn sql(db: &Db, kind: Kind, stmts: &str) {
    match kind {
        Kind::Sqlite => rusqlite::Connection::open(&db.url)
            .unwrap()
            .execute_batch(stmts)
            .unwrap(),
        Kind::Postgres => sync_support::rt().block_on(async {
            let (c, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            c.batch_execute(stmts).await.unwrap();
        }),
    }
}

/// One text value from the registry database.
fn sql_text(db: &Db, kind: Kind, query: &str) -> String {
    match kind {
        Kind::Sqlite => rusqlite::Connection::open(&db.url)
            .unwrap()
            .query_row(query, [], |r| r.get(0))
            .unwrap(),
        Kind::Postgres => sync_support::rt().block_on(async {
            let (c, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            c.query_one(query, &[]).await.unwrap().get(0)
        }),
    }
}

fn keyward() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"));
    c.env_remove("KEYWARD_CONFIG")
        .env_remove("KEYWARD_DB")
        .env("RUST_LOG", "warn");
    c
}

/// `registry verify` on `db`; its output.
fn verify(db: &Db, extra: &[&str]) -> std::process::Output {
    keyward()
        .args(["--db", &db.url, "registry", "verify"])
        .args(extra)
        .output()
        .unwrap()
}

/// Exit 7 and one line on stderr holding each of `what`.
fn assert_log_failure(out: &std::process::Output, what: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    for w in what {
        assert!(err.contains(w), "{w:?} not in: {err}");
    }
}

fn assert_verified(out: &std::process::Output, events: u64) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&format!("{events} event(s)")), "{text}");
    text
}

/// Enroll `n` keys, one event each: the `notify.*` events an enrollment
/// also queues (docs/notify.md) are dropped from the outbox (not a covered
/// table), so the log's sizes below count bindings.
fn enroll(st: &mut Station, n: usize) {
    st.enroll_many(n);
    rusqlite::Connection::open(&st.db)
        .unwrap()
        .execute("DELETE FROM outbox WHERE kind LIKE 'notify.%'", [])
        .unwrap();
}

/// A registry with its key in `dir`, a station enrolled with `n` events.
fn setup(db: &Db, dir: &Path, id: &str, n: usize) -> (RegistryServer, Station, [u8; 32]) {
    let reg = RegistryServer::start_with_key(&db.url, &dir.join("registry.key"));
    let pk = keyward::store::station_key::load_pinned(&dir.join("station.pub")).unwrap();
    let mut st = Station::new(id);
    reg.enroll(id, &st.public_key());
    enroll(&mut st, n);
    (reg, st, pk)
}

fn kept(st: &Station) -> tree_head::KeptHead {
    client::kept_head(&st.ledger)
        .unwrap()
        .expect("a kept tree head")
}

fn ack_proofs_verify_and_the_log_verifies(db: &Db, _: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let (reg, mut st, pk) = setup(db, dir.path(), "kiosk-log", 3);

    // The ack of a push, checked by hand: a signed head, one append proof
    // for the three new events.
    let opts = client::Options::new(&reg.url(), &st.id);
    let (push, _) = client::next_push(&st.ledger, &opts).unwrap().unwrap();
    let ack = reg.rt.block_on(reg.reg.ingest(&push, None, now())).unwrap();
    let l = ack.log.as_ref().expect("an ack with its log");
    let a = l.appended.as_ref().expect("an append proof");
    assert_eq!((l.size, l.inclusion.len(), a.first), (3, 0, 0));
    let root: log::Hash = hex::decode(&l.root).unwrap().try_into().unwrap();
    let head = log::TreeHead {
        size: l.size,
        root,
        at: l.at,
    };
    assert!(log::verify_head(
        &pk,
        &head,
        &hex::decode(&l.signature).unwrap()
    ));
    let digest = |e: &keyward::sync::wire::Event| {
        log::event_digest(&log::EventFields {
            station: &st.id,
            event_id: &e.event_id,
            seq: e.seq,
            kind: &e.kind,
            payload: &e.payload.to_string(),
            created_at: e.created_at,
        })
    };
    let digests: Vec<log::Hash> = push.events.iter().map(digest).collect();
    let frontier = log::parse_path(&a.frontier).unwrap();
    log::verify_append(a.first, frontier.clone(), &digests, l.size, &root).unwrap();
    let mut swapped = digests.clone();
    swapped.swap(0, 2);
    assert!(log::verify_append(a.first, frontier, &swapped, l.size, &root).is_err());
    tree_head::check(&push, ack.log.as_ref(), None, Some(&pk)).unwrap();
    // The same push again: every event held already, one inclusion proof
    // each, at the index where it went in first.
    let again = reg.rt.block_on(reg.reg.ingest(&push, None, now())).unwrap();
    let l2 = again.log.as_ref().unwrap();
    assert!(l2.appended.is_none());
    for (i, (e, p)) in push.events.iter().zip(&l2.inclusion).enumerate() {
        assert_eq!(
            (p.event_id.as_str(), p.index),
            (e.event_id.as_str(), i as u64)
        );
        let path = log::parse_path(&p.path).unwrap();
        log::verify_inclusion(l2.size, &root, &digest(e), p.index, &path).unwrap();
    }

    // The station's drain: the same events are duplicates now, proven too.
    let d = st.drain_pinned(&reg.rt, &reg.url(), pk).unwrap();
    assert_eq!((d.delivered, d.duplicates), (3, 3));
    let k = kept(&st);
    assert!(k.verified);
    assert_eq!(k.size, 3);
    // More events: the new head is proven consistent with the kept one.
    enroll(&mut st, 2);
    st.drain_pinned(&reg.rt, &reg.url(), pk).unwrap();
    assert_eq!(kept(&st).size, 5);
    // The station forgets every ack: all duplicates, the same tree.
    rusqlite::Connection::open(&st.db)
        .unwrap()
        .execute("UPDATE outbox SET delivered_at = NULL", [])
        .unwrap();
    let d = st.drain_pinned(&reg.rt, &reg.url(), pk).unwrap();
    assert_eq!((d.delivered, d.duplicates), (5, 5));
    assert_eq!(kept(&st).size, 5);

    // Without a pin the station keeps working, the head marked unverified.
    enroll(&mut st, 1);
    st.drain(&reg.rt, &reg.url()).unwrap();
    let k = kept(&st);
    assert_eq!((k.size, k.verified), (6, false));
    let status = keyward()
        .args(["--config", st.config.to_str().unwrap(), "sync", "status"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("registry log:       6 event(s)"), "{text}");
    assert!(text.contains("UNVERIFIED"), "{text}");

    // The whole log from scratch, with the key and the station's head.
    let status = keyward()
        .args([
            "--config",
            st.config.to_str().unwrap(),
            "--json",
            "sync",
            "status",
        ])
        .output()
        .unwrap();
    let head_file = dir.path().join("head.json");
    std::fs::write(&head_file, &status.stdout).unwrap();
    let out = verify(
        db,
        &[
            "--key-pub",
            dir.path().join("station.pub").to_str().unwrap(),
            "--head",
            head_file.to_str().unwrap(),
        ],
    );
    let text = assert_verified(&out, 6);
    assert!(text.contains("signatures verified"), "{text}");
    assert!(text.contains("station's head at size 6"), "{text}");
    // Another registry's key: the heads are not its.
    let other = tempfile::tempdir().unwrap();
    keyward::store::StationKey::load_or_create(&other.path().join("k")).unwrap();
    let out = verify(
        db,
        &[
            "--key-pub",
            other.path().join("station.pub").to_str().unwrap(),
        ],
    );
    assert_log_failure(&out, &["is not signed by the key in --key-pub"]);
}

fn tampering_fails_registry_verify(db: &Db, kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let (reg, mut st, pk) = setup(db, dir.path(), "kiosk-tamper", 2);
    st.drain_pinned(&reg.rt, &reg.url(), pk).unwrap();
    enroll(&mut st, 2);
    st.drain_pinned(&reg.rt, &reg.url(), pk).unwrap();
    drop(reg);
    assert_verified(&verify(db, &[]), 4);
    let leaf = |i: i64| {
        sql_text(
            db,
            kind,
            &format!("SELECT event_id FROM log_leaves WHERE idx = {i}"),
        )
    };
    let (e1, e2) = (leaf(1), leaf(2));

    // A payload altered in place.
    let payload = sql_text(
        db,
        kind,
        &format!("SELECT payload FROM events WHERE event_id = '{e1}'"),
    );
    sql(
        db,
        kind,
        &format!(
            "UPDATE events SET payload = '{{\"binding\":\"forged\"}}' WHERE event_id = '{e1}'"
        ),
    );
    assert_log_failure(
        &verify(db, &[]),
        &["log leaf 1", &e1, "kiosk-tamper", "was altered"],
    );
    sql(
        db,
        kind,
        &format!(
            "UPDATE events SET payload = '{}' WHERE event_id = '{e1}'",
            payload.replace('\'', "''")
        ),
    );
    assert_verified(&verify(db, &[]), 4);

    // Two leaves swapped, each with its digest (every row still matches its
    // event): the signed head at size 2 no longer matches.
    let swap = "UPDATE log_leaves SET idx = -1 WHERE idx = 0;
                UPDATE log_leaves SET idx = 0 WHERE idx = 1;
                UPDATE log_leaves SET idx = 1 WHERE idx = -1;";
    sql(db, kind, swap);
    assert_log_failure(
        &verify(db, &[]),
        &["log leaves 0..2 do not hash to the tree head signed at size 2"],
    );
    sql(db, kind, swap);
    assert_verified(&verify(db, &[]), 4);

    // The last leaf's row deleted: the signed head is beyond the log.
    let last = sql_text(db, kind, "SELECT event_id FROM log_leaves WHERE idx = 3");
    sql(db, kind, "DELETE FROM log_leaves WHERE idx = 3");
    assert_log_failure(
        &verify(db, &[]),
        &["the signed tree head has size 4 but the log holds 3 leaves"],
    );
    sql(db, kind, "DELETE FROM tree_heads WHERE size = 4");
    assert_log_failure(&verify(db, &[]), &["is stored but not in the log", &last]);

    // An event row deleted.
    sql(
        db,
        kind,
        &format!("DELETE FROM events WHERE event_id = '{e2}'"),
    );
    assert_log_failure(
        &verify(db, &[]),
        &["log leaf 2", &e2, "missing from the events table"],
    );
}

fn rewritten_log_is_caught_at_next_sync(db: &Db, kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let (reg, mut st, pk) = setup(db, dir.path(), "kiosk-rewrite", 4);
    st.drain_pinned(&reg.rt, &reg.url(), pk).unwrap();
    assert_eq!(kept(&st).size, 4);
    drop(reg);

    // The registry drops event 1 and rebuilds its log without it: indices
    // renumbered, the counter and the signed heads to match.
    let gone = sql_text(db, kind, "SELECT event_id FROM log_leaves WHERE idx = 1");
    sql(
        db,
        kind,
        &format!(
            "DELETE FROM events WHERE event_id = '{gone}';
             DELETE FROM log_leaves WHERE idx = 1;
             UPDATE log_leaves SET idx = 1 WHERE idx = 2;
             UPDATE log_leaves SET idx = 2 WHERE idx = 3;
             UPDATE log_state SET size = 3;
             DELETE FROM tree_heads;"
        ),
    );
    let reg = RegistryServer::start_with_key(&db.url, &dir.path().join("registry.key"));
    enroll(&mut st, 2);
    let e = st.drain_pinned(&reg.rt, &reg.url(), pk).unwrap_err();
    assert!(
        matches!(&e, SyncError::Log(LogCheckError::Inconsistent { size: 4 })),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "the registry's log is not consistent with the tree head it signed before (size 4): the registry rewrote its log; stop syncing and report it"
    );
    assert_eq!(st.backlog(), 2, "the events stay queued");
    assert_eq!(kept(&st).size, 4, "the old head is kept");

    // The command line: exit 7, one line, nothing marked.
    let cfg = std::fs::read_to_string(&st.config).unwrap()
        + &format!(
            "\n[sync]\nregistry = \"{}\"\nregistry_key = \"{}\"\n",
            reg.url(),
            dir.path().join("station.pub").display()
        );
    std::fs::write(&st.config, cfg).unwrap();
    let out = keyward()
        .args(["--config", st.config.to_str().unwrap(), "sync", "--once"])
        .output()
        .unwrap();
    assert_log_failure(
        &out,
        &["not consistent with the tree head it signed before (size 4)"],
    );
    assert_eq!(st.backlog(), 2, "the events stay queued");
}

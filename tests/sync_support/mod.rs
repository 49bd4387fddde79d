//! Sync test rig: a registry served on loopback (SQLite file or a real
//! PostgreSQL started from Debian's package in a temporary directory), a
//! fault-injecting TCP proxy in front of it, and stations with real ledgers.
#![allow(dead_code)]

pub mod pg;
pub mod proxy;
pub mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use keyward::registry::{Registry, server};
use keyward::store::{CredentialRecord, DeviceRecord, EnrollmentRecord, Ledger, TicketRecord};

pub fn now() -> i64 {
    keyward::cli::sync::now()
}

/// A registry database: a SQLite file or a database on a PostgreSQL server.
pub struct Db {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<pg::PgServer>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

impl Db {
    /// Always `Some`: the PostgreSQL tests are `#[ignore]`d for a plain
    /// `cargo test`, and once asked for, a missing PostgreSQL fails them.
    pub fn new(kind: Kind) -> Option<Db> {
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                Some(Db {
                    url: dir.path().join("registry.db").display().to_string(),
                    _dir: Some(dir),
                    _pg: None,
                })
            }
            Kind::Postgres => {
                let pg = pg::PgServer::start().expect(
                    "this test needs PostgreSQL: run scripts/test (it installs Debian's postgresql)",
                );
                Some(Db {
                    url: pg.url.clone(),
                    _dir: None,
                    _pg: Some(pg),
                })
            }
        }
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A registry serving on a loopback port, stoppable and restartable there.
pub struct RegistryServer {
    pub addr: SocketAddr,
    pub db: String,
    pub rt: tokio::runtime::Runtime,
    pub reg: Arc<Registry>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RegistryServer {
    pub fn start(db: &str) -> RegistryServer {
        let rt = rt();
        let reg = rt.block_on(Registry::open(db)).unwrap();
        Self::serve(db, rt, reg)
    }

    /// A registry registering credentials with `idp` (docs/idp.md).
    pub fn start_with_idp(db: &str, idp: Arc<dyn keyward::idp::Provider>) -> RegistryServer {
        let rt = rt();
        let reg = rt.block_on(Registry::open(db)).unwrap().with_idp(idp);
        Self::serve(db, rt, reg)
    }

    /// A registry signing its tree heads with the key at `key` (created
    /// with its station.pub beside it if missing), its log loaded.
    pub fn start_with_key(db: &str, key: &Path) -> RegistryServer {
        let rt = rt();
        let key = keyward::store::StationKey::load_or_create(key).unwrap();
        let reg = rt.block_on(Registry::open_with_key(db, key)).unwrap();
        Self::serve(db, rt, reg)
    }

    fn serve(db: &str, rt: tokio::runtime::Runtime, reg: Registry) -> RegistryServer {
        let reg = Arc::new(reg);
        let mut s = RegistryServer {
            addr: "127.0.0.1:0".parse().unwrap(),
            db: db.to_string(),
            rt,
            reg,
            stop: None,
            task: None,
        };
        s.listen();
        s
    }

    fn listen(&mut self) {
        let l = self
            .rt
            .block_on(tokio::net::TcpListener::bind(self.addr))
            .unwrap();
        self.addr = l.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let reg = self.reg.clone();
        self.task = Some(self.rt.spawn(async move {
            server::serve(reg, l, Arc::new(now), async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        }));
        self.stop = Some(tx);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Registry down (the port closes).
    pub fn down(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = self.rt.block_on(t);
        }
    }

    /// Registry back on the same port.
    pub fn up(&mut self) {
        self.listen();
    }

    pub fn enroll(&self, id: &str, key: &[u8; 32]) {
        self.rt
            .block_on(self.reg.add_station(id, key, now()))
            .unwrap();
    }

    pub fn events(&self, station: Option<&str>) -> Vec<keyward::registry::EventRow> {
        self.rt.block_on(self.reg.events(station)).unwrap()
    }

    pub fn bindings(&self) -> Vec<keyward::registry::BindingRow> {
        self.rt.block_on(self.reg.bindings(None, None)).unwrap()
    }

    pub fn incidents(&self) -> Vec<keyward::registry::Incident> {
        self.rt.block_on(self.reg.incidents()).unwrap()
    }

    pub fn stations(&self) -> Vec<keyward::registry::StationInfo> {
        self.rt.block_on(self.reg.stations()).unwrap()
    }
}

impl Drop for RegistryServer {
    fn drop(&mut self) {
        self.down();
    }
}

/// A station: a ledger with its key in a temporary directory, and a
/// configuration file naming it.
pub struct Station {
    pub id: String,
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub config: PathBuf,
    pub ledger: Ledger,
    pub serial: u32,
}

impl Station {
    pub fn new(id: &str) -> Station {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ledger.db");
        let ledger = Ledger::open_default_key(&db).unwrap();
        let config = dir.path().join("keyward.toml");
        std::fs::write(
            &config,
            format!("station = \"{id}\"\nledger = \"ledger.db\"\n"),
        )
        .unwrap();
        Station {
            id: id.into(),
            dir,
            db,
            config,
            ledger,
            serial: 0,
        }
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.ledger.station_key().unwrap().public_key()
    }

    pub fn key_path(&self) -> PathBuf {
        keyward::store::station_key::path_beside(&self.db)
    }

    /// Enroll a key for `subject` (one binding.created event), returning the
    /// binding id and the serial.
    pub fn enroll(&mut self, subject: &str) -> (String, String) {
        self.serial += 1;
        let serial = format!("{}{:04}", 9_000 + self.id.len(), self.serial);
        let rec = EnrollmentRecord {
            subject: subject.into(),
            ticket: TicketRecord {
                jti: format!("{}-{}-{}", self.id, self.serial, now()),
                digest: "ab".repeat(32),
                issuer: "https://idp.example.com".into(),
                ial: Some(2),
            },
            device: DeviceRecord {
                kind: "yubikey".into(),
                serial: Some(serial.clone()),
                aaguid: None,
                model: None,
                firmware: Some("5.7.1".into()),
            },
            policy: Some("default".into()),
            credentials: vec![CredentialRecord {
                kind: "piv".into(),
                credential_id: None,
                rp_id: None,
                slot: Some("9a".into()),
                algorithm: "p256".into(),
                public_key: vec![1, 2, 3],
                attestation: None,
                attestation_format: None,
            }],
            actor: "test".into(),
        };
        let id = self.ledger.commit_enrollment(&rec, now()).unwrap();
        (id, serial)
    }

    pub fn enroll_many(&mut self, n: usize) -> Vec<String> {
        (0..n).map(|i| self.enroll(&format!("user{i}")).0).collect()
    }

    pub fn event_ids(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .ledger
            .outbox_list(true, 1_000_000)
            .unwrap()
            .into_iter()
            .map(|(e, _)| e.event_id)
            .collect();
        v.sort();
        v
    }

    pub fn backlog(&self) -> i64 {
        self.ledger.sync_state().unwrap().backlog
    }

    pub fn client(&self, url: &str) -> keyward::sync::client::Client {
        let mut o = keyward::sync::client::Options::new(url, &self.id);
        o.timeout = Duration::from_secs(2);
        keyward::sync::client::Client::new(o).unwrap()
    }

    pub fn drain(
        &mut self,
        rt: &tokio::runtime::Runtime,
        url: &str,
    ) -> Result<keyward::sync::client::Drained, keyward::sync::client::SyncError> {
        let c = self.client(url);
        rt.block_on(c.drain(&mut self.ledger, now))
    }

    /// Drain with the registry's public key pinned (`[sync] registry_key`).
    pub fn drain_pinned(
        &mut self,
        rt: &tokio::runtime::Runtime,
        url: &str,
        registry_key: [u8; 32],
    ) -> Result<keyward::sync::client::Drained, keyward::sync::client::SyncError> {
        let mut o = keyward::sync::client::Options::new(url, &self.id);
        o.timeout = Duration::from_secs(5);
        o.registry_key = Some(registry_key);
        let c = keyward::sync::client::Client::new(o).unwrap();
        rt.block_on(c.drain(&mut self.ledger, now))
    }

    /// A copy of the ledger file as it is now (a backup), with the key.
    pub fn backup(&self, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        let c = rusqlite::Connection::open(&self.db).unwrap();
        c.execute("VACUUM INTO ?1", [to.join("ledger.db").to_str().unwrap()])
            .unwrap();
        std::fs::copy(self.key_path(), to.join("station.key")).unwrap();
    }
}

/// Every event of `station` stored exactly once at the registry, and the
/// station's outbox drained.
pub fn assert_exactly_once(reg: &RegistryServer, st: &Station) {
    let mut stored: Vec<String> = reg
        .events(Some(&st.id))
        .into_iter()
        .map(|e| e.event_id)
        .collect();
    stored.sort();
    let n = stored.len();
    stored.dedup();
    assert_eq!(n, stored.len(), "an event stored twice");
    assert_eq!(
        stored,
        st.event_ids(),
        "registry events differ from the station's outbox"
    );
    assert_eq!(st.backlog(), 0, "outbox not drained");
}

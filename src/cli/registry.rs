//! `keyward registry …`: serve the central registry and query it
//! (docs/sync.md). `--db` names the registry database: a SQLite file, or
//! `postgres://…` for a fleet.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use ed25519_dalek::pkcs8::DecodePublicKey;

use super::{Failure, GlobalArgs};
use crate::registry::{Registry, server};
use crate::store::rfc3339;
use crate::sync::bundle;

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Serve the registry over HTTPS (--tls-cert, --tls-key), or plain HTTP
    /// on a loopback address or behind a TLS-terminating proxy
    /// (--behind-tls-proxy)
    Serve(ServeArgs),
    /// Enroll and list stations
    #[command(subcommand)]
    Stations(StationsCommand),
    /// Events stored, by station and sequence number
    Events {
        #[arg(long, value_name = "ID")]
        station: Option<String>,
    },
    /// The current state of every binding in the fleet
    Bindings {
        #[arg(long, value_name = "S")]
        subject: Option<String>,
        #[arg(long, value_name = "N")]
        serial: Option<String>,
    },
    /// Stations whose audit chain forked or was cut back, and tickets used
    /// at two stations
    Incidents,
    /// Revoke a binding for the whole fleet: every station refuses its key
    /// (enroll, return, unblock) after its next sync
    Revoke {
        /// The binding id (`keyward registry bindings`)
        #[arg(value_name = "BINDING")]
        binding: String,
        /// Why
        #[arg(long, value_enum, value_name = "R")]
        reason: super::lifecycle::ReasonArg,
    },
    /// The fleet report: runs, completion, time to issue, resets,
    /// replacements, revocations, exceptions and incidents, per station and
    /// overall
    Report(super::registry_report::RegistryReportArgs),
    /// The webhook's notify.* delivery queue and dead-letter list
    /// (docs/notify.md)
    #[command(subcommand)]
    Notify(super::registry_notify::NotifyCommand),
    /// The identity provider the registry registers credentials with
    /// (docs/idp.md)
    #[command(subcommand)]
    Idp(super::registry_idp::IdpCommand),
    /// Ingest a bundle written by `keyward outbox export` (exactly once, as
    /// a push)
    Import {
        file: PathBuf,
        /// Write a signed ack for the kiosk's `keyward outbox ack` (must not
        /// exist yet)
        #[arg(long, value_name = "ACK", requires = "ack_key")]
        ack_out: Option<PathBuf>,
        /// The registry's ack signing key (created with its public half,
        /// station.pub, beside it if missing; give that to the kiosks as
        /// `[sync] registry_key`)
        #[arg(long, value_name = "KEY", requires = "ack_out")]
        ack_key: Option<PathBuf>,
    },
    /// Check the whole verifiable log from scratch: every event against its
    /// leaf, the tree against every signed tree head (exit 7 on a failure)
    Verify {
        /// The registry key's public half (PEM, the station.pub beside
        /// `serve --key`): every stored tree head must be signed by it
        #[arg(long, value_name = "FILE")]
        key_pub: Option<PathBuf>,
        /// A tree head a station kept (`keyward sync status --json`, or its
        /// `tree_head` object): the log must still have it as a prefix
        #[arg(long, value_name = "FILE")]
        head: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Listen on a non-loopback address with plain HTTP: only behind a
    /// proxy that terminates TLS
    #[arg(long, conflicts_with = "tls_cert")]
    pub behind_tls_proxy: bool,
    /// Serve HTTPS with this certificate chain (PEM, leaf first)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The registry key (Ed25519 PKCS#8 PEM, created mode 0600 with its
    /// public half station.pub beside it if missing): signs the log's tree
    /// heads, as it signs air-gap acks (`import --ack-key`); give its
    /// station.pub to the stations as `[sync] registry_key`. Without it tree
    /// heads go out unsigned
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Register enrolled credentials with the identity provider this TOML
    /// file configures (Entra ID or Okta, docs/idp.md); without it the
    /// /v1/idp routes answer idp-not-configured
    #[arg(long, value_name = "FILE")]
    pub idp: Option<PathBuf>,
    #[command(flatten)]
    pub webhook: super::registry_notify::WebhookArgs,
}

#[derive(Debug, Subcommand)]
pub enum StationsCommand {
    /// Enroll a station's public key (as `keyward station show` prints it)
    Add {
        #[arg(long, value_name = "ID")]
        station_id: String,
        /// PEM public key, or a file holding it
        #[arg(long, value_name = "PEM")]
        key: String,
    },
    /// List enrolled stations and the audit head the registry holds for each
    List,
}

fn db(g: &GlobalArgs) -> Result<String> {
    g.db.as_ref()
        .map(|p| p.to_string_lossy().into_owned())
        .ok_or_else(|| {
            Failure::Usage("give the registry database: --db FILE or --db postgres://…".into())
                .into()
        })
}

pub fn run(cmd: RegistryCommand, g: &GlobalArgs) -> Result<()> {
    // Blocking HTTP, and no database: before any runtime.
    if let RegistryCommand::Idp(c) = cmd {
        return super::registry_idp::run(c, g.json);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run_async(cmd, g))
}

async fn run_async(cmd: RegistryCommand, g: &GlobalArgs) -> Result<()> {
    // The key first: a missing or unreadable key must not leave a registry
    // serving unsigned heads by mistake.
    // `import --ack-key` signs the tree heads of what it imports with the
    // same key (one registry key, two signature domains).
    let key = match &cmd {
        RegistryCommand::Serve(ServeArgs { key: Some(k), .. }) => Some((k, "--key")),
        RegistryCommand::Import {
            ack_key: Some(k), ..
        } => Some((k, "--ack-key")),
        _ => None,
    }
    .map(|(k, flag)| {
        crate::store::StationKey::load_or_create(k)
            .map_err(|e| Failure::Usage(format!("{flag}: {e}")))
    })
    .transpose()?;
    let reg = Registry::open(&db(g)?).await?;
    let reg = match key {
        Some(k) => reg.with_signer(k),
        None => reg,
    };
    let now = super::sync::now;
    match cmd {
        RegistryCommand::Serve(a) => serve(reg, a).await,
        RegistryCommand::Verify { key_pub, head } => verify(&reg, key_pub, head, g.json).await,
        RegistryCommand::Stations(StationsCommand::Add { station_id, key }) => {
            if !crate::sync::wire::valid_id(&station_id) {
                return Err(Failure::Usage(format!(
                    "station id {station_id:?}: 1-128 printable ASCII characters"
                ))
                .into());
            }
            let pem = if key.trim_start().starts_with("-----BEGIN") {
                key
            } else {
                std::fs::read_to_string(&key)
                    .with_context(|| format!("reading the key file {key}"))?
            };
            let vk = ed25519_dalek::VerifyingKey::from_public_key_pem(pem.trim())
                .map_err(|_| Failure::Usage("--key is not an Ed25519 public key in PEM (as `keyward station show` prints)".into()))?;
            reg.add_station(&station_id, &vk.to_bytes(), now()).await?;
            println!(
                "station {station_id} enrolled, key id {}",
                crate::store::station_key::key_id(&vk.to_bytes())
            );
            Ok(())
        }
        RegistryCommand::Stations(StationsCommand::List) => {
            let s = reg.stations().await?;
            print(g.json, "stations", &s, |s| {
                format!(
                    "{}  key {}  audit head {}  {} event(s)  last seen {}",
                    s.id,
                    s.key_id,
                    s.head_seq,
                    s.events,
                    s.last_seen.map_or_else(|| "never".into(), rfc3339)
                )
            })
        }
        RegistryCommand::Events { station } => {
            let e = reg.events(station.as_deref()).await?;
            print(g.json, "events", &e, |e| {
                format!(
                    "{} {:>6} {} {} {}",
                    e.station_id,
                    e.seq,
                    e.event_id,
                    e.kind,
                    rfc3339(e.created_at)
                )
            })
        }
        RegistryCommand::Bindings { subject, serial } => {
            let b = reg.bindings(subject.as_deref(), serial.as_deref()).await?;
            print(g.json, "bindings", &b, |b| {
                format!(
                    "{}  {:<9} {}  serial {}  station {}  since {}",
                    b.binding_id,
                    b.state,
                    b.subject,
                    b.device_serial.as_deref().unwrap_or("-"),
                    b.station_id,
                    rfc3339(b.created_at)
                )
            })
        }
        RegistryCommand::Incidents => {
            let i = reg.incidents().await?;
            print(g.json, "incidents", &i, |i| {
                format!(
                    "{} {} {}: {}",
                    rfc3339(i.at),
                    i.station_id,
                    i.kind,
                    i.detail
                )
            })
        }
        RegistryCommand::Revoke { binding, reason } => {
            let reason = crate::store::stock::RevokeReason::from(reason);
            let found = reg.lookup(Some(&binding), None).await?;
            if let Some(b) = found.iter().find(|b| b.binding == binding)
                && !matches!(
                    b.state.as_str(),
                    "active" | "suspended" | "lost" | "revoked"
                )
            {
                return Err(Failure::Usage(format!(
                    "binding {binding} is {}; only an active, suspended or lost binding is revoked",
                    b.state
                ))
                .into());
            }
            let changed = reg
                .set_state(&binding, "revoked", reason.as_str(), now())
                .await
                .map_err(|e| match e {
                    crate::registry::RegistryError::NoBinding(_) => {
                        anyhow::Error::from(Failure::Usage(e.to_string()))
                    }
                    e => e.into(),
                })?;
            if g.json {
                super::render::print_json(
                    true,
                    &serde_json::json!({"revoked": {"binding": binding, "reason": reason.as_str(), "changed": changed}}),
                )?;
            } else if changed {
                println!(
                    "binding {binding} revoked ({reason}); every station refuses its key after its next sync"
                );
            } else {
                println!("binding {binding} was already revoked; nothing changed");
            }
            Ok(())
        }
        RegistryCommand::Report(a) => super::registry_report::run(&reg, a, g.json).await,
        RegistryCommand::Notify(c) => super::registry_notify::run(&reg, c, g.json).await,
        RegistryCommand::Idp(_) => Err(anyhow::anyhow!(
            "registry idp runs before the async runtime"
        )),
        RegistryCommand::Import {
            file,
            ack_out,
            ack_key,
        } => import(&reg, &file, ack_out.zip(ack_key), g.json).await,
    }
}

pub(super) fn print<T: serde::Serialize>(
    json: bool,
    name: &str,
    rows: &[T],
    line: impl Fn(&T) -> String,
) -> Result<()> {
    if json {
        let mut doc = serde_json::json!({"version": 1});
        doc[name] = serde_json::to_value(rows)?;
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if rows.is_empty() {
        println!("no {name}");
    } else {
        for r in rows {
            println!("{}", line(r));
        }
    }
    Ok(())
}

async fn import(
    reg: &Registry,
    file: &PathBuf,
    ack_to: Option<(PathBuf, PathBuf)>,
    json: bool,
) -> Result<()> {
    use std::io::Read;
    // The ack key first: a missing or unreadable key must not leave a
    // bundle imported without the ack that was asked for.
    let ack_key = match &ack_to {
        Some((_, key)) => Some(
            crate::store::StationKey::load_or_create(key)
                .map_err(|e| Failure::Usage(format!("--ack-key: {e}")))?,
        ),
        None => None,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .with_context(|| format!("opening {}", file.display()))?
        .take(bundle::MAX_BUNDLE as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", file.display()))?;
    let b = bundle::parse(&bytes).map_err(|e| Failure::Verification(e.to_string()))?;
    let key = reg.station_key(&b.station).await?.ok_or_else(|| {
        Failure::Verification(
            crate::registry::RegistryError::UnknownStation(b.station.clone()).to_string(),
        )
    })?;
    let push = bundle::open(&b, &key).map_err(|e| Failure::Verification(e.to_string()))?;
    let ack = reg
        .ingest(&push, None, super::sync::now())
        .await
        .map_err(|e| Failure::Verification(format!("{e} ({})", e.code())))?;
    let written = match (ack_key, &ack_to) {
        (Some(key), Some((out, _))) => {
            let f = crate::sync::ack::seal(
                &key,
                &crate::sync::ack::AckBody {
                    station: b.station.clone(),
                    created: super::sync::now(),
                    acked: ack.acked.clone(),
                    head: ack.head.clone(),
                },
            );
            write_new(out, &serde_json::to_vec(&f)?).with_context(|| {
                format!(
                    "the bundle is imported, but the ack {} could not be written; import it again with another --ack-out (nothing is stored twice)",
                    out.display()
                )
            })?;
            Some(out)
        }
        _ => None,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&ack)?);
    } else {
        println!(
            "imported {}: {} event(s) stored, {} already held, audit chain of {} now at row {}",
            file.display(),
            ack.stored,
            ack.duplicates,
            b.station,
            ack.head.seq
        );
        if let Some(out) = written {
            println!(
                "wrote {}: carry it back and run `keyward outbox ack {}` on the kiosk",
                out.display(),
                out.display()
            );
        }
    }
    Ok(())
}

/// Write a new file (refused if it exists), flushed to disk.
pub(super) fn write_new(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// `registry verify`: the report on stdout, a one-line error (exit 7).
async fn verify(
    reg: &Registry,
    key_pub: Option<PathBuf>,
    head: Option<PathBuf>,
    json: bool,
) -> Result<()> {
    let key = key_pub
        .map(|p| {
            crate::store::station_key::load_pinned(&p)
                .map_err(|e| Failure::Usage(format!("--key-pub: {e}")))
        })
        .transpose()?;
    let expected = head.map(|p| station_head(&p)).transpose()?;
    let r = crate::registry::verify::verify(reg, key.as_ref(), expected).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"version": 1, "ok": true, "log": r}))?
        );
        return Ok(());
    }
    println!(
        "registry log verified: {} event(s), root {}, {} signed tree head(s) matched ({}){}; {:.0} events/s",
        r.events,
        r.root,
        r.heads,
        if r.signatures_checked {
            "signatures verified with --key-pub"
        } else {
            "signatures not checked: give --key-pub"
        },
        r.station_head.map_or_else(String::new, |s| format!(
            ", the station's head at size {s} is a prefix"
        )),
        r.events_per_second
    );
    Ok(())
}

/// A station's kept tree head: `sync status --json` or its `tree_head`.
fn station_head(path: &std::path::Path) -> Result<crate::registry::verify::ExpectedHead> {
    let bad = |m: &str| {
        Failure::Usage(format!(
            "--head {}: {m}; give the output of `keyward sync status --json` from the station",
            path.display()
        ))
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(&e.to_string()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
    let h = v
        .pointer("/sync/tree_head")
        .or_else(|| v.get("tree_head"))
        .unwrap_or(&v);
    let size = h
        .get("size")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| bad("no tree head size in it (has the station synced since the log?)"))?;
    let mut root = [0u8; 32];
    h.get("root")
        .and_then(serde_json::Value::as_str)
        .and_then(|r| hex::decode_to_slice(r, &mut root).ok())
        .ok_or_else(|| bad("no 32-byte hex tree head root in it"))?;
    Ok(crate::registry::verify::ExpectedHead { size, root })
}

async fn serve(reg: Registry, a: ServeArgs) -> Result<()> {
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => {
            Some(server::tls_config(cert, key).map_err(|e| Failure::Usage(e.to_string()))?)
        }
        _ => None,
    };
    if tls.is_none() && !a.listen.ip().is_loopback() && !a.behind_tls_proxy {
        return Err(Failure::Usage(format!(
            "refusing to serve plain HTTP on {}: give --tls-cert FILE --tls-key FILE, listen on a loopback address, or put a TLS-terminating proxy in front and add --behind-tls-proxy",
            a.listen
        ))
        .into());
    }
    let size = reg
        .load_log()
        .await
        .map_err(|e| Failure::Verification(e.to_string()))?;
    let reg = match &a.idp {
        Some(path) => {
            let cfg = crate::idp::config::IdpConfig::load(path)
                .map_err(|e| Failure::Usage(e.to_string()))?;
            let p = crate::idp::config::build(&cfg).map_err(|e| Failure::Usage(e.to_string()))?;
            eprintln!(
                "keyward registry: identity provider {} ({})",
                p.kind().as_str(),
                path.display()
            );
            reg.with_idp(Arc::from(p))
        }
        None => reg,
    };
    let reg = Arc::new(reg);
    let worker = super::registry_notify::worker(&reg, &a.webhook)?;
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("listening on {}", a.listen))?;
    eprintln!(
        "keyward registry: listening on {}://{} ({:?}, log of {size} event(s), {})",
        if tls.is_some() { "https" } else { "http" },
        listener.local_addr()?,
        reg,
        reg.public_key().map_or_else(
            || "tree heads unsigned: give --key".to_string(),
            |k| format!(
                "tree heads signed by key {}",
                crate::store::station_key::key_id(&k)
            )
        )
    );
    // One stop signal for the HTTP server and the webhook worker.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = worker.map(|w| tokio::spawn(w.run(stopped)));
    let shutdown = async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        let _ = stop.send(true);
    };
    let clock = Arc::new(super::sync::now);
    match tls {
        Some(tls) => server::serve_tls(reg, listener, tls, clock, shutdown).await,
        None => server::serve(reg, listener, clock, shutdown).await,
    }
    .context("serving")?;
    if let Some(w) = worker {
        // Attempts under way finish and are recorded (each within the timeout).
        let _ = w.await;
    }
    Ok(())
}

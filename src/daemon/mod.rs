//! `keyward daemon`: device detection, the workflows, and the local API on a
//! Unix socket (HTTP/1.1 + JSON, docs/api.md), on a tokio runtime.
//!
//! - Detection runs in the detector's own threads; a pump thread applies its
//!   events to the device table and publishes them on the event bus.
//! - Each workflow job runs on the blocking pool, one per device at a time.
//! - Every connection is checked by peer credentials before any request is
//!   read ([`auth`]); a refused peer gets 403 on every request and a log line.
//! - Every connection has a header-read and an idle timeout ([`limits`]).
//! - Readiness and shutdown go to systemd through `$NOTIFY_SOCKET`
//!   ([`notify`]); SIGTERM/SIGINT stop accepting, let jobs finish within the
//!   grace period, then cancel the rest (their runs end `aborted`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;

pub mod api;
pub mod auth;
pub mod client;
pub mod config;
pub mod jobs;
pub mod limits;
pub mod notify;
pub mod state;

use crate::detect::Detector;
use crate::detect::hid::HidMonitor;
use crate::store::Ledger;
use state::Shared;

/// How long a connection from a refused peer may stay open.
const REFUSED_PEER_TIME: Duration = Duration::from_secs(5);

/// The socket the daemon listens on and the CLI looks for.
pub const DEFAULT_SOCKET: &str = "/run/keyward/keyward.sock";

/// Everything the daemon needs, resolved by the CLI from flags and config.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub socket: PathBuf,
    /// Members of this group may use the API (root always may).
    pub group: Option<String>,
    pub db: PathBuf,
    /// How long in-flight jobs may run on after SIGTERM before they are
    /// cancelled.
    pub grace: Duration,
    pub exception_threshold: f64,
    /// The window of the exception rate in `/metrics`.
    pub exception_window: Duration,
    pub sysfs: PathBuf,
    pub dev_root: PathBuf,
    pub debounce: Duration,
    /// How often hidraw is rescanned when no udev event arrives.
    pub hid_rescan: Duration,
    /// The socket file's mode: 0660 unless a test widens it to exercise the
    /// peer-credential check behind the file permissions.
    pub socket_mode: u32,
    /// The workflows' station (from the config file); without one,
    /// enrollments are refused.
    pub station: Option<crate::provision::Station>,
    /// DANGER: accept device `sim` (an in-process simulated key per job).
    pub danger_simulator: bool,
    /// Header-read and idle timeouts of API connections.
    pub timeouts: limits::Timeouts,
    /// Push the outbox to the registry (`[sync] registry`) every interval.
    pub sync: Option<(crate::sync::client::Options, Duration)>,
}

impl DaemonConfig {
    pub fn new(socket: PathBuf, db: PathBuf) -> DaemonConfig {
        DaemonConfig {
            socket,
            group: None,
            db,
            grace: Duration::from_secs(30),
            exception_threshold: crate::metrics::DEFAULT_EXCEPTION_THRESHOLD,
            exception_window: Duration::from_secs(30 * 86400),
            sysfs: "/sys".into(),
            dev_root: "/dev".into(),
            debounce: Duration::from_millis(150),
            hid_rescan: Duration::from_secs(2),
            socket_mode: 0o660,
            station: None,
            danger_simulator: false,
            timeouts: limits::Timeouts::default(),
            sync: None,
        }
    }
}

/// Run the daemon until SIGTERM or SIGINT.
pub fn run(config: DaemonConfig) -> Result<()> {
    // Before anything else opens a file: the activated socket is fd 3.
    let activated = notify::activated_listener();
    let group = config
        .group
        .as_deref()
        .map(auth::resolve_group)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let ledger = match &config.station {
        Some(st) => st.ledger.clone(),
        None => Arc::new(Mutex::new(
            Ledger::open_default_key(&config.db)
                .with_context(|| format!("opening the ledger {}", config.db.display()))?,
        )),
    };
    let mut shared = Shared::new(
        auth::Access {
            group: group.clone(),
        },
        ledger,
        config.exception_threshold,
        i64::try_from(config.exception_window.as_secs()).unwrap_or(i64::MAX),
    );
    shared.station = config.station.clone();
    shared.danger_simulator = config.danger_simulator;
    shared.timeouts = config.timeouts;
    shared.sysfs = config.sysfs.clone();
    let shared = Arc::new(shared);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("keyward-daemon")
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(config, shared, group, activated))
}

async fn serve(
    config: DaemonConfig,
    shared: Arc<Shared>,
    group: Option<auth::Group>,
    activated: Option<std::os::unix::net::UnixListener>,
) -> Result<()> {
    // Signal handlers before READY=1: a SIGTERM from then on is a clean stop.
    let mut signals = Signals::install()?;
    let owned_socket = activated.is_none();
    let listener = match activated {
        Some(l) => {
            l.set_nonblocking(true)?;
            UnixListener::from_std(l)?
        }
        None => bind(&config.socket, config.socket_mode, group.as_ref())?,
    };
    let hid = HidMonitor::new(
        config.sysfs.clone(),
        config.dev_root.clone(),
        config.hid_rescan,
    );
    let (detector, events) = Detector::start(hid, config.debounce);
    let pump_shared = shared.clone();
    let pump = std::thread::Builder::new()
        .name("keyward-detect-pump".into())
        .spawn(move || {
            for ev in events {
                pump_shared.device_event(&ev);
            }
        })?;
    tracing::info!(
        socket = %config.socket.display(),
        group = group.as_ref().map_or("(root only)", |g| g.name.as_str()),
        "keyward daemon listening"
    );
    notify::notify("READY=1\nSTATUS=listening");
    if let Some((opts, interval)) = config.sync.clone() {
        // Its own ledger connection: a push waits on the network, never
        // while holding the API's ledger lock. Cancelled with the runtime.
        tokio::spawn(sync_task(opts, interval, config.db.clone()));
    }

    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            acc = listener.accept() => match acc {
                Ok((stream, _)) => {
                    conns.spawn(connection(stream, shared.clone()));
                }
                Err(e) => {
                    // Out of descriptors or memory passes; a listener that
                    // is not (or no longer) a socket does not.
                    if matches!(e.raw_os_error(), Some(libc::EBADF | libc::ENOTSOCK | libc::EINVAL)) {
                        bail!("the listening socket failed: {e}");
                    }
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            sig = signals.next() => {
                tracing::info!("{sig}: shutting down");
                break;
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    notify::notify("STOPPING=1");
    drop(listener);
    if owned_socket {
        let _ = std::fs::remove_file(&config.socket);
    }
    let _ = shared.stopping.send(true);
    drain_jobs(&shared, config.grace).await;
    // Give event streams a moment to send their `shutdown` event.
    tokio::time::sleep(Duration::from_millis(50)).await;
    conns.shutdown().await;
    tokio::task::spawn_blocking(move || {
        detector.stop();
        let _ = pump.join();
    })
    .await?;
    tracing::info!("keyward daemon stopped");
    Ok(())
}

/// Wait for running jobs; after `grace`, cancel them and wait for them to
/// end (cancellation is checked between device steps).
async fn drain_jobs(shared: &Shared, grace: Duration) {
    let wait_idle = async {
        loop {
            let ended = shared.job_ended.notified();
            if shared.jobs_running() == 0 {
                return;
            }
            // Also poll now and then in case a notification raced.
            let _ = tokio::time::timeout(Duration::from_millis(500), ended).await;
        }
    };
    if shared.jobs_running() == 0 {
        return;
    }
    tracing::info!(
        jobs = shared.jobs_running(),
        "waiting up to {grace:?} for running jobs"
    );
    tokio::pin!(wait_idle);
    if tokio::time::timeout(grace, &mut wait_idle).await.is_ok() {
        return;
    }
    tracing::warn!("grace period over: cancelling running jobs");
    shared.cancel_all();
    if tokio::time::timeout(Duration::from_secs(60), wait_idle)
        .await
        .is_err()
    {
        tracing::error!("jobs did not stop within 60 s of cancellation; exiting anyway");
    }
}

/// SIGTERM and SIGINT, installed once.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    /// The next stop signal's name.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Bind the socket: refuse if another daemon answers on it, replace a stale
/// one, then mode 0660 (`mode`) owned by the API group.
fn bind(path: &Path, mode: u32, group: Option<&auth::Group>) -> Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the socket directory {}", dir.display()))?;
        // Traversable so that group members can reach the socket (its own
        // mode guards it).
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!(
                "another keyward daemon is listening on {}; stop it first or choose another --socket",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    let l = UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    if let Some(g) = group {
        std::os::unix::fs::chown(path, None, Some(g.gid))
            .with_context(|| format!("giving {} to group {}", path.display(), g.name))?;
    }
    Ok(l)
}

/// Check the peer, then serve HTTP/1.1 on the connection, within its time
/// limits.
async fn connection(stream: UnixStream, shared: Arc<Shared>) {
    let timeouts = shared.timeouts;
    let peer = match auth::peer(&stream) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("cannot read peer credentials, closing the connection: {e}");
            return;
        }
    };
    let denied = shared.access.check(&peer).err();
    if let Some(d) = &denied {
        // Logged at warn once a request comes: a bare connect is how the
        // CLI probes for a daemon.
        tracing::debug!(uid = peer.uid, "unauthorized peer connected: {d}");
    }
    let denied_peer = denied.is_some();
    let peer_uid = peer.uid;
    let peer = Arc::new(peer);
    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let shared = shared.clone();
        let peer = peer.clone();
        let denied = denied.clone();
        async move {
            Ok::<_, std::convert::Infallible>(match denied {
                Some(d) => {
                    tracing::warn!(
                        uid = peer.uid,
                        gid = peer.gid,
                        pid = peer.pid,
                        path = req.uri().path(),
                        "refused API request: {d}"
                    );
                    api::forbidden(&d.0)
                }
                None => api::handle(req, shared, peer).await,
            })
        }
    });
    let activity = limits::Activity::new();
    let io = TokioIo::new(limits::Watched::new(stream, activity.clone()));
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header)
        .serve_connection(io, svc);
    // A refused peer gets its 403 and little else: it cannot hold a
    // connection (and its task) open for long.
    let limit = if denied_peer {
        REFUSED_PEER_TIME.min(timeouts.idle)
    } else {
        timeouts.idle
    };
    // Dropping the connection future closes the socket.
    let result = tokio::select! {
        r = conn => r,
        () = activity.idle_for(limit) => {
            tracing::debug!(uid = peer_uid, "closing a connection idle for {limit:?}");
            Ok(())
        }
    };
    if let Err(e) = result {
        tracing::debug!("connection ended: {e}");
    }
}

/// The daemon's sync task: drain the outbox to the registry every
/// `interval`, backing off on failures (docs/sync.md).
async fn sync_task(opts: crate::sync::client::Options, interval: Duration, db: PathBuf) {
    let (mut ledger, client) = match (
        Ledger::open_default_key(&db),
        crate::sync::client::Client::new(opts),
    ) {
        (Ok(l), Ok(c)) => (l, c),
        (Err(e), _) => return tracing::error!("sync disabled: opening the ledger: {e}"),
        (_, Err(e)) => return tracing::error!("sync disabled: {e}"),
    };
    client
        .run(
            &mut ledger,
            interval,
            crate::sync::now,
            |r| match r {
                Ok(d) if d.pushes > 0 || d.pulled != Default::default() => tracing::info!(
                    delivered = d.delivered,
                    duplicates = d.duplicates,
                    registry_head = d.registry_head,
                    fleet_marked = d.pulled.marked,
                    fleet_moved = d.pulled.transitioned,
                    fleet_incidents = d.pulled.incidents,
                    "sync: outbox drained, fleet changes pulled"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!("sync: {e}"),
            },
            std::future::pending(),
        )
        .await;
}

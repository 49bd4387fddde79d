//! `keyward kiosk`: serve the enrollment desk to the kiosk's browser on
//! 127.0.0.1 (docs/kiosk.md). The server is [`crate::kiosk`]; this file
//! picks the workflows behind it (the daemon when one answers, else this
//! process, as `keyward enroll` does) and prints the start URL.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::device::Selector;
use super::secret_input::{Fd, SecretInput};
use super::workflow::{self, EnrollJob, Which, WorkflowError, Workflows};
use super::{Failure, GlobalArgs};
use crate::detect::Present;
use crate::kiosk::operator::{self, Desk, KioskSection, Operators, PasswordHash};
use crate::kiosk::{Backend, EnrollAsk, Kiosk, Refusal};
use crate::metrics::Summary;
use crate::provision::revoke::{RevokeOutcome, RevokeRequest, valid_operator};
use crate::provision::{Cancel, EnrollOutcome, Events, TicketPreview};
use crate::secret::Password;
use crate::store::query::BindingSummary;
use crate::store::runs::RunRow;
use crate::store::stock::RevokeReason;

/// `keyward kiosk`
#[derive(Debug, Args)]
#[command(after_help = "\
Prints one start URL carrying a single-use launch token; open it in the \
kiosk's browser (e.g. chromium --kiosk URL). The first visit trades the token \
for a session cookie, so no other browser, tab of another site or process on \
this machine can drive the kiosk, and the printed URL is useless once used. \
The workflows run in the keyward daemon when one answers on its socket, else \
in this process with the station's --config and --db. Staff named in the \
operators file of `[kiosk] operators` sign in to the operator view at /operator \
(`keyward kiosk hash-password NAME` makes their lines; docs/kiosk.md).")]
pub struct KioskArgs {
    /// TCP port on 127.0.0.1, the only address the kiosk listens on (0: any
    /// free port)
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub port: u16,
    /// How long the person has for each touch of the key, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub touch_timeout: u64,
    #[command(subcommand)]
    pub command: Option<KioskCommand>,
}

/// `keyward kiosk …`
#[derive(Debug, Subcommand)]
pub enum KioskCommand {
    /// Make a line (NAME:HASH) of the operators file for the operator view
    ///
    /// The password is read at a prompt with echo off (twice), or as one
    /// line of standard input (or --password-fd); never from the command
    /// line.
    #[command(after_help = "\
The line is NAME:$pbkdf2-sha256$i=600000,l=32$SALT$HASH (PBKDF2-HMAC-SHA256, \
a fresh random salt, PHC string format). Append it to the operators file \
named by `[kiosk] operators` in keyward.toml and restart the kiosk \
(docs/kiosk.md, \"Operator view\").")]
    HashPassword(HashPasswordArgs),
}

/// `keyward kiosk hash-password`
#[derive(Debug, Args)]
pub struct HashPasswordArgs {
    /// The operator's name: 1 to 64 letters, digits, '.', '_', '-' or '@'
    pub name: String,
    /// Read the password from this descriptor instead
    #[arg(long, value_name = "N")]
    pub password_fd: Option<i32>,
    /// Anything more is refused: a password given here would sit in the
    /// process list and the shell's history.
    #[arg(
        num_args = 0..,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        hide = true
    )]
    pub rest: Vec<String>,
}

/// The kiosk's backend: the CLI's one workflow interface.
struct Flows {
    flows: Arc<dyn Workflows>,
    touch_timeout: Duration,
}

/// A workflow failure as the page shows it: its reason code and sentence.
fn refusal(e: WorkflowError) -> Refusal {
    match e {
        WorkflowError::Workflow(e) => Refusal {
            code: e.reason.as_str().to_owned(),
            message: e.full_message(),
            step: e.step,
        },
        WorkflowError::Other(e) => station(e),
    }
}

fn station(e: impl Into<anyhow::Error>) -> Refusal {
    Refusal {
        code: "station".to_owned(),
        message: format!("{:#}", e.into()),
        step: None,
    }
}

impl Backend for Flows {
    fn preview(&self, ticket: &[u8]) -> Result<TicketPreview, Refusal> {
        self.flows.preview(ticket).map_err(refusal)
    }

    fn devices(&self) -> Result<Vec<Present>, Refusal> {
        self.flows
            .devices()
            .map_err(|e| refusal(WorkflowError::Other(e)))
    }

    fn enroll(
        &self,
        ask: EnrollAsk,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> Result<EnrollOutcome, Refusal> {
        let device = Selector::parse(Some(&ask.device))
            .map_err(|e| refusal(WorkflowError::Other(e.into())))?;
        let job = EnrollJob {
            which: if ask.replace {
                Which::Replace
            } else {
                Which::Enroll
            },
            ticket: ask.ticket,
            device,
            pin: ask.pin,
            slot: Some("kiosk".to_owned()),
            touch_timeout: self.touch_timeout,
            wait: Duration::ZERO,
            quiet: true,
        };
        self.flows
            .enroll(job, events, cancel)
            .map(|done| done.outcome)
            .map_err(refusal)
    }
}

/// The operator view's books: the ledger read-only (as `keyward report`
/// and `keyward bindings` read it) and the revoke workflow.
struct Ledger {
    flows: Arc<dyn Workflows>,
    db: PathBuf,
    threshold: f64,
}

impl Ledger {
    fn open(&self) -> Result<crate::store::Ledger, Refusal> {
        super::ledger::open_read_only(&self.db, false).map_err(station)
    }
}

impl operator::Books for Ledger {
    fn figures(&self, since: i64, until: i64) -> Result<Summary, Refusal> {
        super::report::summary(&self.open()?, since, until, self.threshold).map_err(station)
    }

    fn find(&self, query: &str) -> Result<Vec<BindingSummary>, Refusal> {
        let ledger = self.open()?;
        if let Ok(b) = ledger.show_binding(query) {
            return Ok(vec![b.summary]);
        }
        let mut found = ledger.list_bindings(Some(query), None).map_err(station)?;
        let by_serial = ledger.list_bindings(None, None).map_err(station)?;
        found.extend(
            by_serial
                .into_iter()
                .filter(|b| b.device_serial.as_deref() == Some(query)),
        );
        Ok(found)
    }

    fn revoke(
        &self,
        binding: &str,
        reason: RevokeReason,
        operator: &str,
    ) -> Result<RevokeOutcome, Refusal> {
        self.flows
            .revoke(RevokeRequest {
                binding: binding.to_owned(),
                reason,
                operator: Some(operator.to_owned()),
            })
            .map_err(refusal)
    }

    fn runs(&self, since: i64) -> Result<Vec<RunRow>, Refusal> {
        self.open()?.runs_since(since).map_err(station)
    }
}

/// The operator desk of this station: closed without `[kiosk] operators`.
fn desk(g: &GlobalArgs, flows: Arc<dyn Workflows>) -> Result<Desk> {
    let config = super::daemon::load_config(g).map_err(|e| Failure::Usage(format!("{e:#}")))?;
    let section = match config
        .as_ref()
        .and_then(|c| c.kiosk.as_ref().map(|t| (c, t)))
    {
        Some((c, t)) => KioskSection::from_table(t, &c.origin).map_err(Failure::Usage)?,
        None => KioskSection::default(),
    };
    let Some(path) = section.operators else {
        return Ok(Desk::closed());
    };
    let path = match &config {
        Some(c) => c.resolve(&path),
        None => path,
    };
    let operators = Operators::load(&path).map_err(Failure::Usage)?;
    let threshold = super::daemon::daemon_section(config.as_ref())?
        .exception_rate_threshold
        .unwrap_or(crate::metrics::DEFAULT_EXCEPTION_THRESHOLD);
    let db = super::ledger_of(g, config.as_ref());
    Ok(Desk::new(
        operators,
        Arc::new(Ledger {
            flows,
            db,
            threshold,
        }),
    ))
}

/// Run `keyward kiosk hash-password`: one operators-file line on stdout.
pub fn hash_password(a: HashPasswordArgs) -> Result<()> {
    use zeroize::Zeroize as _;
    if !a.rest.is_empty() {
        let mut rest = a.rest;
        rest.iter_mut().for_each(|s| s.zeroize());
        return Err(Failure::Usage(
            "hash-password takes only the operator's name: a password on the command line \
             would sit in the process list and the shell's history; type it at the prompt or \
             give it on standard input"
                .into(),
        )
        .into());
    }
    if !valid_operator(&a.name) {
        return Err(Failure::Usage(format!(
            "operator name {:?}: use 1 to 64 letters, digits, '.', '_', '-' or '@'",
            a.name
        ))
        .into());
    }
    let text = SecretInput::default().read(
        Fd("--password-fd", a.password_fd),
        "operator password",
        true,
    )?;
    let n = text.chars().count();
    if n < 8 || text.len() > operator::MAX_PASSWORD {
        return Err(Failure::Usage(format!(
            "an operator password is 8 to {} bytes long; choose another",
            operator::MAX_PASSWORD
        ))
        .into());
    }
    let hash = PasswordHash::new(&Password::new(text), operator::ITERATIONS);
    println!("{}:{}", a.name, hash.phc());
    Ok(())
}

/// Run `keyward kiosk` until SIGINT or SIGTERM.
pub fn run(args: KioskArgs, g: &GlobalArgs) -> Result<()> {
    if let Some(KioskCommand::HashPassword(a)) = args.command {
        return hash_password(a);
    }
    let flows: Arc<dyn Workflows> = Arc::from(workflow::choose(g, &[])?);
    let via = flows.via();
    if via == "local" {
        // A station that cannot load is said now, not at the first ticket.
        super::enroll::station(g.config.as_deref(), g.db.as_deref())?;
    }
    let desk = desk(g, flows.clone())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the kiosk's runtime")?;
    rt.block_on(async move {
        let backend = Flows {
            flows,
            touch_timeout: Duration::from_secs(args.touch_timeout),
        };
        let kiosk = Kiosk::bind(args.port, Arc::new(backend))
            .await
            .map(|k| k.with_operators(desk))
            .with_context(|| {
                format!(
                    "cannot listen on 127.0.0.1:{}; choose another --port",
                    args.port
                )
            })?;
        let url = kiosk.start_url();
        if g.json {
            println!("{}", serde_json::json!({"version": 1, "url": url, "via": via}));
        } else {
            println!("{url}");
            eprintln!(
                "keyward: kiosk ready (workflows: {via}); open the URL above in the kiosk's browser, once"
            );
        }
        kiosk.serve(shutdown()).await.context("the kiosk server failed")
    })
}

async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

//! `keyward kiosk`: serve the enrollment desk to the kiosk's browser on
//! 127.0.0.1 (docs/kiosk.md). The server is [`crate::kiosk`]; this file
//! picks the workflows behind it (the daemon when one answers, else this
//! process, as `keyward enroll` does) and prints the start URL.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use super::GlobalArgs;
use super::device::Selector;
use super::workflow::{self, EnrollJob, Which, WorkflowError, Workflows};
use crate::detect::Present;
use crate::kiosk::{Backend, EnrollAsk, Kiosk, Refusal};
use crate::provision::{Cancel, EnrollOutcome, Events, TicketPreview};

/// `keyward kiosk`
#[derive(Debug, Args)]
#[command(after_help = "\
Prints one start URL carrying a single-use launch token; open it in the \
kiosk's browser (e.g. chromium --kiosk URL). The first visit trades the token \
for a session cookie, so no other browser, tab of another site or process on \
this machine can drive the kiosk, and the printed URL is useless once used. \
The workflows run in the keyward daemon when one answers on its socket, else \
in this process with the station's --config and --db (docs/kiosk.md).")]
pub struct KioskArgs {
    /// TCP port on 127.0.0.1, the only address the kiosk listens on (0: any
    /// free port)
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub port: u16,
    /// How long the person has for each touch of the key, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub touch_timeout: u64,
}

/// The kiosk's backend: the CLI's one workflow interface.
struct Flows {
    flows: Box<dyn Workflows>,
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
        WorkflowError::Other(e) => Refusal {
            code: "station".to_owned(),
            message: format!("{e:#}"),
            step: None,
        },
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

/// Run `keyward kiosk` until SIGINT or SIGTERM.
pub fn run(args: KioskArgs, g: &GlobalArgs) -> Result<()> {
    let flows = workflow::choose(g, &[])?;
    let via = flows.via();
    if via == "local" {
        // A station that cannot load is said now, not at the first ticket.
        super::enroll::station(g.config.as_deref(), g.db.as_deref())?;
    }
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

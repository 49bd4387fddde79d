//! `keyward kiosk`: serve the enrollment desk to the kiosk's browser on
//! 127.0.0.1 (docs/kiosk.md). The server is [`crate::kiosk`]; this file
//! picks the workflows behind it (the daemon when one answers, else this
//! process, as `keyward enroll` does) and prints the start URL.

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use super::GlobalArgs;
use super::workflow::{self, WorkflowError, Workflows};
use crate::kiosk::{Backend, Kiosk, Refusal};
use crate::provision::TicketPreview;

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
}

struct Flows(Box<dyn Workflows>);

impl Backend for Flows {
    fn preview(&self, ticket: &[u8]) -> Result<TicketPreview, Refusal> {
        self.0.preview(ticket).map_err(|e| match e {
            WorkflowError::Workflow(e) => Refusal {
                code: e.reason.as_str().to_owned(),
                message: e.full_message(),
            },
            WorkflowError::Other(e) => Refusal {
                code: "station".to_owned(),
                message: format!("{e:#}"),
            },
        })
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
        let kiosk = Kiosk::bind(args.port, Arc::new(Flows(flows)))
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

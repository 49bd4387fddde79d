//! `keyward registry notify …` (the `notify.*` delivery queue) and the
//! webhook options of `registry serve` (docs/notify.md).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::Failure;
use crate::registry::Registry;
use crate::registry::notify::{NotifyState, RetryTarget};
use crate::registry::webhook::{self, Secret, Worker};
use crate::store::rfc3339;

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// The queue: each notify.* event with its delivery state, attempts and
    /// last error (no payloads)
    List {
        #[arg(long, value_name = "STATE", value_parser = ["pending", "delivered", "dead"])]
        state: Option<String>,
    },
    /// Put dead-lettered events back in the queue, their attempts reset
    Retry {
        /// A delivery id (STATION:EVENT, as `notify list` shows) or an event id
        #[arg(value_name = "EVENT_ID", required_unless_present = "all_dead")]
        event_id: Option<String>,
        /// Every dead-lettered event
        #[arg(long, conflicts_with = "event_id")]
        all_dead: bool,
    },
}

/// `registry serve` options for the webhook.
#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// Deliver notify.* events (binding created, replacement, revocation) to
    /// this URL, signed (Standard Webhooks): https://…, or http:// to a
    /// loopback address
    #[arg(long, value_name = "URL", requires = "webhook_secret_file")]
    pub webhook: Option<String>,
    /// The signing secret shared with the receiver: one line
    /// whsec_<base64 of 24-64 random bytes>, mode 0600
    #[arg(long, value_name = "FILE", requires = "webhook")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Attempts before an event goes to the dead-letter list
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub webhook_max_attempts: u32,
    /// Upper bound of the first retry's delay; it doubles per attempt (full
    /// jitter) up to one hour
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    pub webhook_retry_base: Duration,
    /// How long the receiver has to answer each request
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub webhook_timeout: Duration,
}

fn duration(s: &str) -> Result<Duration, String> {
    crate::time::parse_duration(s).and_then(|d| {
        (!d.is_zero())
            .then_some(d)
            .ok_or_else(|| format!("{s:?} is zero"))
    })
}

/// The worker `registry serve` runs beside its HTTP server, if `--webhook`
/// was given; checked (URL, secret file) before anything listens.
pub fn worker(reg: &Arc<Registry>, a: &WebhookArgs) -> Result<Option<Worker>> {
    let (Some(url), Some(secret)) = (&a.webhook, &a.webhook_secret_file) else {
        return Ok(None);
    };
    let usage = |e: webhook::WebhookSetupError| Failure::Usage(e.to_string());
    let secret = Secret::from_file(secret).map_err(usage)?;
    let mut o = webhook::Options::new(url);
    o.max_attempts = a.webhook_max_attempts;
    o.retry_base = a.webhook_retry_base;
    o.retry_cap = o.retry_cap.max(a.webhook_retry_base);
    o.timeout = a.webhook_timeout;
    let w = Worker::new(reg.clone(), o, secret).map_err(usage)?;
    eprintln!(
        "keyward registry: delivering notify.* events to {} (at most {} attempts each)",
        w.receiver(),
        a.webhook_max_attempts
    );
    Ok(Some(w))
}

pub async fn run(reg: &Registry, cmd: NotifyCommand, json: bool) -> Result<()> {
    match cmd {
        NotifyCommand::List { state } => {
            let state = state
                .map(|s| s.parse::<NotifyState>().map_err(Failure::Usage))
                .transpose()?;
            let rows = reg.notify_list(state).await?;
            super::registry::print(json, "notifications", &rows, |e| {
                let when = match (e.state.as_str(), e.delivered_at) {
                    ("delivered", Some(t)) => format!("delivered {}", rfc3339(t)),
                    ("pending", _) => format!("due {}", rfc3339(e.next_at / 1000)),
                    _ => String::new(),
                };
                format!(
                    "{}  {:<22} {:<9} attempts {}  {}{}",
                    e.id,
                    e.kind,
                    e.state,
                    e.attempts,
                    when,
                    e.last_error
                        .as_deref()
                        .map(|x| format!("  last error: {x}"))
                        .unwrap_or_default()
                )
            })
        }
        NotifyCommand::Retry { event_id, all_dead } => {
            let target = match event_id {
                Some(id) if !all_dead => RetryTarget::One(id),
                _ => RetryTarget::AllDead,
            };
            let now_ms = super::sync::now().saturating_mul(1000);
            let n = reg.notify_retry(&target, now_ms).await?;
            if let (0, RetryTarget::One(id)) = (n, &target) {
                anyhow::bail!(
                    "no dead-lettered event {id}; `keyward registry notify list --state dead` lists them"
                );
            }
            if json {
                println!("{}", serde_json::json!({"version": 1, "requeued": n}));
            } else {
                println!(
                    "{n} event(s) back in the queue; a running `registry serve --webhook` sends them within a second"
                );
            }
            Ok(())
        }
    }
}

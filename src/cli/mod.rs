//! Command-line definitions. Standalone (clap derive only) so a build script
//! can generate man pages and shell completions from it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub mod attest;
pub mod bulk;
pub mod completions;
pub mod config_check;
pub mod daemon;
#[cfg(feature = "sim")]
pub mod demo;
pub mod device;
pub mod devices;
pub mod enroll;
pub mod exit;
pub mod fido;
pub mod idp;
pub mod kiosk;
pub mod ledger;
pub mod lifecycle;
pub mod mds;
pub mod outbox;
pub mod piv;
pub mod registry;
pub mod registry_idp;
pub mod registry_notify;
pub mod registry_report;
pub mod render;
pub mod report;
pub mod secret_input;
#[cfg(feature = "sim")]
pub mod sim;
pub mod station;
pub mod station_show;
pub mod sync;
pub mod ticket;
pub mod workflow;

/// Provision hardware security keys (FIDO2, PIV) against signed tickets,
/// verify their attestation, and keep an auditable ledger of who holds which
/// key.
#[derive(Debug, Parser)]
#[command(
    name = "keyward",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("KEYWARD_COMMIT"), ")"),
    propagate_version = true,
    max_term_width = 100,
    after_help = "Exit codes (every command, docs/cli.md): 0 success, 1 failure, 2 usage, 3 no device, \
                  4 PIN blocked, 5 verification failed, 6 daemon unreachable, 20-25 ticket refused \
                  (20 malformed, 21 untrusted, 22 expired or not yet valid, 23 other station, \
                  24 already used, 25 not permitted)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Commands,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file [default: /etc/keyward/keyward.toml]
    #[arg(long, global = true, value_name = "FILE", env = "KEYWARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// The ledger database [default: /var/lib/keyward/ledger.db as root,
    /// else $XDG_DATA_HOME/keyward/ledger.db]
    #[arg(long, global = true, value_name = "FILE", env = "KEYWARD_DB")]
    pub db: Option<PathBuf>,
    /// Print data as one JSON document on stdout (diagnostics stay on stderr)
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG
    /// overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Run a virtual security key (FIDO2 + YubiKey-compatible PIV) in a
    /// vpcd reader of pcscd, or print the simulator's attestation roots
    #[cfg(feature = "sim")]
    Sim(sim::SimArgs),
    /// List the security keys present (PC/SC cards and FIDO HID devices),
    /// or watch them come and go
    Devices(devices::DevicesArgs),
    /// Check or export the ledger's tamper-evident audit log
    #[command(subcommand)]
    Audit(ledger::AuditCommand),
    /// List and show key bindings recorded in the ledger
    #[command(subcommand)]
    Bindings(ledger::BindingsCommand),
    /// Verify FIDO2 and PIV attestations against trust anchors, the FIDO
    /// MDS3 BLOB and the attestation policy
    #[command(subcommand)]
    Attest(attest::AttestCommand),
    /// Import and inspect FIDO Metadata Service (MDS3) BLOBs, offline
    #[command(subcommand)]
    Mds(mds::MdsCommand),
    /// Make, co-sign, verify and inspect signed provisioning tickets
    Ticket(ticket::TicketArgs),
    /// Read, check and provision the PIV application of a YubiKey: PIN,
    /// PUK, management key, on-card keys, attestation, CSR, certificates
    #[command(subcommand, after_help = piv::AFTER_HELP)]
    Piv(piv::PivCommand),
    /// Inspect and manage a FIDO2 key: info, PIN, reset, credentials, config
    Fido(fido::FidoArgs),
    /// Run a complete kiosk enrollment (FIDO2, and PIV through pcscd) on the
    /// built-in simulator: demo issuer, ticket, workflow, binding, audit
    #[cfg(feature = "sim")]
    Demo(demo::DemoArgs),
    /// Run the keyward daemon: device detection, workflows, and the local
    /// API on a Unix socket (docs/api.md)
    Daemon(daemon::DaemonArgs),
    /// Serve the enrollment desk to the kiosk's browser on 127.0.0.1,
    /// behind a single-use launch token (docs/kiosk.md)
    Kiosk(kiosk::KioskArgs),
    /// Enrollment completion rate, time to issue, failures by reason,
    /// reset/revocation/replacement/exception volume, from the ledger
    Report(report::ReportArgs),
    /// Provision a batch of keys from a manifest of tickets, several at
    /// once, with a report and an age-sealed PIN file
    Bulk(bulk::BulkArgs),
    /// Enroll a key against a signed ticket: PIN, FIDO2 credential and/or
    /// PIV keys, attestation checked, binding recorded (docs/enroll.md)
    Enroll(enroll::EnrollArgs),
    /// Replace a lost, stolen or damaged key: enroll the new key and retire
    /// the old binding in one transaction (docs/enroll.md)
    Replace(enroll::EnrollArgs),
    /// Revoke a binding (lost, stolen, damaged, left)
    Revoke(lifecycle::RevokeArgs),
    /// Take a handed-back key into stock: prove it is the bound key, close
    /// its binding, reset it and check it is factory-clean
    Return(lifecycle::ReturnArgs),
    /// Help desk: unblock the PIV PIN of a bound key with its PUK, under an
    /// unblock ticket
    Unblock(lifecycle::UnblockArgs),
    /// Check the station configuration and everything it names, and print
    /// what the station will trust and do (like `sshd -t`)
    #[command(subcommand)]
    Config(config_check::ConfigCommand),
    /// Set up a production station (configuration, issuer trust, policy
    /// profile, ledger location), or show its identity for the registry
    #[command(subcommand)]
    Station(station::StationCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(completions::CompletionsArgs),
    /// Write the man pages (keyward.1, one per subcommand) into a directory
    #[command(hide = true)]
    Manpages(completions::ManpagesArgs),
    /// Push the outbox and the audit chain to the central registry
    /// (docs/sync.md); `keyward sync status` shows the backlog
    Sync(sync::SyncArgs),
    /// List the events waiting for the registry, or export them as a signed
    /// bundle for an air-gapped kiosk
    #[command(subcommand)]
    Outbox(outbox::OutboxCommand),
    /// The identity-provider step of this station's bindings: list them,
    /// retry the registrations and deletions still pending (docs/idp.md)
    #[command(subcommand)]
    Idp(idp::IdpCommand),
    /// The central registry: serve it, enroll stations, query the fleet's
    /// events and bindings, import bundles (--db FILE|postgres://…)
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
}

/// Failures with their own documented exit codes (the table is
/// [`exit`]; docs/cli.md).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// Bad arguments found after parsing.
    #[error("{0}")]
    Usage(String),
    /// No security key was found, or not the one named.
    #[error("{0}")]
    NoDevice(String),
    /// The PIN is blocked.
    #[error("{0}")]
    PinBlocked(String),
    /// A signature, chain, ticket or audit check failed.
    #[error("{0}")]
    Verification(String),
    /// The keyward daemon did not answer.
    #[error("{0}")]
    DaemonUnreachable(String),
    /// A workflow (or ticket check) failed for this reason.
    #[error("{message}")]
    Reason {
        reason: crate::provision::Reason,
        message: String,
    },
}

impl Failure {
    /// A failure for a workflow reason.
    pub fn reason(reason: crate::provision::Reason, message: impl Into<String>) -> Failure {
        Failure::Reason {
            reason,
            message: message.into(),
        }
    }

    /// A workflow error as a failure: its message with the reason code.
    pub fn provision(e: &crate::provision::ProvisionError) -> Failure {
        Failure::reason(e.reason, format!("{} [{}]", e.full_message(), e.reason))
    }

    /// The exit code, from the one table in [`exit`].
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => exit::USAGE,
            Failure::NoDevice(_) => exit::NO_DEVICE,
            Failure::PinBlocked(_) => exit::PIN_BLOCKED,
            Failure::Verification(_) => exit::VERIFICATION,
            Failure::DaemonUnreachable(_) => exit::DAEMON,
            Failure::Reason { reason, .. } => exit::for_reason(*reason),
        }
    }
}

impl GlobalArgs {
    /// The ledger path: `--db`, else the per-user or system default. Use
    /// [`GlobalArgs::ledger`] where a configuration may name the ledger.
    pub fn db_path(&self) -> PathBuf {
        self.db.clone().unwrap_or_else(default_db_path)
    }

    /// The ledger a command uses: `--db`, else the `ledger` of the file
    /// named by `--config` (which must load), else of the default
    /// configuration when there is one, else the per-user or system default.
    pub fn ledger(&self) -> anyhow::Result<PathBuf> {
        if let Some(db) = &self.db {
            return Ok(db.clone());
        }
        let config = daemon::load_config(self)?;
        Ok(ledger_of(self, config.as_ref()))
    }
}

/// `--db`, else the configuration's ledger, else the default.
pub fn ledger_of(g: &GlobalArgs, config: Option<&crate::config::Config>) -> PathBuf {
    match (&g.db, config) {
        (Some(db), _) => db.clone(),
        (None, Some(c)) => c.ledger_path(&default_db_path()),
        (None, None) => default_db_path(),
    }
}

/// `/var/lib/keyward/ledger.db` for root; otherwise under the user's XDG data
/// directory, so a workstation user never needs root for a local ledger.
pub fn default_db_path() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/keyward/ledger.db");
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("keyward/ledger.db")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}

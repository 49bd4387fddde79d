//! The `keyward` command.

use std::process::ExitCode;

use clap::Parser;
use keyward::cli::enroll::Workflow;
use keyward::cli::{Cli, Commands, Failure};

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`keyward ... | head`), as Unix tools do,
    // instead of panicking in println!.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread
    // starts has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    init_logging(cli.global.verbose);
    let result = match cli.command {
        Commands::Sim(args) => keyward::cli::sim::run(args, cli.global.json),
        Commands::Fido(args) => keyward::cli::fido::run(args, cli.global.json),
        Commands::Devices(args) => keyward::cli::devices::run(args, cli.global.json),
        Commands::Audit(cmd) => keyward::cli::ledger::audit(cmd, &cli.global),
        Commands::Bindings(cmd) => keyward::cli::ledger::bindings(cmd, &cli.global),
        Commands::Attest(cmd) => keyward::cli::attest::run(cmd, cli.global.json),
        Commands::Mds(cmd) => keyward::cli::mds::run(cmd, &cli.global.db_path(), cli.global.json),
        Commands::Ticket(args) => keyward::cli::ticket::run(args, cli.global.json),
        Commands::Piv(cmd) => keyward::cli::piv::run(cmd, cli.global.json),
        Commands::Demo(args) => keyward::cli::demo::run(args, cli.global.db, cli.global.json),
        Commands::Daemon(args) => keyward::cli::daemon::run(args, &cli.global),
        Commands::Report(args) => keyward::cli::report::main(args, &cli.global),
        Commands::Bulk(args) => keyward::cli::bulk::run(args, &cli.global),
        Commands::Enroll(args) => enroll(args, Workflow::Enroll, &cli.global),
        Commands::Replace(args) => enroll(args, Workflow::Replace, &cli.global),
        Commands::Revoke(args) => keyward::cli::lifecycle::revoke(args, &cli.global),
        Commands::Return(args) => keyward::cli::lifecycle::return_key(args, &cli.global),
        Commands::Unblock(args) => keyward::cli::lifecycle::unblock(args, &cli.global),
        Commands::Sync(args) => keyward::cli::sync::run(args, &cli.global),
        Commands::Outbox(cmd) => keyward::cli::outbox::run(cmd, &cli.global),
        Commands::Registry(cmd) => keyward::cli::registry::run(cmd, &cli.global),
        Commands::Station(keyward::cli::StationCommand::Show) => {
            keyward::cli::station_show::show(&cli.global)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyward: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn enroll(
    args: keyward::cli::enroll::EnrollArgs,
    which: Workflow,
    g: &keyward::cli::GlobalArgs,
) -> anyhow::Result<()> {
    keyward::cli::enroll::run(args, which, g.config.as_deref(), g.db.as_deref(), g.json)
}

/// Map an error to its documented exit code (`keyward --help` lists them).
fn exit_code(e: &anyhow::Error) -> u8 {
    if let Some(f) = e.downcast_ref::<Failure>() {
        return f.exit_code();
    }
    keyward::cli::ticket::exit_code(e).unwrap_or(1)
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        // The yubikey crate reports card errors that keyward already turns
        // into typed errors with advice; its own lines would only confuse.
        0 => "warn,yubikey=off",
        1 => "keyward=info,warn,yubikey=off",
        2 => "keyward=debug,info,yubikey=off",
        _ => "keyward=trace,debug,yubikey=off",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // No colour codes in files and the journal (the daemon's stderr).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

//! The `keyward` command.

use std::process::ExitCode;

use clap::Parser;
use keyward::cli::enroll::Workflow;
use keyward::cli::{Cli, Commands};

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`keyward ... | head`), as Unix tools do,
    // instead of panicking in println!.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread
    // starts has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    init_logging(cli.global.verbose);
    let json = cli.global.json;
    let result = match cli.command {
        #[cfg(feature = "sim")]
        Commands::Sim(args) => keyward::cli::sim::run(args, cli.global.json),
        Commands::Fido(args) => keyward::cli::fido::run(args, cli.global.json),
        Commands::Devices(args) => {
            keyward::cli::devices::run(args, &cli.global.db_path(), cli.global.json)
        }
        Commands::Audit(cmd) => keyward::cli::ledger::audit(cmd, &cli.global),
        Commands::Bindings(cmd) => keyward::cli::ledger::bindings(cmd, &cli.global),
        Commands::Attest(cmd) => keyward::cli::attest::run(cmd, cli.global.json),
        Commands::Mds(cmd) => keyward::cli::mds::run(cmd, &cli.global.db_path(), cli.global.json),
        Commands::Ticket(args) => keyward::cli::ticket::run(args, &cli.global),
        Commands::Piv(cmd) => keyward::cli::piv::run(cmd, cli.global.json),
        #[cfg(feature = "sim")]
        Commands::Demo(args) => keyward::cli::demo::run(args, cli.global.db, cli.global.json),
        Commands::Daemon(args) => keyward::cli::daemon::run(args, &cli.global),
        Commands::Kiosk(args) => keyward::cli::kiosk::run(args, &cli.global),
        Commands::Report(args) => keyward::cli::report::main(args, &cli.global),
        Commands::Bulk(args) => keyward::cli::bulk::run(args, &cli.global),
        Commands::Enroll(args) => enroll(args, Workflow::Enroll, &cli.global),
        Commands::Replace(args) => enroll(args, Workflow::Replace, &cli.global),
        Commands::Revoke(args) => keyward::cli::lifecycle::revoke(args, &cli.global),
        Commands::Return(args) => keyward::cli::lifecycle::return_key(args, &cli.global),
        Commands::Unblock(args) => keyward::cli::lifecycle::unblock(args, &cli.global),
        Commands::Config(cmd) => keyward::cli::config_check::run(cmd, &cli.global),
        Commands::Station(cmd) => keyward::cli::station::run(cmd, &cli.global),
        Commands::Completions(args) => keyward::cli::completions::completions(&args),
        Commands::Manpages(args) => keyward::cli::completions::manpages(&args),
        Commands::Sync(args) => keyward::cli::sync::run(args, &cli.global),
        Commands::Outbox(cmd) => keyward::cli::outbox::run(cmd, &cli.global),
        Commands::Idp(cmd) => keyward::cli::idp::run(cmd, &cli.global),
        Commands::Registry(cmd) => keyward::cli::registry::run(cmd, &cli.global),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `<3>`: journald files the line at priority err (sd-daemon(3)).
            let prio = if journal::stderr_is_journal() {
                "<3>"
            } else {
                ""
            };
            eprintln!("{prio}keyward: {e:#}");
            if json {
                keyward::cli::render::final_error(&e);
            }
            ExitCode::from(keyward::cli::exit::of_error(&e))
        }
    }
}

fn enroll(
    args: keyward::cli::enroll::EnrollArgs,
    which: Workflow,
    g: &keyward::cli::GlobalArgs,
) -> anyhow::Result<()> {
    keyward::cli::enroll::run(args, which, g)
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
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // No colour codes in files and the journal (the daemon's stderr).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if journal::stderr_is_journal() {
        // journald stamps every line itself; the prefix gives its priority.
        let format = tracing_subscriber::fmt::format().without_time();
        fmt.event_format(journal::SyslogPrefix(format)).init();
    } else {
        fmt.init();
    }
}

/// Log lines on stderr with syslog priorities for journald.
mod journal {
    use std::os::fd::AsFd;

    use tracing::{Event, Level, Subscriber};
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
    use tracing_subscriber::registry::LookupSpan;

    /// Whether stderr is the journal: systemd sets `$JOURNAL_STREAM` to
    /// the `DEV:INODE` of the stream it connected (systemd.exec(5)); a
    /// redirected stderr no longer matches it.
    pub fn stderr_is_journal() -> bool {
        let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
            return false;
        };
        let Ok(meta) = nix_fstat(std::io::stderr().as_fd()) else {
            return false;
        };
        v.to_str() == Some(&format!("{}:{}", meta.0, meta.1))
    }

    fn nix_fstat(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<(u64, u64)> {
        use std::os::fd::AsRawFd;
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fstat writes a `stat` into the buffer we own when it
        // returns 0; the descriptor is borrowed and open.
        let rc = unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fstat succeeded, so the struct is initialised.
        let st = unsafe { st.assume_init() };
        Ok((st.st_dev, st.st_ino))
    }

    /// The syslog priority journald reads from a `<N>` line prefix
    /// (sd-daemon(3)): err, warning, info, debug.
    pub fn priority(level: &Level) -> u8 {
        match *level {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            _ => 7,
        }
    }

    /// Another event format with the `<N>` prefix in front of each line.
    pub struct SyslogPrefix<F>(pub F);

    impl<S, N, F> FormatEvent<S, N> for SyslogPrefix<F>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
        F: FormatEvent<S, N>,
    {
        fn format_event(
            &self,
            ctx: &FmtContext<'_, S, N>,
            mut writer: Writer<'_>,
            event: &Event<'_>,
        ) -> std::fmt::Result {
            write!(writer, "<{}>", priority(event.metadata().level()))?;
            self.0.format_event(ctx, writer, event)
        }
    }
}

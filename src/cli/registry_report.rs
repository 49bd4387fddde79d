//! `keyward registry report`: the fleet report from the registry's
//! database, per station and for the whole fleet (docs/metrics.md).

use anyhow::Result;
use clap::Args;

use super::Failure;
use crate::registry::Registry;
use crate::registry::report::render;

/// `keyward registry report`
#[derive(Debug, Args)]
pub struct RegistryReportArgs {
    /// Only what started since then: a duration back from now (`7d`, `24h`,
    /// `90m`) or an RFC 3339 time (`2026-11-01T00:00:00Z`) [default: all]
    #[arg(long, value_name = "DURATION|RFC3339")]
    pub since: Option<String>,
}

pub async fn run(reg: &Registry, args: RegistryReportArgs, json: bool) -> Result<()> {
    let now = super::sync::now();
    let since = match &args.since {
        Some(s) => super::report::parse_since(s, now).map_err(Failure::Usage)?,
        None => 0,
    };
    // `until` is one past now so that what happened this second counts.
    let report = reg.report(since, now.saturating_add(1)).await?;
    if json {
        super::render::print_json(true, &report)
    } else {
        print!("{}", render(&report));
        Ok(())
    }
}

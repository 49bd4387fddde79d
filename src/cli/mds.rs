//! `keyward mds import|show`: load a FIDO MDS3 BLOB offline, verify it and
//! keep it (with the rollback state) for later attestation checks.
//!
//! Files in the MDS directory (`--mds-dir`, default `mds/` beside the
//! ledger): `blob.jwt`, the last accepted BLOB, and `state.json`, its
//! number (`no`) that the next import must exceed.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::Failure;
use super::attest::parse_time;
use crate::attest::mds::{self, MdsBlob, state};
use crate::attest::{MdsBlob as Blob, TrustStore};

#[derive(Debug, Subcommand)]
pub enum MdsCommand {
    /// Verify a BLOB (signature chain to the MDS root, staleness, `no`
    /// greater than the last import) and keep it; prints its number, date,
    /// entry count and staleness, exits 5 when it refuses it
    Import(ImportArgs),
    /// Show the entry of one authenticator model in the kept BLOB
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The BLOB (a JWS as downloaded from https://mds3.fidoalliance.org/)
    pub file: PathBuf,
    /// The BLOB's root certificate [default: the shipped GlobalSign Root CA - R3]
    #[arg(long, value_name = "CERT")]
    pub root: Option<PathBuf>,
    /// Evaluate at this instant (RFC 3339) instead of now
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    pub at: Option<SystemTime>,
    /// Where accepted BLOBs and the rollback state are kept
    #[arg(long, value_name = "DIR")]
    pub mds_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The AAGUID (with or without dashes), or a hex attestation certificate
    /// key identifier
    pub aaguid: String,
    #[arg(long, value_name = "CERT")]
    pub root: Option<PathBuf>,
    #[arg(long, value_name = "DIR")]
    pub mds_dir: Option<PathBuf>,
}

pub fn run(cmd: MdsCommand, db: &Path, json: bool) -> Result<()> {
    let default_dir = db.parent().unwrap_or(Path::new(".")).join("mds");
    match cmd {
        MdsCommand::Import(a) => import(&a, a.mds_dir.clone().unwrap_or(default_dir), json),
        MdsCommand::Show(a) => show(&a, a.mds_dir.clone().unwrap_or(default_dir), json),
    }
}

fn root_store(root: Option<&Path>) -> Result<TrustStore> {
    Ok(match root {
        None => TrustStore::bundled_mds_root(),
        Some(r) => {
            let mut s = TrustStore::new();
            s.load_file(r)
                .with_context(|| format!("loading the MDS root {}", r.display()))?;
            s
        }
    })
}

fn read_blob(p: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(p).with_context(|| format!("reading {}", p.display()))?;
    let mut buf = Vec::new();
    f.take(mds::MAX_BLOB as u64 + 1).read_to_end(&mut buf)?;
    Ok(buf)
}

fn refuse(e: mds::MdsError) -> anyhow::Error {
    Failure::Verification(format!("MDS BLOB refused: {e}")).into()
}

fn import(a: &ImportArgs, dir: PathBuf, json: bool) -> Result<()> {
    let at = a.at.unwrap_or_else(SystemTime::now);
    let bytes = read_blob(&a.file)?;
    let blob = MdsBlob::verify(
        &bytes,
        &root_store(a.root.as_deref())?,
        at,
        Default::default(),
    )
    .map_err(refuse)?;
    let summary = serde_json::json!({
        "version": 1,
        "no": blob.no,
        "next_update": blob.next_update,
        "entries": blob.entries().len(),
        "stale": blob.stale,
        "signer": blob.signer_chain.first(),
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "BLOB no {} · nextUpdate {} · {} entries · {}",
            blob.no,
            blob.next_update,
            blob.entries().len(),
            if blob.stale { "STALE" } else { "fresh" }
        );
    }
    blob.require_fresh(at).map_err(refuse)?;
    let state_path = dir.join("state.json");
    state::check(&state_path, &blob).map_err(refuse)?;
    state::write_atomic(&dir.join("blob.jwt"), &bytes)
        .with_context(|| format!("keeping the BLOB in {}", dir.display()))?;
    state::accept(&state_path, &blob, at).map_err(refuse)?;
    if !json {
        println!("accepted; kept in {}", dir.display());
    }
    Ok(())
}

fn show(a: &ShowArgs, dir: PathBuf, json: bool) -> Result<()> {
    let path = dir.join("blob.jwt");
    let bytes = read_blob(&path).context("no BLOB imported yet: run `keyward mds import FILE`")?;
    let at = SystemTime::now();
    let blob = Blob::verify(
        &bytes,
        &root_store(a.root.as_deref())?,
        at,
        Default::default(),
    )
    .map_err(refuse)?;
    let entry = match mds::parse_aaguid(&a.aaguid) {
        Some(g) => blob.by_aaguid(&g),
        None => hex::decode(&a.aaguid)
            .ok()
            .and_then(|k| blob.by_key_identifier(&k)),
    }
    .or_else(|| {
        hex::decode(&a.aaguid)
            .ok()
            .and_then(|k| blob.by_key_identifier(&k))
    })
    .ok_or_else(|| anyhow::anyhow!("{} is not listed in BLOB no {}", a.aaguid, blob.no))?;
    let status = entry.status();
    let roots: Vec<String> = entry
        .anchors()
        .anchors()
        .map(|r| r.cert.subject().to_string())
        .collect();
    if json {
        let doc = serde_json::json!({
            "version": 1,
            "blob": {"no": blob.no, "next_update": blob.next_update, "stale": blob.stale},
            "aaguid": entry.aaguid,
            "attestation_certificate_key_identifiers": entry.attestation_certificate_key_identifiers,
            "authenticator_version": entry.authenticator_version(),
            "status": status,
            "status_reports": entry.status_reports,
            "attestation_roots": roots,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!(
        "model:         {}",
        status.description.as_deref().unwrap_or("?")
    );
    println!("aaguid:        {}", entry.aaguid.as_deref().unwrap_or("-"));
    println!(
        "certification: {}",
        status.certification_level.as_deref().unwrap_or("none")
    );
    println!("latest status: {}", status.latest.as_deref().unwrap_or("-"));
    if let Some(r) = &status.rejected_by {
        println!("REJECTED:      {r}");
    }
    for r in roots {
        println!("root:          {r}");
    }
    println!(
        "from BLOB no {} (nextUpdate {}{})",
        blob.no,
        blob.next_update,
        if blob.stale { ", STALE" } else { "" }
    );
    Ok(())
}

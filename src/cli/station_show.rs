//! `keyward station show`: what the registry must enroll for this station —
//! its id, its public key (PEM SPKI) — and its current signed audit head.

use anyhow::{Context, Result};
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;

use super::GlobalArgs;

/// Print the station's identity (`--json`: one document, version 1).
pub fn show(g: &GlobalArgs) -> Result<()> {
    let c = super::lifecycle::config(g).ok();
    let ledger = super::sync::open_ledger(g)?;
    let key = ledger
        .station_key()
        .context("the ledger has no station key")?;
    let pem = ed25519_dalek::VerifyingKey::from_bytes(&key.public_key())?
        .to_public_key_pem(LineEnding::LF)?;
    let head = ledger.signed_head()?;
    let id = c.as_ref().map(|c| c.station.clone());
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "version": 1, "station": id, "key_id": key.key_id(), "public_key_pem": pem, "audit_head": head,
            }))?
        );
        return Ok(());
    }
    println!(
        "station:    {}",
        id.as_deref().unwrap_or("(no configuration: give --config)")
    );
    println!("key id:     {}", key.key_id());
    match &head {
        Some(h) => println!("audit head: row {} {}", h.seq, hex::encode(h.hash)),
        None => println!("audit head: (empty log)"),
    }
    print!("{pem}");
    Ok(())
}

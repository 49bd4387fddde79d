//! `keyward attest verify`: verify a FIDO or PIV attestation, print the
//! facts (which are attested, which only claimed) and the policy's verdict. Exit 0 when trusted and accepted, 5
//! (verification failed) otherwise; see docs/attestation.md.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use clap::{Args, Subcommand};

use super::Failure;
use crate::attest::{self, FidoFacts, MdsBlob, PivFacts, TrustStore, anchors};
use crate::policy::{AttestationPolicy, Verdict};

#[derive(Debug, Subcommand)]
pub enum AttestCommand {
    /// Verify an attestation against the roots bundle (plus --roots and
    /// the MDS BLOB), print its facts and the policy verdict; exit 5 when it
    /// is not trusted or the policy rejects it
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["fido", "piv"])))]
pub struct VerifyArgs {
    /// A FIDO registration as JSON: `attestationObject` (base64url) and
    /// `clientDataJSON` (base64url) or `clientDataHash` (hex or base64url)
    #[arg(long, value_name = "FILE")]
    pub fido: Option<PathBuf>,
    /// A PIV slot attestation certificate (PEM or DER), from ATTEST (F9)
    #[arg(long, value_name = "LEAF.pem", requires = "intermediate")]
    pub piv: Option<PathBuf>,
    /// The device's F9 attestation certificate (object 5FFF01)
    #[arg(long, value_name = "F9.pem", requires = "piv")]
    pub intermediate: Option<PathBuf>,
    /// The public key the PIV slot should hold (PEM SubjectPublicKeyInfo)
    #[arg(long, value_name = "PUB.pem", requires = "piv")]
    pub expect_key: Option<PathBuf>,
    /// More trust anchors: every PEM/DER file in DIR (DIR/intermediates/
    /// holds intermediates), in addition to the shipped bundle
    #[arg(long, value_name = "DIR")]
    pub roots: Vec<PathBuf>,
    /// Trust only --roots, not the shipped bundle
    #[arg(long)]
    pub no_bundled_roots: bool,
    /// A FIDO MDS3 BLOB: its entry's roots become anchors and its status
    /// reports are applied
    #[arg(long, value_name = "FILE")]
    pub mds: Option<PathBuf>,
    /// The MDS BLOB's root [default: the shipped GlobalSign Root CA - R3]
    #[arg(long, value_name = "CERT", requires = "mds")]
    pub mds_root: Option<PathBuf>,
    /// Evaluate at this instant (RFC 3339) instead of now
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    pub at: Option<SystemTime>,
    /// Attestation policy as JSON (see docs/attestation.md) [default: trust
    /// any chain to an anchor; refuse none/self attestation]
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

/// Parse an RFC 3339 instant ("2024-12-15T00:00:00Z"; a bare date is
/// midnight UTC).
pub fn parse_time(s: &str) -> Result<SystemTime, String> {
    crate::time::parse_rfc3339_weak(s).map_err(|e| format!("{s:?} is not RFC 3339: {e}"))
}

pub fn run(cmd: AttestCommand, json: bool) -> Result<()> {
    match cmd {
        AttestCommand::Verify(a) => verify(a, json),
    }
}

fn verify(a: VerifyArgs, json: bool) -> Result<()> {
    let at = a.at.unwrap_or_else(SystemTime::now);
    let mut store = if a.no_bundled_roots {
        TrustStore::new()
    } else {
        TrustStore::bundled()
    };
    for dir in &a.roots {
        store
            .load_dir(dir)
            .with_context(|| format!("loading roots from {}", dir.display()))?;
    }
    let policy: AttestationPolicy = match &a.policy {
        None => AttestationPolicy::default(),
        Some(p) => serde_json::from_slice(&read(p)?)
            .map_err(|e| Failure::Usage(format!("policy {}: {e}", p.display())))?,
    };
    let mds = match &a.mds {
        None => None,
        Some(p) => Some(load_mds(p, a.mds_root.as_deref(), at)?),
    };
    let (doc, trusted, verdict) = if let Some(fido) = &a.fido {
        let (ao, cdh) = read_fido_file(fido)?;
        let f = attest::verify_fido(&ao, &cdh, &store, mds.as_ref(), at)
            .map_err(|e| Failure::Verification(format!("FIDO attestation rejected: {e}")))?;
        let v = policy.decide_fido(&f, at);
        if !json {
            print_fido(&f);
        }
        (
            serde_json::json!({"kind": "fido", "facts": f}),
            f.trusted(),
            v,
        )
    } else {
        let (leaf, f9) = match (&a.piv, &a.intermediate) {
            (Some(l), Some(i)) => (cert_der(l)?, cert_der(i)?),
            _ => return Err(Failure::Usage("--piv needs --intermediate".into()).into()),
        };
        let expect = a.expect_key.as_deref().map(spki_der).transpose()?;
        let p = attest::verify_piv(&leaf, &f9, &store, at, expect.as_deref())
            .map_err(|e| Failure::Verification(format!("PIV attestation rejected: {e}")))?;
        let v = policy.decide_piv(&p, at);
        if !json {
            print_piv(&p);
        }
        (
            serde_json::json!({"kind": "piv", "facts": p}),
            p.trust.is_ok(),
            v,
        )
    };
    if json {
        // Version 2: facts carry `attested` and `claimed` (issue 13).
        let out = serde_json::json!({
            "version": 2,
            "ok": verdict.accepted,
            "at": crate::attest::cert::unix_to_rfc3339(at),
            "trusted": trusted,
            "accepted": verdict.accepted,
            "attestation": doc,
            "mds": mds.as_ref().map(|m| serde_json::json!({"no": m.no, "next_update": m.next_update, "stale": m.stale})),
            "policy": verdict,
        });
        super::render::print_doc(&out)?;
    } else {
        println!("policy:      {verdict}");
    }
    finish(trusted, &verdict)
}

fn finish(trusted: bool, v: &Verdict) -> Result<()> {
    if v.accepted {
        return Ok(());
    }
    let what = if trusted {
        "rejected by policy"
    } else {
        "untrusted"
    };
    Err(Failure::Verification(format!(
        "attestation {what} ({v}); if this model is expected, add its root with --roots or record an exception in the policy"
    ))
    .into())
}

fn load_mds(path: &Path, root: Option<&Path>, at: SystemTime) -> Result<MdsBlob> {
    let mut root_store = TrustStore::new();
    match root {
        Some(r) => {
            root_store.load_file(r)?;
        }
        None => root_store = TrustStore::bundled_mds_root(),
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let blob = MdsBlob::verify(&bytes, &root_store, at, Default::default())
        .map_err(|e| Failure::Verification(format!("MDS BLOB {}: {e}", path.display())))?;
    blob.require_fresh(at)
        .map_err(|e| Failure::Verification(e.to_string()))?;
    Ok(blob)
}

fn read(p: &Path) -> Result<Vec<u8>> {
    Ok(anchors::read_limited(p)?)
}

fn cert_der(p: &Path) -> Result<Vec<u8>> {
    let certs = attest::Cert::parse_many(&read(p)?)
        .map_err(|e| Failure::Verification(format!("{}: {e}", p.display())))?;
    Ok(certs[0].der().to_vec())
}

fn spki_der(p: &Path) -> Result<Vec<u8>> {
    let text = String::from_utf8(read(p)?).context("public key is not PEM text")?;
    let (label, der) = der::pem::decode_vec(text.as_bytes())
        .map_err(|e| Failure::Usage(format!("{}: {e}", p.display())))?;
    if label != "PUBLIC KEY" {
        return Err(Failure::Usage(format!(
            "{}: expected a PUBLIC KEY PEM, got {label}",
            p.display()
        ))
        .into());
    }
    Ok(der)
}

/// Read a FIDO FILE (format in docs/attestation.md): the fields at the top
/// level, under `response`, or under `credential.response` (a
/// PublicKeyCredential as JSON-serialised by browsers and py_webauthn).
pub fn read_fido_file(p: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    let v: serde_json::Value = serde_json::from_slice(&read(p)?)
        .map_err(|e| Failure::Usage(format!("{}: not JSON: {e}", p.display())))?;
    let obj = ["", "/response", "/credential/response"]
        .iter()
        .filter_map(|ptr| v.pointer(ptr))
        .find(|o| o.get("attestationObject").is_some())
        .ok_or_else(|| Failure::Usage(format!("{}: no attestationObject", p.display())))?;
    let field = |k: &str| obj.get(k).and_then(|x| x.as_str());
    let ao = b64url(
        field("attestationObject").unwrap_or_default(),
        "attestationObject",
    )?;
    let cdh = match (field("clientDataJSON"), field("clientDataHash")) {
        (Some(cdj), _) => {
            use sha2::Digest;
            sha2::Sha256::digest(b64url(cdj, "clientDataJSON")?).to_vec()
        }
        (None, Some(h)) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            hex::decode(h)?
        }
        (None, Some(h)) => b64url(h, "clientDataHash")?,
        (None, None) => {
            return Err(Failure::Usage(format!(
                "{}: needs clientDataJSON or clientDataHash",
                p.display()
            ))
            .into());
        }
    };
    if cdh.len() != 32 {
        return Err(Failure::Usage("clientDataHash must be 32 bytes (SHA-256)".into()).into());
    }
    Ok((ao, cdh))
}

fn b64url(s: &str, what: &str) -> Result<Vec<u8>> {
    B64URL
        .decode(s.trim_end_matches('='))
        .map_err(|e| Failure::Usage(format!("{what} is not base64url: {e}")).into())
}

fn print_trust(t: &Result<(String, String), attest::PathError>, chain: &[String]) {
    match t {
        Ok((anchor, source)) => {
            println!("verdict:     trusted");
            println!("chain:       {}", chain.join("\n             → "));
            println!("anchor:      {anchor} ({source})");
        }
        Err(e) => println!("verdict:     untrusted: {e}"),
    }
}

/// The attested/claimed split, as two lines.
fn print_provenance(p: &attest::Provenance) {
    let names = |v: &[attest::Fact]| match v {
        [] => "-".to_string(),
        _ => v
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    };
    println!("attested:    {}", names(&p.attested));
    println!("claimed:     {}", names(&p.claimed));
}

fn print_fido(f: &FidoFacts) {
    print_trust(&f.trust, &f.chain);
    println!(
        "format:      {} ({:?} attestation)",
        f.format, f.attestation_type
    );
    println!("aaguid:      {}", f.aaguid);
    if f.enterprise {
        println!(
            "enterprise:  yes, serial {}",
            f.serial.map_or("-".into(), |s| s.to_string())
        );
    }
    if let Some(c) = f.certificates.first() {
        println!("certificate: {c}");
    }
    match &f.mds {
        Some(m) => println!(
            "mds:         {} · {} · status {}{}",
            m.description.as_deref().unwrap_or("?"),
            m.certification_level.as_deref().unwrap_or("not certified"),
            m.latest.as_deref().unwrap_or("-"),
            m.rejected_by
                .as_deref()
                .map(|r| format!(" · REJECTED ({r})"))
                .unwrap_or_default()
        ),
        None => println!("mds:         not consulted or not listed"),
    }
    print_provenance(&f.provenance);
}

fn print_piv(p: &PivFacts) {
    print_trust(&p.trust, &p.chain);
    println!(
        "serial:      {}",
        p.serial.map_or("-".into(), |s| s.to_string())
    );
    println!("slot:        {}", p.slot.as_deref().unwrap_or("-"));
    println!("firmware:    {}", p.firmware.as_deref().unwrap_or("-"));
    println!("pin policy:  {:?}", p.pin_policy);
    println!("touch:       {:?}", p.touch_policy);
    println!(
        "form factor: {:?}   fips: {}   cspn: {}",
        p.form_factor, p.fips, p.cspn
    );
    match p.public_key_matches {
        Some(true) => println!("public key:  matches the expected key"),
        _ => println!("public key:  {}", p.public_key_spki),
    }
    print_provenance(&p.provenance);
}

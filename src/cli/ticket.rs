//! `keyward ticket`: make, co-sign, verify and inspect signed provisioning
//! tickets (docs/ticket.md).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::{Failure, GlobalArgs};
use crate::provision;
use crate::ticket::{
    self, IssuerConfig, KeyFile, NoReplayCheck, OpKind, TicketError, TrustConfig, TrustStore,
    Verifier, VerifyOptions,
};

mod issue;

/// Largest file `ticket` subcommands read.
const MAX_FILE: u64 = 1024 * 1024;

#[derive(Debug, Args)]
pub struct TicketArgs {
    #[command(subcommand)]
    pub command: TicketCommand,
}

#[derive(Debug, Subcommand)]
pub enum TicketCommand {
    /// Create an issuer signing key (PKCS#8 PEM, mode 0600) and print its
    /// public JWK, which stations put in their trust store
    Keygen(KeygenArgs),
    /// Sign a ticket (for tests and small deployments; production tickets
    /// come from the identity authority)
    Issue(IssueArgs),
    /// Add a second approver's signature to a ticket (dual control)
    Cosign(CosignArgs),
    /// Verify a ticket: exit 0 and print its claims if valid, else exit
    /// 20 malformed, 21 untrusted, 22 time, 23 audience, 24 replayed,
    /// 25 not permitted
    #[command(after_help = VERIFY_AFTER)]
    Verify(VerifyArgs),
    /// Decode a ticket WITHOUT verifying anything, to see what it says
    Inspect(InspectArgs),
}

const VERIFY_AFTER: &str = "\
Exit status:
  0   valid (the ticket is NOT consumed: consumption happens at enrollment)
  1   could not run (unreadable file, key or trust store)
  2   usage error (including a malformed --now)
  20  malformed: size, encoding, JSON, duplicate members, typ, claims
  21  untrusted: alg not allowed, unknown/revoked kid, bad signature,
      wrong issuer, missing or duplicate approvals
  22  time: expired, not yet valid, issued in the future, too long-lived
  23  audience: the ticket is for another station
  24  replayed: the ticket was already used
  25  not permitted: the issuer may not grant an operation, unknown policy

With the global --config, verify as that station decides at enrollment:
its trust store, audience, skew, dual-control rules (including privileged
profiles for replacements) and its ledger (a used ticket exits 24).";

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AlgArg {
    /// Ed25519 (EdDSA, RFC 8037)
    Eddsa,
    /// P-256 (ES256)
    Es256,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Keygen options")]
pub struct KeygenArgs {
    /// Write the private key here (refuses to overwrite without --force);
    /// the public JWK goes to KEY.pub.jwk
    #[arg(long, value_name = "KEY")]
    pub out: PathBuf,
    /// Signature algorithm
    #[arg(long, value_enum, default_value = "eddsa")]
    pub alg: AlgArg,
    /// Key id [default: the RFC 7638 JWK thumbprint]
    #[arg(long, value_name = "ID")]
    pub kid: Option<String>,
    /// Overwrite existing files
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Issue options")]
pub struct IssueArgs {
    /// Issuer private key (PKCS#8 PEM from `keyward ticket keygen`)
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// Key id in the header [default: the key's JWK thumbprint]
    #[arg(long, value_name = "ID")]
    pub kid: Option<String>,
    /// Issuer (iss)
    #[arg(long, value_name = "ISSUER")]
    pub iss: String,
    /// Subject: the stable identity the key is for (sub)
    #[arg(long, value_name = "ID")]
    pub sub: String,
    /// Station id or group (aud); repeat for several
    #[arg(long, value_name = "STATION", required = true)]
    pub aud: Vec<String>,
    /// Lifetime, e.g. 15m, 2h (exp = now + ttl)
    #[arg(long, value_name = "DURATION", default_value = "15m")]
    pub ttl: jiff::SignedDuration,
    /// What to provision (repeatable); see `--help`.
    #[arg(
        long = "op",
        value_name = "OP",
        required = true,
        help = "What to provision (repeatable): \
                fido2:rp_id=DOMAIN[,user=TEXT|,user_b64=B64URL][,name=USERNAME] or \
                piv:slot=9a,alg=p256[,pin_policy=once][,touch_policy=always] or \
                unblock[:rotate_puk=true]"
    )]
    pub ops: Vec<String>,
    /// The device being replaced: serial=N|binding=ID,reason=lost|stolen|damaged|compromised|retired
    #[arg(long, value_name = "SPEC")]
    pub replaces: Option<String>,
    /// Pre-assigned device serial (bulk issuance)
    #[arg(long, value_name = "SERIAL")]
    pub device: Option<u32>,
    /// Identity assurance level 1-3
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub ial: u8,
    /// How identity was verified: method=TOKEN,verifier=WHO[,reference=REF]
    /// [default: method=unspecified,verifier=ISSUER]
    #[arg(long, value_name = "SPEC")]
    pub evidence: Option<String>,
    /// Local policy profile name
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub policy: String,
    /// Independent approvals required; 2 or more writes the JSON form for
    /// `keyward ticket cosign`
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub approvals: u8,
    /// Ticket id [default: 128 random bits]
    #[arg(long, value_name = "ID")]
    pub jti: Option<String>,
    /// Issue as of this time (RFC 3339) instead of the system clock
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<jiff::Timestamp>,
    /// Write the ticket here instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Cosign options")]
pub struct CosignArgs {
    /// The ticket to co-sign ("-" for stdin)
    pub file: PathBuf,
    /// The co-signer's private key
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// The co-signer's key id [default: the key's JWK thumbprint]
    #[arg(long, value_name = "ID")]
    pub kid: Option<String>,
    /// Write the ticket here instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Verify options")]
pub struct VerifyArgs {
    /// The ticket ("-" for stdin)
    pub file: PathBuf,
    /// A trusted issuer public key: PEM, JWK or JWK Set (repeatable). A PEM
    /// key's kid is its JWK thumbprint. Not with --config, which verifies
    /// as the station does (its trust store, audience, dual-control rules
    /// and ledger)
    #[arg(long = "issuer-key", value_name = "PEM_OR_JWK")]
    pub issuer_keys: Vec<PathBuf>,
    /// The issuer the --issuer-key keys belong to [default: whatever the
    /// ticket names]
    #[arg(long, value_name = "ISSUER")]
    pub iss: Option<String>,
    /// Operations the --issuer-key keys may grant
    #[arg(long = "allow-op", value_enum, value_name = "OP", default_values = ["fido2", "piv", "replace"])]
    pub allow_ops: Vec<OpArg>,
    /// A trust store file (JSON form of the [ticket] config section)
    #[arg(long, value_name = "FILE")]
    pub trust: Option<PathBuf>,
    /// This station's id, and the groups it belongs to (repeatable);
    /// required without --config
    #[arg(long, value_name = "STATION")]
    pub audience: Vec<String>,
    /// Verify as of this time (RFC 3339) instead of the system clock
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<jiff::Timestamp>,
    /// Allowed clock skew in seconds (at most 300) [default: 60]
    #[arg(long, value_name = "SECS")]
    pub skew: Option<u64>,
    /// Longest accepted ticket lifetime in seconds [default: 86400]
    #[arg(long, value_name = "SECS")]
    pub max_lifetime: Option<u64>,
    /// Policy profiles known here (repeatable) [default: accept any name]
    #[arg(long = "policy", value_name = "NAME")]
    pub policies: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OpArg {
    Fido2,
    Piv,
    Replace,
    Unblock,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Inspect options")]
pub struct InspectArgs {
    /// The ticket ("-" for stdin)
    pub file: PathBuf,
}

/// Run a `keyward ticket` subcommand.
pub fn run(args: TicketArgs, global: &GlobalArgs) -> Result<()> {
    let json = global.json;
    let r = match args.command {
        TicketCommand::Keygen(a) => issue::keygen(a, json),
        TicketCommand::Issue(a) => issue::issue(a),
        TicketCommand::Cosign(a) => issue::cosign(a),
        TicketCommand::Verify(a) if global.config.is_some() => verify_station(a, global),
        TicketCommand::Verify(a) => verify(a, json),
        TicketCommand::Inspect(a) => inspect(a, json),
    };
    r.map_err(ticket_failure)
}

/// A ticket refusal anywhere in a subcommand's error keeps its code from
/// the one exit table ([`super::exit`]).
fn ticket_failure(e: anyhow::Error) -> anyhow::Error {
    let Some(reason) = e
        .downcast_ref::<TicketError>()
        .map(super::exit::ticket_reason)
    else {
        return e;
    };
    Failure::reason(reason, format!("{e:#}")).into()
}

fn read_input(path: &Path) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let what = || format!("cannot read {}", path.display());
    if path == Path::new("-") {
        std::io::stdin()
            .take(MAX_FILE)
            .read_to_end(&mut buf)
            .with_context(what)?;
    } else {
        std::fs::File::open(path)
            .with_context(what)?
            .take(MAX_FILE)
            .read_to_end(&mut buf)
            .with_context(what)?;
    }
    Ok(buf)
}

/// `ticket verify --config`: the station's own verdict, through the one
/// function every workflow runs ([`provision::verify_ticket`]): its trust
/// store, audience, skew, dual-control rules (station and profiles) and
/// its ledger as replay store.
fn verify_station(a: VerifyArgs, g: &GlobalArgs) -> Result<()> {
    if !a.issuer_keys.is_empty()
        || a.trust.is_some()
        || a.iss.is_some()
        || !a.audience.is_empty()
        || !a.policies.is_empty()
        || a.skew.is_some()
        || a.max_lifetime.is_some()
    {
        return Err(Failure::Usage(
            "--config verifies with the station's own trust store, audience, skew and profiles; drop --issuer-key, --trust, --iss, --audience, --policy, --skew and --max-lifetime".into(),
        )
        .into());
    }
    let input = read_input(&a.file)?;
    // The replay check reads the station's ledger: a missing one is an
    // error, never a new empty ledger that would call every ticket unused.
    let mut station = super::enroll::station_with(g.config.as_deref(), g.db.as_deref(), false)?;
    if let Some(now) = a.now {
        let secs = u64::try_from(now.as_second()).unwrap_or(0);
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        station.clock = std::sync::Arc::new(move || at);
    }
    match provision::verify_ticket(&station, &input) {
        Ok(vt) => print_verified(&vt, g.json),
        Err(e) => {
            if g.json {
                let doc = json!({"version": 1, "ok": false, "valid": false,
                    "error": {"code": e.reason, "reason": e.reason, "class": "station", "message": e.full_message()}});
                super::render::print_error_doc(&doc);
            }
            Err(Failure::reason(e.reason, format!("ticket REJECTED: {}", e.full_message())).into())
        }
    }
}

fn print_verified(vt: &ticket::VerifiedTicket, json: bool) -> Result<()> {
    let doc = json!({
        "version": 1, "ok": true, "valid": true, "form": vt.form, "digest_sha256": vt.digest.to_hex(),
        "signers": vt.signers, "claims": vt.claims,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_valid(vt)?;
    }
    Ok(())
}

fn verify(a: VerifyArgs, json: bool) -> Result<()> {
    let Some(first) = a.audience.first() else {
        return Err(Failure::Usage(
            "give the station id with --audience, or verify as the station does with --config"
                .into(),
        )
        .into());
    };
    if a.issuer_keys.is_empty() && a.trust.is_none() {
        return Err(Failure::Usage(
            "give the issuer keys (--issuer-key or --trust), or verify as the station does with --config".into(),
        )
        .into());
    }
    let input = read_input(&a.file)?;
    let trust = build_trust(&a, &input)?;
    let mut opts = VerifyOptions::new(first.clone());
    opts.audiences = a.audience.clone();
    opts.skew_secs = a.skew.unwrap_or(ticket::DEFAULT_SKEW_SECS);
    opts.max_lifetime_secs = a.max_lifetime.unwrap_or(ticket::DEFAULT_MAX_LIFETIME_SECS);
    opts.known_policies = (!a.policies.is_empty()).then(|| a.policies.clone());
    let verifier = Verifier::new(trust, opts)?;
    let now = a.now.unwrap_or_else(jiff::Timestamp::now).as_second();
    match verifier.verify(&input, now, &NoReplayCheck) {
        Ok(vt) => print_verified(&vt, json),
        Err(e) => {
            if json {
                let doc = json!({"version": 1, "ok": false, "valid": false,
                    "error": {"code": e.code(), "reason": super::exit::ticket_reason(&e), "class": format!("{:?}", e.class()).to_lowercase(), "message": e.to_string()}});
                super::render::print_error_doc(&doc);
            }
            let reason = super::exit::ticket_reason(&e);
            Err(Failure::reason(reason, format!("ticket REJECTED: {e}")).into())
        }
    }
}

fn print_valid(vt: &ticket::VerifiedTicket) -> Result<()> {
    let c = &vt.claims;
    println!("VALID ticket for {} from {}", c.sub, c.iss);
    for s in &vt.signers {
        println!(
            "  signed by   {} (approver {}, {})",
            s.kid, s.approver, s.alg
        );
    }
    println!("  audience    {}", c.aud.values().join(", "));
    println!(
        "  valid       {} .. {}",
        ticket::fmt_time(c.nbf),
        ticket::fmt_time(c.exp)
    );
    println!("  digest      sha256:{}", vt.digest.to_hex());
    println!("  (not consumed: the ticket is used up only by an enrollment)");
    println!("{}", serde_json::to_string_pretty(c)?);
    Ok(())
}

fn build_trust(a: &VerifyArgs, input: &[u8]) -> Result<TrustStore> {
    let mut config = match &a.trust {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read trust store {}", p.display()))?;
            serde_json::from_str::<TrustConfig>(&text)
                .with_context(|| format!("trust store {}", p.display()))?
        }
        None => TrustConfig::default(),
    };
    if !a.issuer_keys.is_empty() {
        // Keys given on the command line belong to --iss, or to whatever
        // issuer the ticket names: the signature must still verify.
        let iss = match &a.iss {
            Some(i) => i.clone(),
            None => unverified_iss(input).unwrap_or_default(),
        };
        config.issuers.push(IssuerConfig {
            iss,
            keys: a
                .issuer_keys
                .iter()
                .map(|p| KeyFile {
                    path: p.clone(),
                    kid: None,
                    approver: None,
                })
                .collect(),
            allowed_ops: a
                .allow_ops
                .iter()
                .map(|o| match o {
                    OpArg::Fido2 => OpKind::Fido2,
                    OpArg::Piv => OpKind::Piv,
                    OpArg::Replace => OpKind::Replace,
                    OpArg::Unblock => OpKind::Unblock,
                })
                .collect(),
            not_before: None,
            not_after: None,
            revoked_kids: vec![],
        });
    }
    Ok(TrustStore::load(&config)?)
}

/// The `iss` a ticket claims, read without trusting it.
fn unverified_iss(input: &[u8]) -> Option<String> {
    let raw = ticket::parse(input, ticket::DEFAULT_MAX_BYTES).ok()?;
    let v: Value = serde_json::from_slice(&raw.payload).ok()?;
    v.get("iss")?.as_str().map(str::to_owned)
}

fn inspect(a: InspectArgs, json: bool) -> Result<()> {
    let input = read_input(&a.file)?;
    let text = String::from_utf8_lossy(&input);
    let text = text.trim();
    let (headers, payload) = decode_leniently(text);
    let (structure, digest) = match ticket::parse(input.as_slice(), ticket::DEFAULT_MAX_BYTES) {
        Ok(raw) => ("well-formed".to_owned(), Some(raw.digest().to_hex())),
        Err(e) => (format!("malformed: {e}"), None),
    };
    eprintln!(
        "keyward: NOT VERIFIED. This is what the ticket claims; no signature, key, time or audience was checked. Use `keyward ticket verify` before trusting any of it."
    );
    if json {
        let doc = json!({"version": 1, "verified": false, "structure": structure,
            "digest_sha256": digest,
            "headers": headers, "claims": payload});
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!("UNVERIFIED ticket ({structure})");
        for (i, h) in headers.iter().enumerate() {
            println!("header {i}: {h}");
        }
        println!(
            "claims (unverified):\n{}",
            serde_json::to_string_pretty(&payload)?
        );
    }
    Ok(())
}

/// Decode headers and payload with no checks at all, for display.
fn decode_leniently(text: &str) -> (Vec<Value>, Value) {
    use base64::Engine;
    let dec = |s: &str| -> Value {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .unwrap_or_default();
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        let headers = v["signatures"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| dec(s["protected"].as_str().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        return (headers, dec(v["payload"].as_str().unwrap_or_default()));
    }
    let mut parts = text.split('.');
    let h = parts.next().map(dec).into_iter().collect();
    (h, parts.next().map(dec).unwrap_or(Value::Null))
}

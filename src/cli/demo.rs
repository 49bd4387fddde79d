//! `keyward demo`: one complete FIDO2 enrollment on the built-in simulator,
//! in-process (no pcscd, no network), through keyward's real layers: a
//! signed ticket, the CTAP client over in-memory CTAPHID, attestation
//! verification, and the ledger. See docs/demo.md.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use ciborium::Value;
use clap::Args;
use serde_json::json;
use zeroize::Zeroizing;

use super::Failure;
use crate::attest::authdata::CoseKey;
use crate::attest::sig::{EcdsaEncoding, SigAlg};
use crate::ctap::commands::client_pin::permission;
use crate::ctap::commands::config::ConfigCommand;
use crate::ctap::commands::get_assertion::GetAssertion;
use crate::ctap::commands::make_credential::{MakeCredential, User};
use crate::ctap::{Ctap2, Pin, PinProtocol, cbor};
use crate::sim::DeviceProfile;
use crate::sim::ca::SimCa;
use crate::sim::device::{SimDevice, SimOptions};
use crate::sim::fido::ctaphid::{HidError, HidPipe};
use crate::store::{CredentialRecord, DeviceRecord, EnrollmentRecord, Ledger, TicketRecord};
use crate::ticket::{
    self, Audience, Claims, Evidence, Fido2Op, IssuerConfig, KeyFile, MemoryReplayGuard, Op,
    OpKind, SigningKey, TicketAlg, TrustConfig, TrustStore, Verifier, VerifyOptions,
};
use crate::transport::TransportError;
use crate::transport::ctaphid::ReportIo;
use crate::transport::mem::{self, FnReports};

/// `keyward demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's files (issuer key, ticket, ledger) in DIR instead of
    /// a temporary directory that is removed at the end
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

const SUBJECT: &str = "demo-user@example.org";
const RP_ID: &str = "example.org";
const ISSUER: &str = "https://idp.example.org";
const STATION: &str = "demo-station";
const KID: &str = "demo-issuer-1";

/// One step of the demo, as shown and as reported in `--json`.
struct Step {
    name: &'static str,
    ok: bool,
    detail: serde_json::Value,
}

struct Report {
    json: bool,
    steps: Vec<Step>,
}

impl Report {
    fn step(&mut self, name: &'static str, lines: &[String], detail: serde_json::Value) {
        if !self.json {
            println!("[{}] {name}: ok", self.steps.len() + 1);
            for l in lines {
                println!("      {l}");
            }
        }
        self.steps.push(Step {
            name,
            ok: true,
            detail,
        });
    }

    fn doc(&self, extra: serde_json::Value) -> serde_json::Value {
        let steps: Vec<_> = self
            .steps
            .iter()
            .map(|s| json!({"name": s.name, "ok": s.ok, "detail": s.detail}))
            .collect();
        let mut d = json!({
            "version": 1,
            "ok": self.steps.iter().all(|s| s.ok),
            "steps": steps,
        });
        if let (Some(m), Some(e)) = (d.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        d
    }
}

/// The working directory: temporary (removed on drop) or kept.
struct WorkDir {
    path: PathBuf,
    remove: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn work_dir(keep: Option<&Path>) -> Result<WorkDir> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(p) = keep {
        // A second run in the same directory would find the first run's
        // binding of the same simulated serial in the ledger.
        if std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_some()) {
            return Err(Failure::Usage(format!(
                "--keep {}: the directory is not empty; give a new or empty one",
                p.display()
            ))
            .into());
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(p)
            .with_context(|| format!("cannot create {}", p.display()))?;
        return Ok(WorkDir {
            path: p.to_path_buf(),
            remove: false,
        });
    }
    let mut r = [0u8; 8];
    crate::random::fill(&mut r);
    let path = std::env::temp_dir().join(format!("keyward-demo-{}", hex::encode(r)));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    Ok(WorkDir { path, remove: true })
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(data)
        .with_context(|| format!("writing {}", path.display()))
}

/// An 8-digit demo PIN from the OS RNG (or `KEYWARD_DEMO_PIN`, for tests
/// that check it never appears in the output).
fn demo_pin() -> Pin {
    if let Ok(p) = std::env::var("KEYWARD_DEMO_PIN") {
        return Pin::new(Zeroizing::new(p));
    }
    let mut r = Zeroizing::new([0u8; 8]);
    crate::random::fill(r.as_mut());
    let mut s = Zeroizing::new(String::with_capacity(8));
    for b in r.iter() {
        s.push(char::from(b'0' + b % 10));
    }
    Pin::new(s)
}

/// The simulator's HID pipe as in-memory report I/O.
fn pipe_io(pipe: HidPipe) -> impl ReportIo {
    let w = pipe.writer();
    FnReports::new(
        move |r: &[u8; 64]| w.write_report(r).map_err(|_| TransportError::Disconnected),
        move |t: Duration| match pipe.read_report(t) {
            Ok(r) => Ok(Some(r)),
            Err(HidError::Timeout) => Ok(None),
            Err(_) => Err(TransportError::Disconnected),
        },
    )
}

fn fmt_aaguid(a: &[u8; 16]) -> String {
    let h = hex::encode(a);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// YubiKey firmware as getInfo reports it (0xMMmmpp) in dotted form.
fn fmt_firmware(f: u32) -> String {
    format!("{}.{}.{}", (f >> 16) & 0xFF, (f >> 8) & 0xFF, f & 0xFF)
}

fn verification(msg: impl std::fmt::Display) -> anyhow::Error {
    Failure::Verification(msg.to_string()).into()
}

/// Run `keyward demo`.
pub fn run(args: DemoArgs, json: bool) -> Result<()> {
    let mut report = Report {
        json,
        steps: Vec::new(),
    };
    let result = enroll(&args, &mut report);
    match result {
        Ok(extra) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&report.doc(extra))?);
            }
            Ok(())
        }
        Err(e) => {
            if json {
                report.steps.push(Step {
                    name: "failed",
                    ok: false,
                    detail: json!({"error": format!("{e:#}")}),
                });
                println!("{}", serde_json::to_string_pretty(&report.doc(json!({})))?);
            }
            Err(e)
        }
    }
}

fn enroll(args: &DemoArgs, r: &mut Report) -> Result<serde_json::Value> {
    // 1. Working directory.
    let dir = work_dir(args.keep.as_deref())?;
    let key_path = dir.path.join("issuer.key");
    let jwk_path = dir.path.join("issuer.pub.jwk");
    let db_path = dir.path.join("ledger.db");
    r.step(
        "workspace",
        &[
            format!("directory {}", dir.path.display()),
            if dir.remove {
                "(temporary: removed at the end; --keep DIR keeps the files)".into()
            } else {
                "(kept)".into()
            },
        ],
        json!({"dir": dir.path, "kept": !dir.remove}),
    );

    // 2. Issuer key, ticket, verification.
    let (key, pem) = loop {
        let mut seed = Zeroizing::new([0u8; 32]);
        crate::random::fill(seed.as_mut());
        match SigningKey::generate(TicketAlg::EdDsa, &seed) {
            Err(ticket::KeyError::BadSeed) => continue,
            r => break r.context("generating the issuer key")?,
        }
    };
    write_private(&key_path, pem.as_bytes())?;
    let jwk = serde_json::to_string_pretty(&key.public().to_jwk(KID))?;
    std::fs::write(&jwk_path, format!("{jwk}\n"))
        .with_context(|| format!("writing {}", jwk_path.display()))?;
    r.step(
        "issuer key",
        &[
            format!("ephemeral Ed25519 ticket issuer key, kid {KID}"),
            format!("public key {}", jwk_path.display()),
        ],
        json!({"kid": KID, "alg": "EdDSA"}),
    );

    let now = jiff::Timestamp::now().as_second();
    let mut jti = [0u8; 16];
    crate::random::fill(&mut jti);
    let claims = Claims {
        ver: ticket::VERSION,
        iss: ISSUER.into(),
        sub: SUBJECT.into(),
        aud: Audience::One(STATION.into()),
        iat: now,
        nbf: now,
        exp: now + 15 * 60,
        jti: base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, jti),
        ial: 2,
        evidence: Evidence {
            method: "demo".into(),
            verifier: ISSUER.into(),
            time: None,
            reference: None,
        },
        ops: vec![Op::Fido2(Fido2Op {
            rp_id: RP_ID.into(),
            user: None,
            user_name: Some(SUBJECT.into()),
        })],
        replaces: None,
        device: None,
        policy: "default".into(),
        approvals: 1,
    };
    let ticket_text = ticket::sign_compact(&claims, &key, KID).context("signing the ticket")?;
    std::fs::write(dir.path.join("ticket.jwt"), format!("{ticket_text}\n"))
        .context("writing the ticket")?;
    let trust = TrustStore::load(&TrustConfig {
        issuers: vec![IssuerConfig {
            iss: ISSUER.into(),
            keys: vec![KeyFile {
                path: jwk_path.clone(),
                kid: None,
                approver: None,
            }],
            allowed_ops: vec![OpKind::Fido2],
            not_before: None,
            not_after: None,
            revoked_kids: vec![],
        }],
    })
    .context("loading the trust store")?;
    let verifier = Verifier::new(trust, VerifyOptions::new(STATION))?;
    let guard = MemoryReplayGuard::new();
    let vt = verifier
        .verify(ticket_text.as_bytes(), now, &guard)
        .context("ticket REJECTED")?;
    vt.consume(&guard, now).context("consuming the ticket")?;
    r.step(
        "ticket",
        &[
            format!("issued for {} by {}", vt.claims.sub, vt.claims.iss),
            format!("operation fido2 rp_id {RP_ID}, jti {}", vt.claims.jti),
            format!(
                "verified against a trust store holding only {KID}, audience {STATION}, valid until {}",
                ticket::fmt_time(vt.claims.exp)
            ),
            format!("digest sha256:{} (the WebAuthn challenge)", vt.digest.to_hex()),
            "consumed in an in-memory replay guard".into(),
        ],
        json!({"jti": vt.claims.jti, "digest_sha256": vt.digest.to_hex(), "sub": vt.claims.sub}),
    );

    // 3. The simulated key over in-memory CTAPHID.
    let ca = Arc::new(SimCa::from_seed(SimCa::DEFAULT_SEED).context("simulator CA")?);
    let opts = SimOptions::new(DeviceProfile::default(), ca.clone());
    let device = SimDevice::new(&opts);
    let pipe = device
        .hid()
        .ok_or_else(|| anyhow!("the simulator profile has no FIDO2"))?;
    let transport = mem::open(pipe_io(pipe), Duration::from_secs(5))
        .context("CTAPHID_INIT to the simulator")?;
    let mut c = Ctap2::new(transport);
    c.set_timeout(Duration::from_secs(20));

    let info = c.get_info().context("getInfo")?;
    let aaguid = fmt_aaguid(&info.aaguid);
    let firmware = info.firmware_version.map(fmt_firmware);
    let proto = if info.pin_uv_auth_protocols.contains(&2) {
        PinProtocol::V2
    } else {
        PinProtocol::V1
    };
    r.step(
        "getInfo",
        &[
            format!("simulated key on in-memory CTAPHID, aaguid {aaguid}"),
            format!("versions {}", info.versions.join(", ")),
            format!(
                "firmware {}, PIN/UV protocols {:?}",
                firmware.as_deref().unwrap_or("-"),
                info.pin_uv_auth_protocols
            ),
        ],
        json!({"aaguid": aaguid, "versions": info.versions, "firmware_version": firmware}),
    );

    let pin = demo_pin();
    c.set_pin(proto, &pin).context("setPIN")?;
    r.step(
        "setPIN",
        &["a generated 8-digit PIN was set (kept in memory only, never shown)".into()],
        json!({}),
    );

    let cfg_tok = c
        .pin_token(proto, &pin, Some(permission::AUTHENTICATOR_CFG), None)
        .context("getPinUvAuthTokenUsingPinWithPermissions (acfg)")?;
    c.config(&ConfigCommand::EnableEnterpriseAttestation, Some(&cfg_tok))
        .context("authenticatorConfig enableEnterpriseAttestation")?;
    let ep = c.get_info().context("getInfo")?.option("ep");
    if ep != Some(true) {
        bail!(verification(
            "the key does not report enterprise attestation enabled"
        ));
    }
    r.step(
        "enterprise attestation",
        &["enabled with authenticatorConfig (token with the acfg permission)".into()],
        json!({"ep": true}),
    );

    let tok = c
        .pin_token(
            proto,
            &pin,
            Some(permission::MAKE_CREDENTIAL | permission::GET_ASSERTION),
            Some(RP_ID),
        )
        .context("getPinUvAuthTokenUsingPinWithPermissions (mc|ga)")?;
    r.step(
        "pinUvAuthToken",
        &[format!("token with permissions mc|ga for rp_id {RP_ID}")],
        json!({"permissions": ["mc", "ga"], "rp_id": RP_ID}),
    );

    let client_data = ticket::fido2_client_data(&vt.digest, RP_ID);
    let mut user_id = [0u8; 16];
    crate::random::fill(&mut user_id);
    let mc = MakeCredential {
        client_data_hash: client_data.hash,
        rp_id: RP_ID.into(),
        user: User {
            id: user_id.to_vec(),
            name: Some(SUBJECT.into()),
            display_name: Some("Demo User".into()),
        },
        algorithms: vec![-7],
        cred_protect: Some(2),
        rk: Some(true),
        enterprise_attestation: Some(1),
        ..MakeCredential::default()
    };
    let att = c
        .make_credential(&mc, Some(&tok))
        .context("makeCredential")?;
    let attested = att
        .auth_data
        .attested
        .as_ref()
        .ok_or_else(|| verification("makeCredential returned no credential"))?;
    let credential_id = attested.credential_id.clone();
    let cose_public = cbor::encode(&attested.public_key);
    let mut ao = vec![
        ("fmt", Value::Text(att.fmt.clone())),
        ("attStmt", att.att_stmt.clone()),
        ("authData", Value::Bytes(att.auth_data_raw.clone())),
    ];
    if let Some(ep) = att.ep_att {
        ao.push(("epAtt", Value::Bool(ep)));
    }
    let attestation_object = cbor::encode(&cbor::text_map(ao));
    std::fs::write(dir.path.join("attestation.cbor"), &attestation_object)
        .context("writing the attestation object")?;
    r.step(
        "makeCredential",
        &[
            format!("discoverable credential for {RP_ID}, ES256, credProtect 2, uv, ep=1"),
            format!("clientDataJSON {}", client_data.json),
            format!("credential id {}", hex::encode(&credential_id)),
        ],
        json!({"credential_id": hex::encode(&credential_id), "fmt": att.fmt,
               "client_data_json": client_data.json}),
    );

    // Attestation against the simulator's FIDO root only.
    let mut anchors = crate::attest::TrustStore::new();
    anchors.add_anchor(
        crate::attest::Cert::from_der(ca.fido_root()).context("the simulator's FIDO root")?,
        "simulator FIDO root",
    );
    let facts = crate::attest::verify_fido(
        &attestation_object,
        &client_data.hash,
        &anchors,
        None,
        SystemTime::now(),
    )
    .map_err(|e| verification(format!("FIDO attestation rejected: {e}")))?;
    if let Err(e) = &facts.trust {
        bail!(verification(format!(
            "attestation does not chain to the simulator root: {e}"
        )));
    }
    if facts.aaguid != aaguid {
        bail!(verification(format!(
            "attestation AAGUID {} differs from getInfo {aaguid}",
            facts.aaguid
        )));
    }
    if facts.credential_id != credential_id || !facts.user_verified {
        bail!(verification(
            "attestation facts do not match the credential"
        ));
    }
    let serial = facts
        .serial
        .ok_or_else(|| verification("enterprise attestation carries no serial number"))?;
    let mut lines = vec![
        format!(
            "format {:?}, type {:?}",
            facts.format, facts.attestation_type
        ),
        format!("aaguid {}", facts.aaguid),
        format!("enterprise attestation serial {serial}"),
        "chain (leaf to anchor):".to_string(),
    ];
    lines.extend(facts.chain.iter().map(|s| format!("  {s}")));
    r.step(
        "attestation",
        &lines,
        json!({"format": facts.format, "aaguid": facts.aaguid, "serial": serial,
               "enterprise": facts.enterprise, "chain": facts.chain}),
    );

    // getAssertion: the mc/ga permissions were used up by makeCredential
    // with UV (CTAP 2.1 §6.1.2), so get a fresh token.
    let ga_tok = c
        .pin_token(proto, &pin, Some(permission::GET_ASSERTION), Some(RP_ID))
        .context("getPinUvAuthTokenUsingPinWithPermissions (ga)")?;
    let mut challenge = [0u8; 32];
    crate::random::fill(&mut challenge);
    let get_json = format!(
        "{{\"type\":\"webauthn.get\",\"challenge\":\"{}\",\"origin\":\"https://{RP_ID}\",\"crossOrigin\":false}}",
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, challenge)
    );
    let ga_hash: [u8; 32] = {
        use sha2::Digest;
        sha2::Sha256::digest(get_json.as_bytes()).into()
    };
    let ga = GetAssertion {
        rp_id: RP_ID.into(),
        client_data_hash: ga_hash,
        allow_list: vec![credential_id.clone()],
        ..GetAssertion::default()
    };
    let a = c
        .get_assertion(&ga, Some(&ga_tok))
        .context("getAssertion")?;
    drop(ga_tok);
    drop(tok);
    drop(cfg_tok);
    drop(pin);
    if a.credential_id
        .as_deref()
        .is_some_and(|id| id != credential_id)
    {
        bail!(verification(
            "getAssertion answered with another credential"
        ));
    }
    let key = CoseKey::from_value(&attested.public_key)
        .map_err(|e| verification(format!("credential public key: {e}")))?;
    let alg = SigAlg::from_cose(key.alg.unwrap_or(-7))
        .map_err(|e| verification(format!("credential algorithm: {e}")))?;
    let msg = [a.auth_data_raw.as_slice(), &ga_hash].concat();
    key.key
        .verify(alg, &msg, &a.signature, EcdsaEncoding::Der)
        .map_err(|e| verification(format!("assertion signature invalid: {e}")))?;
    r.step(
        "getAssertion",
        &[format!(
            "signature verified with the credential public key (sign count {}, uv {})",
            a.auth_data.sign_count,
            a.auth_data.user_verified()
        )],
        json!({"sign_count": a.auth_data.sign_count, "signature_valid": true}),
    );

    // 4. The ledger.
    let mut ledger = Ledger::open_default_key(&db_path)
        .with_context(|| format!("opening the ledger {}", db_path.display()))?;
    let rec = EnrollmentRecord {
        subject: vt.claims.sub.clone(),
        ticket: TicketRecord {
            jti: vt.claims.jti.clone(),
            digest: vt.digest.to_hex(),
            issuer: vt.claims.iss.clone(),
            ial: Some(vt.claims.ial),
        },
        device: DeviceRecord {
            kind: "yubikey".into(),
            serial: Some(serial.to_string()),
            aaguid: Some(aaguid.clone()),
            model: None,
            firmware: firmware.clone(),
        },
        policy: Some(vt.claims.policy.clone()),
        credentials: vec![CredentialRecord {
            kind: "fido2".into(),
            credential_id: Some(credential_id.clone()),
            rp_id: Some(RP_ID.into()),
            slot: None,
            algorithm: "ES256".into(),
            public_key: cose_public,
            attestation: Some(attestation_object.clone()),
            attestation_format: Some(att.fmt.clone()),
        }],
        actor: "keyward-demo".into(),
    };
    let binding = ledger
        .commit_enrollment(&rec, jiff::Timestamp::now().as_second())
        .context("committing the enrollment")?;
    let audit = ledger.verify_audit().context("verifying the audit log")?;
    if !audit.ok() {
        bail!(verification(format!(
            "audit log check failed: {}",
            audit.problem.as_deref().unwrap_or("unknown problem")
        )));
    }
    let detail = ledger.show_binding(&binding).context("show binding")?;
    let pending = ledger.outbox_pending(1000).context("outbox")?.len();
    r.step(
        "ledger",
        &[
            format!("binding {binding} committed in {}", db_path.display()),
            format!(
                "subject {}, state {}, device {} serial {}",
                detail.summary.subject,
                detail.summary.state,
                detail.summary.device_kind,
                detail.summary.device_serial.as_deref().unwrap_or("-")
            ),
            format!(
                "{} credential(s), {} audit row(s) for the binding",
                detail.credentials.len(),
                detail.audit.len()
            ),
            format!(
                "audit log verified: {} rows, {} checkpoints",
                audit.rows, audit.checkpoints
            ),
            format!("{pending} outbox event(s) pending for sync"),
        ],
        json!({"binding": binding, "state": detail.summary.state, "audit_rows": audit.rows,
               "outbox_pending": pending}),
    );
    drop(ledger);

    if !r.json {
        println!();
        println!(
            "Enrolled {SUBJECT}: simulated YubiKey serial {serial} (aaguid {aaguid}) holds a \
             FIDO2 credential for {RP_ID}, bound in the ledger as {binding}."
        );
        println!("Every check passed.");
    }
    Ok(
        json!({"binding": binding, "serial": serial, "aaguid": aaguid, "subject": SUBJECT,
              "rp_id": RP_ID}),
    )
}

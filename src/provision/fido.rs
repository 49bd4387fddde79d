//! The FIDO2 steps of an enrollment (CTAP 2.1): reset, PIN, enterprise
//! attestation, makeCredential with the ticket digest as challenge,
//! attestation verification + policy, getAssertion proving the credential.
//! Each function is one step; the orchestration (enroll.rs) runs them with
//! their deadlines and events.

use ciborium::Value;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::errors;
use super::flow::Flow;
use super::{AppliedException, PinChoice, ProvisionError, Reason, Step};
use crate::attest::authdata::CoseKey;
use crate::attest::sig::{EcdsaEncoding, SigAlg};
use crate::attest::{self, FidoFacts};
use crate::ctap::client::PinUvAuth;
use crate::ctap::commands::client_pin::permission;
use crate::ctap::commands::config::ConfigCommand;
use crate::ctap::commands::get_assertion::GetAssertion;
use crate::ctap::commands::get_info::Info;
use crate::ctap::commands::make_credential::{MakeCredential, User};
use crate::ctap::{Ctap2, Pin, PinProtocol, StatusCode, cbor};
use crate::policy::profile::{EnterpriseAttestation, FidoExtension, Profile};
use crate::store::CredentialRecord;
use crate::ticket::{self, Fido2Op, VerifiedTicket};
use crate::transport::Transport;

/// An open FIDO2 interface.
pub(crate) struct Fido {
    pub c: Ctap2<Box<dyn Transport>>,
    pub info: Info,
    pub proto: PinProtocol,
    /// Whether makeCredential asks for enterprise attestation.
    pub ep: bool,
}

/// What the FIDO2 part produced.
#[derive(Default)]
pub(crate) struct FidoResult {
    pub credentials: Vec<CredentialRecord>,
    pub facts: Vec<FidoFacts>,
    pub aaguid: String,
    pub firmware: Option<String>,
    pub serial: Option<u64>,
    pub exceptions: Vec<AppliedException>,
}

fn fmt_firmware(f: u32) -> String {
    format!("{}.{}.{}", (f >> 16) & 0xFF, (f >> 8) & 0xFF, f & 0xFF)
}

/// getInfo: identify the key.
pub(crate) fn identify(
    flow: &mut Flow<'_>,
    transport: Box<dyn Transport>,
) -> Result<Fido, ProvisionError> {
    let mut c = Ctap2::new(transport);
    flow.attach(&mut c);
    c.set_timeout(flow.deadlines.command);
    flow.step(Step::Identify, flow.deadlines.command, |_| {
        let info = c.get_info().map_err(|e| errors::ctap(Step::Identify, e))?;
        if !info.versions.iter().any(|v| v.starts_with("FIDO_2")) {
            return Err(ProvisionError::new(
                Reason::DeviceUnsupported,
                Some(Step::Identify),
                "the key speaks only U2F (no FIDO2); use a FIDO2 key",
            ));
        }
        // Protocol 2 when offered, else 1 (docs/interop.md).
        let proto = info
            .pin_protocol()
            .map_err(|e| errors::ctap(Step::Identify, e))?;
        let aaguid = attest::mds::format_aaguid(&info.aaguid);
        let detail = json!({"aaguid": aaguid, "versions": info.versions,
            "firmware": info.firmware_version.map(fmt_firmware),
            "client_pin": info.option("clientPin"), "ep": info.option("ep")});
        Ok((
            Fido {
                c,
                info,
                proto,
                ep: false,
            },
            detail,
        ))
    })
}

/// authenticatorReset, when the profile asks for a fresh key.
pub(crate) fn reset(flow: &mut Flow<'_>, f: &mut Fido) -> Result<(), ProvisionError> {
    let t = flow.deadlines.touch;
    f.c.set_timeout(t);
    let reinsert = flow.deadlines.reinsert;
    flow.step(Step::Reset, t, |fl| {
        f.c.reset().map_err(|e| {
            let e = errors::ctap(Step::Reset, e);
            if e.reason == Reason::ResetNotAllowed {
                fl.emit(super::Event::ReinsertNeeded {
                    step: Step::Reset,
                    within_ms: u64::try_from(reinsert.as_millis()).unwrap_or(u64::MAX),
                });
            }
            e
        })?;
        Ok(((), json!({"reset": true})))
    })?;
    f.c.set_timeout(flow.deadlines.command);
    f.info =
        f.c.get_info()
            .map_err(|e| errors::ctap(Step::Identify, e))?;
    Ok(())
}

/// Set the PIN (or accept one an interrupted attempt set), returning the
/// PIN now on the key.
///
/// A key that already has a PIN is accepted only if the given PIN opens
/// it (one try, never more): that is the key of an earlier attempt of
/// this enrollment that was interrupted after setPIN. With a generated PIN
/// the old one cannot be known: the profile must reset the key first.
pub(crate) fn set_pin(
    flow: &mut Flow<'_>,
    f: &mut Fido,
    choice: &PinChoice,
    profile: &Profile,
    rp_id: &str,
) -> Result<(Pin, bool), ProvisionError> {
    let cmd = flow.deadlines.command;
    let has_pin = f.info.option("clientPin");
    if has_pin.is_none() {
        return Err(ProvisionError::new(
            Reason::DeviceUnsupported,
            Some(Step::SetPin),
            "the key has no clientPIN support; keyward enrolls only keys with a PIN",
        ));
    }
    let (pin, generated) = match choice {
        PinChoice::Given(p) => (p.clone(), false),
        PinChoice::Generate => (generate_pin(profile.pin.generated_length), true),
    };
    flow.step(Step::SetPin, cmd, |_| {
        if has_pin == Some(true) && f.info.force_pin_change == Some(true) {
            // The key refuses every PIN token until its PIN is changed
            // (§6.5.5.7.2); trying would only risk a retry. Not one PIN
            // is sent (docs/interop.md "forcePINChange").
            return Err(errors::ctap(
                Step::SetPin,
                crate::ctap::Error::PinChangeRequired,
            ));
        }
        if has_pin == Some(true) {
            let retries = f
                .c
                .pin_retries()
                .map_err(|e| errors::ctap(Step::SetPin, e))?;
            if retries.retries == 0 {
                return Err(ProvisionError::new(
                    Reason::PinBlocked,
                    Some(Step::SetPin),
                    "the key's FIDO2 PIN is blocked; it must be reset (a profile with reset_before_enroll = true does so)",
                ));
            }
            if retries.retries <= 2 {
                // A wrong guess here could block the PIN (or need a power
                // cycle): do not try.
                return Err(ProvisionError::new(
                    Reason::PinAlreadySet,
                    Some(Step::SetPin),
                    format!(
                        "the key already has a FIDO2 PIN with only {} tries left; keyward does not risk blocking it — reset the key (profile reset_before_enroll) to enroll it afresh",
                        retries.retries
                    ),
                ));
            }
            if generated {
                return Err(ProvisionError::new(
                    Reason::PinAlreadySet,
                    Some(Step::SetPin),
                    "the key already has a FIDO2 PIN and this enrollment generates one; reset the key first (profile reset_before_enroll) or use a fresh key",
                ));
            }
            // One try with the PIN the person chose: an earlier,
            // interrupted attempt of this enrollment may have set it.
            return match f.c.token_for(&f.info, &pin, permission::MAKE_CREDENTIAL, Some(rp_id)) {
                Ok(_) => Ok(((), json!({"pin": "already set by an earlier attempt; accepted"}))),
                Err(e) if e.status() == Some(StatusCode::PinInvalid) => Err(ProvisionError::new(
                    Reason::PinAlreadySet,
                    Some(Step::SetPin),
                    format!(
                        "the key already has a different FIDO2 PIN ({} tries left); enter that PIN, or reset the key (profile reset_before_enroll) to enroll it afresh",
                        retries.retries.saturating_sub(1)
                    ),
                )),
                Err(e) => Err(errors::ctap(Step::SetPin, e)),
            };
        }
        f.c.set_pin(f.proto, &pin)
            .map_err(|e| errors::ctap(Step::SetPin, e))?;
        Ok(((), json!({"pin": if generated { "generated" } else { "chosen by the person" }})))
    })?;
    Ok((pin, generated))
}

/// A random numeric PIN of `len` digits (uniform, rejection sampling).
pub(crate) fn generate_pin(len: usize) -> Pin {
    Pin::generate_numeric(len)
}

fn cfg_token(f: &mut Fido, pin: &Pin, step: Step) -> Result<PinUvAuth, ProvisionError> {
    f.c.token_for(&f.info, pin, permission::AUTHENTICATOR_CFG, None)
        .map_err(|e| errors::ctap(step, e))
}

/// setMinPINLength with forceChangePin: a generated PIN must be changed by
/// the person at first use.
pub(crate) fn force_change_pin(
    flow: &mut Flow<'_>,
    f: &mut Fido,
    pin: &Pin,
) -> Result<(), ProvisionError> {
    let cmd = flow.deadlines.command;
    flow.step(Step::ForceChangePin, cmd, |_| {
        if f.info.option("setMinPINLength") != Some(true) {
            return Err(ProvisionError::new(
                Reason::DeviceUnsupported,
                Some(Step::ForceChangePin),
                "the key cannot force a PIN change (no setMinPINLength); a generated PIN needs it — choose the PIN at a kiosk instead",
            ));
        }
        let tok = cfg_token(f, pin, Step::ForceChangePin)?;
        let cmd = ConfigCommand::SetMinPinLength {
            new_min_pin_length: None,
            min_pin_length_rp_ids: vec![],
            force_change_pin: true,
        };
        f.c.config(&cmd, Some(&tok))
            .map_err(|e| errors::ctap(Step::ForceChangePin, e))?;
        Ok(((), json!({"force_change_pin": true})))
    })
}

/// Enable enterprise attestation where the profile wants it; sets
/// whether makeCredential asks for it.
pub(crate) fn enterprise_attestation(
    flow: &mut Flow<'_>,
    f: &mut Fido,
    pin: &Pin,
    profile: &Profile,
) -> Result<(), ProvisionError> {
    let want = profile.enterprise_attestation;
    if want == EnterpriseAttestation::Off {
        return Ok(());
    }
    let supported = f.info.option("ep").is_some() && f.info.option("authnrCfg") == Some(true);
    if !supported {
        if want == EnterpriseAttestation::Required {
            return Err(ProvisionError::new(
                Reason::PolicyEnterpriseAttestation,
                Some(Step::EnterpriseAttestation),
                format!(
                    "profile requires enterprise attestation, which this key (AAGUID {}) does not offer",
                    attest::mds::format_aaguid(&f.info.aaguid)
                ),
            ));
        }
        return Ok(());
    }
    let cmd = flow.deadlines.command;
    flow.step(Step::EnterpriseAttestation, cmd, |_| {
        if f.info.option("ep") != Some(true) {
            let tok = cfg_token(f, pin, Step::EnterpriseAttestation)?;
            f.c.config(&ConfigCommand::EnableEnterpriseAttestation, Some(&tok))
                .map_err(|e| errors::ctap(Step::EnterpriseAttestation, e))?;
        }
        Ok(((), json!({"ep": true})))
    })?;
    f.ep = true;
    Ok(())
}

/// The key must list every extension the profile requires (getInfo 0x02).
pub(crate) fn extensions_offered(f: &Fido, profile: &Profile) -> Result<(), ProvisionError> {
    for e in &profile.fido.extensions {
        if !f.info.extensions.iter().any(|x| x == e.name()) {
            return Err(ProvisionError::new(
                Reason::PolicyFidoExtension,
                Some(Step::Identify),
                format!(
                    "the profile requires the FIDO2 extension {e}, which this key (AAGUID {}) does not offer; use a key that has it, or a profile that does not require it",
                    attest::mds::format_aaguid(&f.info.aaguid)
                ),
            ));
        }
    }
    Ok(())
}

/// The new credential must carry what the profile required: the signed
/// credProtect and hmac-secret outputs in authData (covered by the
/// attestation signature) and the largeBlobKey (unsigned, §12.3).
fn extensions_applied(
    profile: &Profile,
    att: &crate::ctap::commands::make_credential::Attestation,
) -> Result<(), ProvisionError> {
    let refuse = |m: String| {
        ProvisionError::new(Reason::PolicyFidoExtension, Some(Step::FidoAttestation), m)
    };
    let out = att
        .extensions()
        .map_err(|e| refuse(format!("the key's extension outputs are unusable: {e}")))?;
    for e in &profile.fido.extensions {
        let ok = match e {
            FidoExtension::CredProtect(l) => out.cred_protect == Some(*l),
            FidoExtension::HmacSecret => out.hmac_secret == Some(true),
            FidoExtension::LargeBlobKey => att.large_blob_key.is_some(),
        };
        if !ok {
            let got = match e {
                FidoExtension::CredProtect(_) => out
                    .cred_protect
                    .map_or("no credProtect output".to_string(), |l| {
                        format!("level {l}")
                    }),
                _ => "no output".to_string(),
            };
            return Err(refuse(format!(
                "the profile requires {e}, but the key did not apply it to the new credential ({got}); the key cannot be enrolled under this profile"
            )));
        }
    }
    Ok(())
}

/// The user handle: the ticket's, or one derived from issuer and subject
/// (stable per identity, reveals neither).
fn user_handle(vt: &VerifiedTicket, op: &Fido2Op) -> Vec<u8> {
    use base64::Engine;
    if let Some(u) = &op.user
        && let Ok(b) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(u)
    {
        return b;
    }
    let mut h = Sha256::new();
    h.update(b"keyward-user-handle-v1\0");
    h.update(vt.claims.iss.as_bytes());
    h.update([0]);
    h.update(vt.claims.sub.as_bytes());
    h.finalize().to_vec()
}

/// What one makeCredential is for: the ticket's relying party (the
/// ticket digest in the clientDataHash), or the identity provider's
/// (`provision::idp`, the IdP's challenge in it).
pub(crate) struct CredentialSpec {
    pub rp_id: String,
    pub user: User,
    pub client_data_hash: [u8; 32],
    /// COSE algorithms acceptable, in order of preference.
    pub algorithms: Vec<i64>,
    /// Credential ids the relying party already knows (excludeList).
    pub exclude: Vec<Vec<u8>>,
}

/// makeCredential, attestation check and getAssertion for one op.
pub(crate) fn credential(
    flow: &mut Flow<'_>,
    f: &mut Fido,
    pin: &Pin,
    vt: &VerifiedTicket,
    op: &Fido2Op,
    profile: &Profile,
    out: &mut FidoResult,
) -> Result<(), ProvisionError> {
    let client_data = ticket::fido2_client_data(&vt.digest, &op.rp_id);
    let spec = CredentialSpec {
        rp_id: op.rp_id.clone(),
        user: User {
            id: user_handle(vt, op),
            name: op.user_name.clone().or_else(|| Some(vt.claims.sub.clone())),
            display_name: op.user_name.clone(),
        },
        client_data_hash: client_data.hash,
        algorithms: vec![-7],
        exclude: Vec::new(),
    };
    made(flow, f, pin, &spec, profile, out).map(|_| ())
}

/// makeCredential for `spec`, its attestation verified by the station's
/// verifier and judged by the profile's policy (the same for every
/// credential of an enrollment), then getAssertion proving it. Returns the
/// attestation object and the credential id; the credential is added to
/// `out`.
pub(crate) fn made(
    flow: &mut Flow<'_>,
    f: &mut Fido,
    pin: &Pin,
    spec: &CredentialSpec,
    profile: &Profile,
    out: &mut FidoResult,
) -> Result<(Vec<u8>, Vec<u8>), ProvisionError> {
    let touch = flow.deadlines.touch;
    let offered =
        |a: &i64| f.info.algorithms.is_empty() && *a == -7 || f.info.algorithms.contains(a);
    let alg = match spec.algorithms.iter().copied().find(offered) {
        Some(a) => a,
        // The ticket's credential: ES256, or the key's first algorithm.
        None if spec.algorithms == [-7] && !f.info.algorithms.is_empty() => f.info.algorithms[0],
        None => {
            return Err(ProvisionError::new(
                Reason::DeviceUnsupported,
                Some(Step::MakeCredential),
                format!(
                    "{} accepts COSE algorithms {:?}, none of which this key offers ({:?}); use another key",
                    spec.rp_id, spec.algorithms, f.info.algorithms
                ),
            ));
        }
    };
    let mc = MakeCredential {
        client_data_hash: spec.client_data_hash,
        rp_id: spec.rp_id.clone(),
        user: spec.user.clone(),
        algorithms: vec![alg],
        exclude_list: spec.exclude.clone(),
        // Level 2 unless the profile asks for another (docs/policy.md).
        cred_protect: Some(profile.fido.cred_protect().unwrap_or(2)),
        hmac_secret: profile.fido.requires(FidoExtension::HmacSecret),
        large_blob_key: profile.fido.requires(FidoExtension::LargeBlobKey),
        rk: Some(true),
        enterprise_attestation: f.ep.then_some(1),
        ..MakeCredential::default()
    };
    f.c.set_timeout(touch);
    let att = flow.step(Step::MakeCredential, touch, |_| {
        let tok =
            f.c.token_for(
                &f.info,
                pin,
                permission::MAKE_CREDENTIAL | permission::GET_ASSERTION,
                Some(&spec.rp_id),
            )
            .map_err(|e| errors::ctap(Step::MakeCredential, e))?;
        let att =
            f.c.make_credential(&mc, Some(&tok))
                .map_err(|e| errors::ctap(Step::MakeCredential, e))?;
        let id = att.credential_id().map(hex::encode);
        let detail = json!({"rp_id": spec.rp_id, "credential_id": id, "fmt": att.fmt,
                            "enterprise_attestation": f.ep});
        Ok((att, detail))
    })?;
    let attested = att.auth_data.attested.clone().ok_or_else(|| {
        ProvisionError::new(
            Reason::AttestationInvalid,
            Some(Step::MakeCredential),
            "makeCredential returned no credential",
        )
    })?;
    let mut ao = vec![
        ("fmt", Value::Text(att.fmt.clone())),
        ("attStmt", att.att_stmt.clone()),
        ("authData", Value::Bytes(att.auth_data_raw.clone())),
    ];
    if let Some(e) = att.ep_att {
        ao.push(("epAtt", Value::Bool(e)));
    }
    let attestation_object = cbor::encode(&cbor::text_map(ao));
    let facts = flow.step(Step::FidoAttestation, touch, |fl| {
        let facts = check_attestation(
            fl,
            f,
            &attestation_object,
            &spec.client_data_hash,
            profile,
            out,
        )?;
        if facts.credential_id != attested.credential_id {
            return Err(ProvisionError::new(
                Reason::AttestationInvalid,
                Some(Step::FidoAttestation),
                "the attestation names another credential than makeCredential returned",
            ));
        }
        let detail = json!({"format": facts.format, "type": facts.attestation_type,
            "aaguid": facts.aaguid, "serial": facts.serial, "chain": facts.chain,
            "enterprise": facts.enterprise, "attested": facts.provenance.attested,
            "claimed": facts.provenance.claimed,
            // The MDS entry's model, latest status and certification level,
            // and the anchor the chain ended at: kept with the run.
            "mds": facts.mds, "anchor": facts.trust.as_ref().ok().map(|t| &t.0),
            "anchor_source": facts.trust.as_ref().ok().map(|t| &t.1)});
        Ok((facts, detail))
    })?;
    extensions_applied(profile, &att)?;
    if profile.enterprise_attestation == EnterpriseAttestation::Required && facts.serial.is_none() {
        return Err(ProvisionError::new(
            Reason::PolicyEnterpriseAttestation,
            Some(Step::FidoAttestation),
            "profile requires enterprise attestation, but the attestation carries no serial",
        ));
    }
    let hmac = profile.fido.requires(FidoExtension::HmacSecret);
    prove(
        flow,
        f,
        pin,
        &spec.rp_id,
        (&attested.credential_id, &attested.public_key),
        hmac,
    )?;
    let cose = CoseKey::from_value(&attested.public_key).ok();
    let algorithm = match cose.and_then(|k| k.alg).unwrap_or(alg) {
        -7 => "ES256".to_string(),
        -8 => "EdDSA".to_string(),
        -257 => "RS256".to_string(),
        a => format!("COSE {a}"),
    };
    out.credentials.push(CredentialRecord {
        kind: "fido2".into(),
        credential_id: Some(attested.credential_id.clone()),
        rp_id: Some(spec.rp_id.clone()),
        slot: None,
        algorithm,
        public_key: cbor::encode(&attested.public_key),
        attestation: Some(attestation_object.clone()),
        attestation_format: Some(att.fmt.clone()),
    });
    if facts.serial.is_some() {
        out.serial = facts.serial;
    }
    out.facts.push(facts);
    Ok((attestation_object, attested.credential_id))
}

/// Verify the attestation to the station's anchors (and MDS), then let the
/// profile's attestation policy decide.
fn check_attestation(
    flow: &mut Flow<'_>,
    f: &Fido,
    attestation_object: &[u8],
    client_data_hash: &[u8; 32],
    profile: &Profile,
    out: &mut FidoResult,
) -> Result<FidoFacts, ProvisionError> {
    let st = flow.station;
    let at = st.now();
    let facts = attest::verify_fido(
        attestation_object,
        client_data_hash,
        &st.anchors,
        st.mds.as_deref(),
        at,
    )
    .map_err(|e| {
        ProvisionError::new(
            Reason::AttestationInvalid,
            Some(Step::FidoAttestation),
            format!("the FIDO2 attestation is invalid: {e}"),
        )
        .with_source(e)
    })?;
    let info_aaguid = attest::mds::format_aaguid(&f.info.aaguid);
    if facts.aaguid != info_aaguid {
        return Err(ProvisionError::new(
            Reason::AttestationInvalid,
            Some(Step::FidoAttestation),
            format!(
                "the attestation's AAGUID {} differs from the key's getInfo AAGUID {info_aaguid}",
                facts.aaguid
            ),
        ));
    }
    if !facts.user_verified {
        return Err(ProvisionError::new(
            Reason::AttestationInvalid,
            Some(Step::FidoAttestation),
            "the credential was made without user verification",
        ));
    }
    let verdict = profile.attestation.decide_fido(&facts, at);
    super::enroll::apply_verdict(&verdict, Step::FidoAttestation, &mut out.exceptions)?;
    Ok(facts)
}

/// getAssertion with the new credential, and its signature checked with
/// the credential's public key.
fn prove(
    flow: &mut Flow<'_>,
    f: &mut Fido,
    pin: &Pin,
    rp_id: &str,
    (credential_id, public_key): (&[u8], &Value),
    hmac_secret: bool,
) -> Result<(), ProvisionError> {
    let touch = flow.deadlines.touch;
    let mut challenge = [0u8; 32];
    crate::random::fill(&mut challenge);
    let json_text = format!(
        "{{\"type\":\"webauthn.get\",\"challenge\":\"{}\",\"origin\":{},\"crossOrigin\":false}}",
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, challenge),
        serde_json::Value::String(format!("https://{}", rp_id))
    );
    let hash: [u8; 32] = Sha256::digest(json_text.as_bytes()).into();
    let ga = GetAssertion {
        rp_id: rp_id.to_string(),
        client_data_hash: hash,
        allow_list: vec![credential_id.to_vec()],
        ..GetAssertion::default()
    };
    f.c.set_timeout(touch);
    flow.step(Step::GetAssertion, touch, |_| {
        // makeCredential with UV used up the token's mc/ga permissions
        // (CTAP 2.1 §6.1.2): a fresh token.
        let tok =
            f.c.token_for(&f.info, pin, permission::GET_ASSERTION, Some(rp_id))
                .map_err(|e| errors::ctap(Step::GetAssertion, e))?;
        let a = if hmac_secret {
            // The profile requires hmac-secret: the key must also answer
            // it (§12.5), not only claim it at makeCredential.
            let mut salt = [0u8; 32];
            crate::random::fill(&mut salt);
            match f
                .c
                .get_assertion_hmac_secret(&ga, Some(&tok), f.proto, &salt, None)
            {
                Ok((a, _output)) => a,
                Err(crate::ctap::client::Error::Unsupported(what)) => {
                    return Err(ProvisionError::new(
                        Reason::PolicyFidoExtension,
                        Some(Step::GetAssertion),
                        format!("the profile requires hmac-secret, but the key gave no {what}"),
                    ));
                }
                Err(e) => return Err(errors::ctap(Step::GetAssertion, e)),
            }
        } else {
            f.c.get_assertion(&ga, Some(&tok))
                .map_err(|e| errors::ctap(Step::GetAssertion, e))?
        };
        let invalid = |m: String| {
            ProvisionError::new(Reason::AttestationInvalid, Some(Step::GetAssertion), m)
        };
        if a.credential_id
            .as_deref()
            .is_some_and(|id| id != credential_id)
        {
            return Err(invalid(
                "getAssertion answered with another credential".into(),
            ));
        }
        let key = CoseKey::from_value(public_key)
            .map_err(|e| invalid(format!("credential public key: {e}")))?;
        let alg = SigAlg::from_cose(key.alg.unwrap_or(-7))
            .map_err(|e| invalid(format!("credential algorithm: {e}")))?;
        let msg = [a.auth_data_raw.as_slice(), &hash].concat();
        key.key
            .verify(alg, &msg, &a.signature, EcdsaEncoding::Der)
            .map_err(|e| invalid(format!("the assertion signature does not verify: {e}")))?;
        Ok((
            (),
            json!({"signature_valid": true, "sign_count": a.auth_data.sign_count,
                       "user_verified": a.auth_data.user_verified()}),
        ))
    })
}

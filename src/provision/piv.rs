//! The PIV steps of an enrollment (through pcscd): identify and drift
//! check (read-only), PIN and PUK away from the factory values, a fresh
//! PIN-protected AES management key, then per ticket op: key generation
//! with the op's PIN/touch policy, attestation verified to the station's
//! anchors with the attested key equal to the generated one, and the
//! ticket binding: the new key signs `piv_binding_digest` (docs/ticket.md
//! §6), kept with the slot and F9 certificates as the attestation record.

use ciborium::Value;
use serde_json::json;

use super::flow::Flow;
use super::{AppliedException, KeyTarget, PinChoice, ProvisionError, Reason, Step, errors, target};
use crate::attest::{self, PivFacts};
use crate::ctap::cbor;
use crate::piv::{
    DriftFact, DriftPolicy, DriftReport, KeyAlgorithm, MgmtAlgorithm, MgmtSource, Pin, PinPolicy,
    PivCard, PivError, Puk, Slot, TouchPolicy,
};
use crate::policy::profile::Profile;
use crate::store::CredentialRecord;
use crate::ticket::{self, Op, PivOp, VerifiedTicket};

/// The attestation record format stored with each PIV credential.
pub const RECORD_FORMAT: &str = "keyward-piv-binding-v1";

/// What identification found (the card is closed again afterwards).
#[derive(Debug, Clone)]
pub(crate) struct PivIdentity {
    pub serial: u32,
    pub firmware: String,
    pin_is_default: bool,
    puk_is_default: bool,
}

/// What the PIV part produced.
pub(crate) struct PivResult {
    pub credentials: Vec<CredentialRecord>,
    pub facts: Vec<PivFacts>,
    pub puk: Option<Puk>,
    pub exceptions: Vec<AppliedException>,
}

/// One PIV op, parsed.
struct Spec {
    slot: Slot,
    slot_byte: u8,
    alg: KeyAlgorithm,
    pin_policy: PinPolicy,
    touch_policy: TouchPolicy,
}

fn spec(op: &PivOp) -> Result<Spec, ProvisionError> {
    let bad = |m: String| ProvisionError::new(Reason::PolicyPiv, Some(Step::Policy), m);
    let slot_byte = op
        .slot_byte()
        .ok_or_else(|| bad(format!("PIV slot {:?} is not a key slot", op.slot)))?;
    let slot: Slot = op.slot.parse().map_err(bad)?;
    let alg: KeyAlgorithm = op.alg.parse().map_err(|_| {
        ProvisionError::new(
            Reason::DeviceUnsupported,
            Some(Step::Policy),
            format!(
                "keyward does not generate {} PIV keys; ask for p256, p384, rsa2048, or on firmware 5.7+ rsa3072, rsa4096 or ed25519",
                op.alg
            ),
        )
    })?;
    // The enrollment proves possession by a signature over the ticket
    // binding (docs/ticket.md §6): a key that cannot sign cannot prove it.
    if !alg.can_sign() {
        return Err(ProvisionError::new(
            Reason::DeviceUnsupported,
            Some(Step::Policy),
            format!(
                "an enrollment cannot put an {alg} key in slot {}: it only agrees keys and cannot sign the ticket binding; ask for a signing algorithm, and generate X25519 keys with `keyward piv provision`",
                op.slot
            ),
        ));
    }
    let pin_policy: PinPolicy = op
        .pin_policy
        .as_deref()
        .unwrap_or("default")
        .parse()
        .map_err(bad)?;
    let touch_policy: TouchPolicy = op
        .touch_policy
        .as_deref()
        .unwrap_or("default")
        .parse()
        .map_err(bad)?;
    Ok(Spec {
        slot,
        slot_byte,
        alg,
        pin_policy,
        touch_policy,
    })
}

/// Before touching the key: every PIV op is one keyward can run and the
/// profile allows.
pub(crate) fn check_ops(ops: &[Op], profile: &Profile) -> Result<(), ProvisionError> {
    let rules = &profile.piv;
    for op in ops {
        let Op::Piv(p) = op else { continue };
        spec(p)?;
        let refuse = |what: String| {
            ProvisionError::new(
                Reason::PolicyPiv,
                Some(Step::Policy),
                format!(
                    "{what} is not allowed by this station's profile; ask for a ticket the profile allows"
                ),
            )
        };
        if !rules.algorithms.is_empty() && !rules.algorithms.contains(&p.alg) {
            return Err(refuse(format!("PIV algorithm {}", p.alg)));
        }
        if let Some(pp) = p.pin_policy.as_deref().filter(|v| *v != "default")
            && !rules.pin_policies.is_empty()
            && !rules.pin_policies.iter().any(|x| policy_name(x) == pp)
        {
            return Err(refuse(format!("PIV PIN policy {pp}")));
        }
        if let Some(tp) = p.touch_policy.as_deref().filter(|v| *v != "default")
            && !rules.touch_policies.is_empty()
            && !rules.touch_policies.iter().any(|x| policy_name(x) == tp)
        {
            return Err(refuse(format!("PIV touch policy {tp}")));
        }
    }
    Ok(())
}

fn policy_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The person's PIN, if the PIV applet takes it (one PIN type serves both applets).
fn to_piv_pin(pin: &Pin) -> Result<&Pin, ProvisionError> {
    crate::piv::pin_bytes(pin).map(|_| pin).map_err(|_| {
        ProvisionError::new(
            Reason::PolicyPin,
            Some(Step::Policy),
            "a PIV PIN is 6 to 8 characters; choose a PIN of that length",
        )
    })
}

/// Open the card, read its identity and state, and apply the drift rules.
pub(crate) fn identify(
    flow: &mut Flow<'_>,
    target_: &KeyTarget,
    ops: &[PivOp],
    pin: &PinChoice,
) -> Result<PivIdentity, ProvisionError> {
    let cmd = flow.deadlines.command;
    let (card, state) = flow.step(Step::Identify, cmd, |_| {
        let mut card = target::open_piv(target_)?;
        let state = card.state().map_err(|e| errors::piv(Step::Identify, e))?;
        let detail = json!({"interface": "piv", "serial": state.serial,
            "firmware": state.version.to_string(), "reader": card.reader()});
        Ok(((card, state), detail))
    })?;
    let wanted: Vec<Slot> = ops.iter().filter_map(|o| o.slot.parse().ok()).collect();
    let id = flow.step(Step::DriftCheck, cmd, |_| {
        let report = DriftReport::check(&state, &DriftPolicy::default());
        let pin_is_default = state.pin_is_default == Some(true);
        for f in &report.facts {
            let refuse = |m: String| {
                Err(ProvisionError::new(Reason::Drift, Some(Step::DriftCheck), m))
            };
            match f {
                DriftFact::DefaultPin
                | DriftFact::DefaultPuk
                | DriftFact::DefaultManagementKey
                | DriftFact::ManagementKeyAlgorithm { .. } => {}
                // A slot of this ticket holding a key on a card whose PIN
                // was changed: an interrupted attempt of this enrollment
                // (the PIN step runs before key generation); the key is
                // regenerated once the person's PIN opens the card.
                DriftFact::SlotInUse { slot, .. } if wanted.contains(slot) && !pin_is_default => {}
                DriftFact::SlotInUse { slot, .. } => {
                    return refuse(format!(
                        "slot {slot} already holds a key or certificate; this card is not fresh — return it to stock (reset) before enrolling it"
                    ));
                }
                DriftFact::FirmwareBelowMinimum { found, minimum } => {
                    return refuse(format!(
                        "firmware {found} is below {minimum} (YSA-2024-03); issue a newer key"
                    ));
                }
                DriftFact::DefaultsUnknown => {
                    return refuse(
                        "the card cannot report whether its PIN, PUK and management key are the factory values (firmware without GET METADATA); issue a newer key".into(),
                    );
                }
            }
        }
        // An algorithm this firmware lacks: refused before the PIN step.
        for op in ops {
            let alg = spec(op)?.alg;
            if let Some(min) = alg.min_firmware().filter(|m| state.version < *m) {
                return Err(ProvisionError::new(
                    Reason::DeviceUnsupported,
                    Some(Step::DriftCheck),
                    format!(
                        "the ticket asks for an {alg} key in slot {}, which needs firmware {min} or later; this key has {}: use a newer key or a ticket for p256, p384 or rsa2048",
                        op.slot, state.version
                    ),
                ));
            }
        }
        if !pin_is_default && matches!(pin, PinChoice::Generate) {
            return Err(ProvisionError::new(
                Reason::PinAlreadySet,
                Some(Step::DriftCheck),
                "the card's PIV PIN is not the factory PIN and this enrollment generates one; return the key to stock (reset) first",
            ));
        }
        let detail = json!({"facts": report.facts, "clean_for_enrollment": true});
        Ok((
            PivIdentity {
                serial: state.serial,
                firmware: state.version.to_string(),
                pin_is_default,
                puk_is_default: state.puk_is_default == Some(true),
            },
            detail,
        ))
    })?;
    // Closed before the FIDO2 steps, which use the same card through
    // another connection.
    drop(card);
    Ok(id)
}

/// The provisioning steps, on a fresh connection to the same card.
pub(crate) fn provision(
    flow: &mut Flow<'_>,
    target_: &KeyTarget,
    id: &PivIdentity,
    vt: &VerifiedTicket,
    ops: &[PivOp],
    pin: &Pin,
    profile: &Profile,
) -> Result<PivResult, ProvisionError> {
    let cmd = flow.deadlines.command;
    let pin = to_piv_pin(pin)?;
    let mut card = target::open_piv(target_)?;
    if card.serial() != id.serial {
        return Err(ProvisionError::new(
            Reason::DeviceMismatch,
            Some(Step::PivPin),
            format!(
                "the card in the reader is now serial {}, not {}: the key was swapped mid-enrollment; re-insert key {} and retry",
                card.serial(),
                id.serial,
                id.serial
            ),
        ));
    }
    let puk = flow.step(Step::PivPin, cmd, |_| {
        let s = Step::PivPin;
        if id.pin_is_default {
            card.change_pin(&Pin::factory_default(), pin)
                .map_err(|e| errors::piv(s, e))?;
        } else {
            card.verify_pin(pin).map_err(|e| match e {
                PivError::WrongPin { retries_left } => ProvisionError::new(
                    Reason::PinAlreadySet,
                    Some(s),
                    format!(
                        "the card already has a different PIV PIN ({retries_left} tries left); enter that PIN, or return the key to stock (reset) first"
                    ),
                ),
                e => errors::piv(s, e),
            })?;
        }
        let puk = if id.puk_is_default {
            let new = Puk::generate_numeric(8);
            card.change_puk(&Puk::factory_default(), &new)
                .map_err(|e| errors::piv(s, e))?;
            Some(new)
        } else {
            None
        };
        let detail = json!({"pin": if id.pin_is_default { "changed from the factory PIN" } else { "already set by an earlier attempt; accepted" },
                            "puk": if puk.is_some() { "random, returned to the caller" } else { "already changed by an earlier attempt (unknown)" }});
        Ok((puk, detail))
    })?;
    flow.step(Step::PivManagementKey, cmd, |_| {
        let s = Step::PivManagementKey;
        card.authenticate_with(MgmtSource::Card { pin: Some(pin) })
            .map_err(|e| errors::piv(s, e))?;
        card.rotate_management_key_pin_protected(MgmtAlgorithm::Aes192, pin)
            .map_err(|e| errors::piv(s, e))?;
        Ok((
            (),
            json!({"management_key": "random aes192, stored PIN-protected on the card"}),
        ))
    })?;
    let mut out = PivResult {
        credentials: Vec::new(),
        facts: Vec::new(),
        puk,
        exceptions: Vec::new(),
    };
    let ctx = SlotCtx {
        id,
        vt,
        pin,
        profile,
    };
    for op in ops {
        let sp = spec(op)?;
        one_slot(flow, &mut card, &ctx, &sp, &mut out)?;
    }
    Ok(out)
}

/// What every slot of one enrollment shares.
struct SlotCtx<'a> {
    id: &'a PivIdentity,
    vt: &'a VerifiedTicket,
    pin: &'a Pin,
    profile: &'a Profile,
}

fn one_slot(
    flow: &mut Flow<'_>,
    card: &mut PivCard,
    ctx: &SlotCtx<'_>,
    sp: &Spec,
    out: &mut PivResult,
) -> Result<(), ProvisionError> {
    let SlotCtx {
        id,
        vt,
        pin,
        profile,
    } = *ctx;
    let keygen = match sp.alg {
        a if a.is_rsa() => flow.deadlines.keygen_rsa,
        _ => flow.deadlines.keygen_ec,
    };
    let spki = flow.step(Step::PivKeygen, keygen, |_| {
        let spki = card
            .generate(sp.slot, sp.alg, sp.pin_policy, sp.touch_policy)
            .map_err(|e| errors::piv(Step::PivKeygen, e))?;
        Ok((spki, json!({"slot": sp.slot.to_string(), "algorithm": sp.alg.name(),
                         "pin_policy": sp.pin_policy.name(), "touch_policy": sp.touch_policy.name()})))
    })?;
    let cmd = flow.deadlines.command;
    let (att, facts) = flow.step(Step::PivAttestation, cmd, |fl| {
        let s = Step::PivAttestation;
        let att = card.attest(sp.slot).map_err(|e| errors::piv(s, e))?;
        let at = fl.station.now();
        let facts = attest::verify_piv(
            &att.slot_certificate,
            &att.f9_certificate,
            &fl.station.anchors,
            at,
            Some(&spki),
        )
        .map_err(|e| {
            ProvisionError::new(
                Reason::AttestationInvalid,
                Some(s),
                format!("the PIV attestation of slot {} is invalid: {e}", sp.slot),
            )
            .with_source(e)
        })?;
        if facts.public_key_matches != Some(true) {
            return Err(ProvisionError::new(
                Reason::AttestationInvalid,
                Some(s),
                format!("the attested key of slot {} is not the key just generated", sp.slot),
            ));
        }
        if facts.serial != Some(u64::from(id.serial)) {
            return Err(ProvisionError::new(
                Reason::SerialMismatch,
                Some(s),
                format!(
                    "the PIV attestation names serial {:?}, the card says {}",
                    facts.serial, id.serial
                ),
            ));
        }
        check_attested_policies(&facts, profile)?;
        let verdict = profile.attestation.decide_piv(&facts, at);
        super::enroll::apply_verdict(&verdict, s, &mut out.exceptions)?;
        let detail = json!({"serial": facts.serial, "firmware": facts.firmware,
            "pin_policy": facts.pin_policy, "touch_policy": facts.touch_policy, "chain": facts.chain,
            "attested": facts.provenance.attested, "claimed": facts.provenance.claimed});
        Ok(((att, facts), detail))
    })?;
    let touch = matches!(sp.touch_policy, TouchPolicy::Always | TouchPolicy::Cached);
    let bind_timeout = if touch {
        flow.deadlines.touch
    } else {
        flow.deadlines.command
    };
    let binding_digest = ticket::piv_binding_digest(&vt.digest, sp.slot_byte, id.serial, &spki);
    let signature = flow.step(Step::PivBind, bind_timeout, |fl| {
        let s = Step::PivBind;
        card.verify_pin(pin).map_err(|e| errors::piv(s, e))?;
        if touch {
            fl.touch_needed(s, bind_timeout);
        }
        let sig = card
            .sign_digest(sp.slot, &binding_digest)
            .map_err(|e| errors::piv(s, e))?;
        verify_binding(&spki, &binding_digest, &sig)
            .map_err(|m| ProvisionError::new(Reason::AttestationInvalid, Some(s), m))?;
        Ok((
            sig,
            json!({"binding_digest": hex::encode(binding_digest), "signature_valid": true}),
        ))
    })?;
    let record = cbor::encode(&cbor::text_map(vec![
        ("fmt", Value::Text(RECORD_FORMAT.into())),
        (
            "slotCertificate",
            Value::Bytes(att.slot_certificate.clone()),
        ),
        ("f9Certificate", Value::Bytes(att.f9_certificate.clone())),
        ("bindingDigest", Value::Bytes(binding_digest.to_vec())),
        ("bindingSignature", Value::Bytes(signature)),
    ]));
    out.credentials.push(CredentialRecord {
        kind: "piv".into(),
        credential_id: None,
        rp_id: None,
        slot: Some(sp.slot.to_string()),
        algorithm: sp.alg.name().into(),
        public_key: spki,
        attestation: Some(record),
        attestation_format: Some(RECORD_FORMAT.into()),
    });
    out.facts.push(facts);
    Ok(())
}

/// The profile's PIV PIN/touch policy lists, against what the card attests.
fn check_attested_policies(f: &PivFacts, profile: &Profile) -> Result<(), ProvisionError> {
    let r = &profile.piv;
    let refuse = |m: String| ProvisionError::new(Reason::PolicyPiv, Some(Step::PivAttestation), m);
    if !r.pin_policies.is_empty() && !f.pin_policy.is_some_and(|p| r.pin_policies.contains(&p)) {
        return Err(refuse(format!(
            "the card attests PIN policy {:?}, which the profile does not allow",
            f.pin_policy
        )));
    }
    if !r.touch_policies.is_empty()
        && !f
            .touch_policy
            .is_some_and(|p| r.touch_policies.contains(&p))
    {
        return Err(refuse(format!(
            "the card attests touch policy {:?}, which the profile does not allow",
            f.touch_policy
        )));
    }
    Ok(())
}

/// Check the binding signature with the generated key (prehashed: the
/// card signed the 32-byte digest itself).
pub fn verify_binding(spki_der: &[u8], digest: &[u8; 32], sig: &[u8]) -> Result<(), String> {
    use spki::DecodePublicKey;
    let bad = |e: &dyn std::fmt::Display| format!("the binding signature does not verify: {e}");
    if let Ok(vk) = p256::ecdsa::VerifyingKey::from_public_key_der(spki_der) {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        let s = p256::ecdsa::Signature::from_der(sig).map_err(|e| bad(&e))?;
        return vk.verify_prehash(digest, &s).map_err(|e| bad(&e));
    }
    if let Ok(vk) = p384::ecdsa::VerifyingKey::from_public_key_der(spki_der) {
        use p384::ecdsa::signature::hazmat::PrehashVerifier;
        let s = p384::ecdsa::Signature::from_der(sig).map_err(|e| bad(&e))?;
        return vk.verify_prehash(digest, &s).map_err(|e| bad(&e));
    }
    if let Ok(vk) = ed25519_dalek::VerifyingKey::from_public_key_der(spki_der) {
        // Pure Ed25519 over the 32 digest bytes as the message (RFC 8032).
        let s = ed25519_dalek::Signature::from_slice(sig).map_err(|e| bad(&e))?;
        return vk.verify_strict(digest, &s).map_err(|e| bad(&e));
    }
    if let Ok(k) = rsa::RsaPublicKey::from_public_key_der(spki_der) {
        use rsa::signature::hazmat::PrehashVerifier;
        let s = rsa::pkcs1v15::Signature::try_from(sig).map_err(|e| bad(&e))?;
        return rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(k)
            .verify_prehash(digest, &s)
            .map_err(|e| bad(&e));
    }
    Err("the generated key's type is not one keyward verifies".into())
}

#[cfg(test)]
mod algorithm_tests {
    use super::*;

    fn op(alg: &str) -> PivOp {
        PivOp {
            slot: "9d".into(),
            alg: alg.into(),
            pin_policy: None,
            touch_policy: None,
        }
    }

    /// The ticket binding is a signature: a key that cannot sign must not
    /// be enrolled as if it had proved possession.
    #[test]
    fn x25519_cannot_be_enrolled_because_it_cannot_sign_the_binding() {
        let e = spec(&op("x25519")).err().unwrap();
        assert_eq!(e.reason, Reason::DeviceUnsupported);
        assert!(
            e.to_string().contains("cannot sign the ticket binding"),
            "{e}"
        );
    }

    #[test]
    fn the_5_7_signing_algorithms_are_offered_and_rsa1024_is_not() {
        for a in ["p256", "p384", "rsa2048", "rsa3072", "rsa4096", "ed25519"] {
            assert_eq!(spec(&op(a)).ok().unwrap().alg.name(), a);
        }
        let e = spec(&op("rsa1024")).err().unwrap();
        assert_eq!(e.reason, Reason::DeviceUnsupported);
        assert!(e.to_string().contains("does not generate rsa1024"), "{e}");
    }

    /// Ed25519 bindings verify as pure Ed25519 over the digest; a signature
    /// over anything else (e.g. SHA-512 of it, as the yubikey crate's own
    /// Ed25519 signer would send) is refused.
    #[test]
    fn ed25519_binding_verifies_and_a_prehashed_one_does_not() {
        use ed25519_dalek::Signer;
        use sha2::Digest;
        use spki::EncodePublicKey;
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let spki = sk.verifying_key().to_public_key_der().unwrap();
        let digest = [0x42u8; 32];
        let good = sk.sign(&digest).to_bytes();
        verify_binding(spki.as_bytes(), &digest, &good).unwrap();
        let prehashed = sk.sign(&sha2::Sha512::digest(digest)).to_bytes();
        assert!(verify_binding(spki.as_bytes(), &digest, &prehashed).is_err());
        assert!(verify_binding(spki.as_bytes(), &digest, &good[..63]).is_err());
    }
}

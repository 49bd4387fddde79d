//! `keyward piv`: read, check and provision the PIV application of a
//! YubiKey. See docs/piv.md.
//!
//! Secrets never come from argv: `--pin-fd N` (and `--new-fd`,
//! `--puk-fd`, `--management-key-fd`) read one line each
//! from a descriptor (several may share one, one line per secret, in the
//! order the command reads them); without them keyward prompts without
//! echo on a terminal, or reads lines from stdin.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;
use zeroize::Zeroizing;

use crate::cli::Failure;
use crate::piv::{
    DriftPolicy, DriftReport, FirmwareVersion, ManagementKey, MgmtSource, Pin, PivCard, PivError,
    Puk, TouchPolicy,
};

mod args;
use super::secret_input::{Fd, SecretInput};
pub use args::{AFTER_HELP, CardArgs, KeySpec, NewSecret, PivCommand};

/// Run a `keyward piv` command.
pub fn run(cmd: PivCommand, json: bool) -> Result<()> {
    let mut io = SecretInput::default();
    match cmd {
        PivCommand::Info(c) => info(&c, json),
        PivCommand::Check { card, min_firmware } => check(&card, min_firmware, json),
        PivCommand::ChangePin { card, new } => {
            let mut c = open(&card)?;
            let old = pin(&mut io, &card)?;
            let newv = Pin::new(new_value(&mut io, &new, "new PIN")?);
            crate::piv::pin_bytes(&newv).map_err(fail)?;
            c.change_pin(&old, &newv).map_err(fail)?;
            done(json, "PIN changed", &new, newv.expose_secret())
        }
        PivCommand::ChangePuk { card, puk_fd, new } => {
            let mut c = open(&card)?;
            let old = io.puk(Fd("--puk-fd", puk_fd), "current PUK", false)?;
            crate::piv::puk_bytes(&old).map_err(fail)?;
            let newv = Puk::new(new_value(&mut io, &new, "new PUK")?);
            crate::piv::puk_bytes(&newv).map_err(fail)?;
            c.change_puk(&old, &newv).map_err(fail)?;
            done(json, "PUK changed", &new, newv.expose_secret())
        }
        PivCommand::UnblockPin { card, puk_fd, new } => {
            let mut c = open(&card)?;
            let puk = io.puk(Fd("--puk-fd", puk_fd), "PUK", false)?;
            crate::piv::puk_bytes(&puk).map_err(fail)?;
            let newv = Pin::new(new_value(&mut io, &new, "new PIN")?);
            crate::piv::pin_bytes(&newv).map_err(fail)?;
            c.unblock_pin(&puk, &newv).map_err(fail)?;
            done(json, "PIN unblocked and set", &new, newv.expose_secret())
        }
        PivCommand::SetRetries {
            card,
            pin_retries,
            puk_retries,
        } => {
            let mut c = open(&card)?;
            let p = pin(&mut io, &card)?;
            admin(&mut c, &mut io, &card, Some(&p))?;
            c.verify_pin(&p).map_err(fail)?;
            c.set_pin_retries(pin_retries, puk_retries).map_err(fail)?;
            eprintln!(
                "keyward: PIN and PUK are now the factory 123456 and 12345678: change them now"
            );
            report(
                json,
                json!({"pin_retries": pin_retries, "puk_retries": puk_retries}),
                "retries set",
            )
        }
        PivCommand::RotateManagementKey { card, algorithm } => {
            let mut c = open(&card)?;
            let p = pin(&mut io, &card)?;
            admin(&mut c, &mut io, &card, Some(&p))?;
            c.rotate_management_key_pin_protected(algorithm, &p)
                .map_err(fail)?;
            report(
                json,
                json!({"management_key_algorithm": algorithm, "management_key_storage": "pin-protected"}),
                &format!(
                    "management key rotated to a random {algorithm} key, stored PIN-protected"
                ),
            )
        }
        PivCommand::Provision {
            card,
            key,
            subject,
            out_dir,
            overwrite,
        } => {
            let mut c = open(&card)?;
            if !overwrite && c.slot_state(key.slot).map_err(fail)?.key.is_some() {
                anyhow::bail!(
                    "slot {} already holds a key; pass --overwrite to destroy it and generate a new one",
                    key.slot
                );
            }
            provision(
                &mut c,
                &mut io,
                &card,
                &key,
                &subject,
                out_dir.as_deref(),
                json,
            )
        }
        PivCommand::Csr {
            card,
            slot,
            subject,
            out,
        } => {
            let mut c = open(&card)?;
            let p = pin(&mut io, &card)?;
            c.verify_pin(&p).map_err(fail)?;
            let pem = to_pem("CERTIFICATE REQUEST", &c.csr(slot, &subject).map_err(fail)?)?;
            match out {
                Some(f) => write(&f, &pem),
                None => {
                    print!("{pem}");
                    Ok(())
                }
            }
        }
        PivCommand::Attest {
            card,
            slot,
            out_dir,
        } => {
            let mut c = open(&card)?;
            let att = c.attest(slot).map_err(fail)?;
            write(
                &out_dir.join(format!("{slot}.attestation.pem")),
                &to_pem("CERTIFICATE", &att.slot_certificate)?,
            )?;
            write(
                &out_dir.join("f9.pem"),
                &to_pem("CERTIFICATE", &att.f9_certificate)?,
            )
        }
        PivCommand::ImportCert { card, slot, file } => {
            let mut c = open(&card)?;
            let der = read_cert(&file)?;
            let needs_pin = c.management_key_needs_pin().map_err(fail)?;
            let p = if needs_pin {
                Some(pin(&mut io, &card)?)
            } else {
                None
            };
            admin(&mut c, &mut io, &card, p.as_ref())?;
            c.import_certificate(slot, &der).map_err(fail)?;
            report(
                json,
                json!({"slot": slot}),
                &format!("certificate stored in slot {slot}"),
            )
        }
        PivCommand::WriteIds(card) => {
            let mut c = open(&card)?;
            let needs_pin = c.management_key_needs_pin().map_err(fail)?;
            let p = if needs_pin {
                Some(pin(&mut io, &card)?)
            } else {
                None
            };
            admin(&mut c, &mut io, &card, p.as_ref())?;
            let (chuid, ccc) = c.write_chuid_and_ccc().map_err(fail)?;
            report(
                json,
                json!({"chuid": chuid, "ccc": ccc}),
                "CHUID and CCC written",
            )
        }
        PivCommand::Reset { card, .. } => {
            let mut c = open(&card)?;
            c.danger_reset().map_err(fail)?;
            report(
                json,
                json!({"reset": true}),
                "PIV application reset to factory state",
            )
        }
    }
}

fn info(card: &CardArgs, json: bool) -> Result<()> {
    let s = open(card)?.state().map_err(fail)?;
    if json {
        // The card state keeps `schema_version`: its `version` is the
        // firmware (docs/piv.md, docs/cli.md).
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    let opt = |b: Option<bool>| {
        b.map_or("unknown".to_string(), |b| {
            if b { "yes".into() } else { "no".into() }
        })
    };
    println!("Reader:             {}", s.reader);
    println!("Serial:             {}", s.serial);
    println!("PIV version:        {}", s.version);
    println!(
        "PIN tries left:     {}{}",
        s.pin_retries,
        s.pin_retries_total
            .map(|t| format!("/{t}"))
            .unwrap_or_default()
    );
    println!("PIN is default:     {}", opt(s.pin_is_default));
    println!(
        "PUK tries left:     {}",
        s.puk_retries.map_or("unknown".into(), |r| r.to_string())
    );
    println!("PUK is default:     {}", opt(s.puk_is_default));
    println!(
        "Management key:     {} ({}), default: {}",
        s.management_key_algorithm,
        serde_json::to_value(s.management_key_storage)?
            .as_str()
            .unwrap_or("?"),
        opt(s.management_key_is_default)
    );
    for slot in &s.slots {
        let key = slot.key.as_ref().map_or("empty".to_string(), |k| {
            let policy = |p: Option<String>| p.unwrap_or_else(|| "?".into());
            format!(
                "{} ({}, PIN {}, touch {})",
                k.algorithm,
                k.origin.unwrap_or("?"),
                policy(k.pin_policy.map(|p| p.to_string())),
                policy(k.touch_policy.map(|t| t.to_string())),
            )
        });
        println!(
            "Slot {} {:<24} key: {key}",
            slot.slot,
            format!("({})", slot.purpose)
        );
        if let Some(c) = &slot.certificate {
            println!(
                "    certificate: {} (issuer {}, until {})",
                c.subject, c.issuer, c.not_after
            );
        }
    }
    println!(
        "CHUID:              {}",
        s.chuid
            .as_ref()
            .and_then(|c| c.guid.clone())
            .unwrap_or_else(|| "none".into())
    );
    println!(
        "CCC:                {}",
        s.ccc
            .as_ref()
            .and_then(|c| c.card_identifier.clone())
            .unwrap_or_else(|| "none".into())
    );
    Ok(())
}

fn check(card: &CardArgs, min: FirmwareVersion, json: bool) -> Result<()> {
    let s = open(card)?.state().map_err(fail)?;
    let policy = DriftPolicy {
        minimum_firmware: min,
        ..DriftPolicy::default()
    };
    let r = DriftReport::check(&s, &policy);
    if json {
        super::render::print_json(true, &r)?;
    } else {
        for f in &r.facts {
            println!("drift: {f}");
        }
    }
    if r.is_clean() {
        if !json {
            println!("no drift: card {} is ready to provision", s.serial);
        }
        Ok(())
    } else {
        anyhow::bail!(
            "{} drift finding(s) on card {}; provision the card to fix them",
            r.facts.len(),
            s.serial
        )
    }
}

fn provision(
    c: &mut PivCard,
    io: &mut SecretInput,
    card: &CardArgs,
    key: &KeySpec,
    subject: &str,
    out: Option<&Path>,
    json: bool,
) -> Result<()> {
    // Before any PIN or management key is asked for or sent.
    c.require_firmware_for(key.algorithm).map_err(fail)?;
    let p = pin(io, card)?;
    admin(c, io, card, Some(&p))?;
    let public = c
        .generate(key.slot, key.algorithm, key.pin_policy, key.touch_policy)
        .map_err(fail)?;
    let att = c.attest(key.slot).map_err(fail)?;
    // An X25519 key cannot sign its own request: its attestation
    // certificate is what vouches for it (docs/piv.md).
    let csr = if key.algorithm.can_sign() {
        // The signature below is the first use of the key: the PIN policy
        // applies from here on.
        c.verify_pin(&p).map_err(fail)?;
        if key.touch_policy == TouchPolicy::Always || key.touch_policy == TouchPolicy::Cached {
            eprintln!("keyward: touch the key to sign the CSR");
        }
        Some(c.csr(key.slot, subject).map_err(fail)?)
    } else {
        None
    };
    let slot = key.slot;
    let mut pems = vec![
        (format!("{slot}.pub.pem"), to_pem("PUBLIC KEY", &public)?),
        (
            format!("{slot}.attestation.pem"),
            to_pem("CERTIFICATE", &att.slot_certificate)?,
        ),
        (
            "f9.pem".to_string(),
            to_pem("CERTIFICATE", &att.f9_certificate)?,
        ),
    ];
    if let Some(csr) = &csr {
        pems.push((
            format!("{slot}.csr.pem"),
            to_pem("CERTIFICATE REQUEST", csr)?,
        ));
    }
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, pem) in &pems {
            write(&dir.join(name), pem)?;
        }
    }
    let csr_pem = pems.get(3).map(|p| p.1.clone());
    let doc = json!({
        "version": 1, "ok": true, "serial": c.serial(), "slot": slot, "algorithm": key.algorithm,
        "pin_policy": key.pin_policy, "touch_policy": key.touch_policy,
        "public_key_pem": pems[0].1, "attestation_pem": pems[1].1,
        "f9_certificate_pem": pems[2].1, "csr_pem": csr_pem,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if out.is_none() {
        // The CSR, or for a key that cannot sign, its attestation.
        print!("{}", csr_pem.as_deref().unwrap_or(&pems[1].1));
    } else if csr.is_some() {
        println!(
            "slot {slot}: {} key generated, attestation and CSR written",
            key.algorithm
        );
    } else {
        println!(
            "slot {slot}: {} key generated and attestation written (no CSR: {} keys cannot sign)",
            key.algorithm, key.algorithm
        );
    }
    Ok(())
}

fn open(card: &CardArgs) -> Result<PivCard> {
    PivCard::open(card.device.as_deref()).map_err(fail)
}

fn pin(io: &mut SecretInput, card: &CardArgs) -> Result<Pin> {
    let pin = io.pin(Fd("--pin-fd", card.pin_fd), "PIN", false)?;
    crate::piv::pin_bytes(&pin).map_err(fail)?;
    Ok(pin)
}

/// Authenticate with the management key: `--management-key-fd`, else the
/// factory key, else the PIN-protected copy.
fn admin(c: &mut PivCard, io: &mut SecretInput, card: &CardArgs, pin: Option<&Pin>) -> Result<()> {
    let given = match card.management_key_fd {
        Some(fd) => {
            let alg = c.management_algorithm().map_err(fail)?;
            Some(
                ManagementKey::from_hex(
                    alg,
                    &io.read(Fd("--management-key-fd", Some(fd)), "management key", false)?,
                )
                .map_err(|e| fail(e.into()))?,
            )
        }
        None => None,
    };
    let source = match &given {
        Some(k) => MgmtSource::Given(k),
        None => MgmtSource::Card { pin },
    };
    c.authenticate_with(source).map_err(fail)
}

/// The new PIN or PUK: eight random digits with `--generate`, else read
/// (asked twice at a prompt).
fn new_value(io: &mut SecretInput, new: &NewSecret, what: &str) -> Result<Zeroizing<String>> {
    if new.generate {
        return Ok(Zeroizing::new(
            Pin::generate_numeric(8).expose_secret().to_owned(),
        ));
    }
    io.read(Fd("--new-fd", new.new_fd), what, true)
}

fn done(json: bool, what: &str, new: &NewSecret, value: &str) -> Result<()> {
    // The generated value goes to stdout (the person asked for it), written
    // straight from the secret, never through a `serde_json::Value` copy.
    let generated = new.generate.then_some(value);
    if json {
        #[derive(serde::Serialize)]
        struct Done<'a> {
            version: u32,
            ok: bool,
            result: &'a str,
            generated: Option<&'a str>,
        }
        let mut out = std::io::stdout().lock();
        serde_json::to_writer(
            &mut out,
            &Done {
                version: 1,
                ok: true,
                result: what,
                generated,
            },
        )?;
        writeln!(out)?;
    } else {
        if let Some(g) = generated {
            println!("{g}");
        }
        eprintln!("keyward: {what}");
    }
    Ok(())
}

fn report(json: bool, doc: serde_json::Value, text: &str) -> Result<()> {
    if json {
        println!("{}", super::render::envelope(true, &doc)?);
    } else {
        println!("{text}");
    }
    Ok(())
}

/// Map PIV errors to the documented exit codes, keeping their message.
fn fail(e: PivError) -> anyhow::Error {
    match e {
        PivError::NoCard
        | PivError::NoSuchReader { .. }
        | PivError::NotPiv { .. }
        | PivError::SeveralCards { .. } => Failure::NoDevice(e.to_string()).into(),
        PivError::PinBlocked => Failure::PinBlocked(e.to_string()).into(),
        e => e.into(),
    }
}

fn to_pem(label: &str, der: &[u8]) -> Result<String> {
    Ok(der::pem::encode_string(
        label,
        der::pem::LineEnding::LF,
        der,
    )?)
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn read_cert(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if raw.starts_with(b"-----BEGIN") {
        let (label, der) = der::pem::decode_vec(&raw)
            .with_context(|| format!("{} is not valid PEM", path.display()))?;
        anyhow::ensure!(
            label == "CERTIFICATE",
            "{} holds a {label}, not a CERTIFICATE",
            path.display()
        );
        Ok(der)
    } else {
        Ok(raw)
    }
}

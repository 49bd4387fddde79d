//! `keyward ticket keygen | issue | cosign`: making tickets, for tests and
//! small deployments.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;
use zeroize::Zeroizing;

use super::{AlgArg, CosignArgs, IssueArgs, KeygenArgs, read_input};
use crate::ticket::{
    self, Audience, Claims, Evidence, Fido2Op, Op, PivOp, Replaces, SigningKey, TicketAlg,
    UnblockOp,
};

pub(super) fn keygen(a: KeygenArgs, json: bool) -> Result<()> {
    let alg = match a.alg {
        AlgArg::Eddsa => TicketAlg::EdDsa,
        AlgArg::Es256 => TicketAlg::Es256,
    };
    let (key, pem) = loop {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|e| anyhow!("no randomness from the OS: {e}"))?;
        match SigningKey::generate(alg, &seed) {
            Err(ticket::KeyError::BadSeed) => continue,
            r => break r?,
        }
    };
    let kid = a.kid.unwrap_or_else(|| key.public().thumbprint());
    let jwk = serde_json::to_string_pretty(&key.public().to_jwk(&kid))?;
    let pub_path = PathBuf::from(format!("{}.pub.jwk", a.out.display()));
    write_new(&a.out, pem.as_bytes(), 0o600, a.force)?;
    write_new(&pub_path, format!("{jwk}\n").as_bytes(), 0o644, a.force)?;
    if json {
        let doc = json!({"version": 1, "kid": kid, "alg": alg.name(), "private_key": a.out,
            "public_jwk_file": pub_path, "public_jwk": key.public().to_jwk(&kid)});
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        eprintln!(
            "keyward: wrote private key {} (mode 0600) and public key {pub_path:?}",
            a.out.display()
        );
        println!("{jwk}");
    }
    Ok(())
}

/// Create `path` with `mode`. With `force`, an existing file is removed
/// first: truncating it would keep its old (maybe world-readable) mode.
fn write_new(path: &Path, data: &[u8], mode: u32, force: bool) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if force {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot replace {}", path.display()));
            }
            _ => {}
        }
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| {
            format!(
                "cannot create {} (use --force to overwrite)",
                path.display()
            )
        })?;
    f.write_all(data)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn read_signing_key(path: &Path) -> Result<SigningKey> {
    let pem = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read key {}", path.display()))?,
    );
    SigningKey::from_pkcs8_pem(&pem).with_context(|| format!("key {}", path.display()))
}

pub(super) fn issue(a: IssueArgs) -> Result<()> {
    let key = read_signing_key(&a.key)?;
    let kid = a.kid.clone().unwrap_or_else(|| key.public().thumbprint());
    let now = a.now.unwrap_or_else(jiff::Timestamp::now).as_second();
    let ttl = a.ttl.as_secs();
    if ttl <= 0 {
        bail!("--ttl must be positive");
    }
    let jti = match a.jti {
        Some(j) => j,
        None => {
            let mut r = [0u8; 16];
            getrandom::fill(&mut r).map_err(|e| anyhow!("no randomness from the OS: {e}"))?;
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, r)
        }
    };
    let ops = a
        .ops
        .iter()
        .map(|s| parse_op(s))
        .collect::<Result<Vec<_>>>()?;
    let claims = Claims {
        ver: ticket::VERSION,
        iss: a.iss.clone(),
        sub: a.sub,
        aud: if a.aud.len() == 1 {
            Audience::One(a.aud[0].clone())
        } else {
            Audience::Many(a.aud)
        },
        iat: now,
        nbf: now,
        exp: now + ttl,
        jti,
        ial: a.ial,
        evidence: parse_evidence(a.evidence.as_deref(), &a.iss)?,
        ops,
        replaces: a.replaces.as_deref().map(parse_replaces).transpose()?,
        device: a.device.map(|serial| ticket::Device {
            serial,
            model: None,
        }),
        policy: a.policy,
        approvals: a.approvals,
    };
    let t = if a.approvals > 1 {
        ticket::sign_general(&claims, &[(&key, &kid)])?
    } else {
        ticket::sign_compact(&claims, &key, &kid)?
    };
    output(a.out.as_deref(), &t)
}

fn output(out: Option<&Path>, ticket: &str) -> Result<()> {
    match out {
        Some(p) => std::fs::write(p, format!("{ticket}\n"))
            .with_context(|| format!("writing {}", p.display())),
        None => {
            println!("{ticket}");
            Ok(())
        }
    }
}

/// `k=v,k=v` pairs.
fn pairs(spec: &str) -> Result<Vec<(&str, &str)>> {
    spec.split(',')
        .map(|kv| {
            kv.split_once('=')
                .ok_or_else(|| anyhow!("{kv:?} is not KEY=VALUE"))
        })
        .collect()
}

fn parse_op(spec: &str) -> Result<Op> {
    use base64::Engine;
    if spec == "unblock" {
        return Ok(Op::Unblock(UnblockOp::default()));
    }
    let (kind, rest) = spec
        .split_once(':')
        .ok_or_else(|| anyhow!("--op {spec:?}: expected fido2:..., piv:... or unblock"))?;
    let kv = pairs(rest).with_context(|| format!("--op {spec:?}"))?;
    let get = |k: &str| {
        kv.iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.to_string())
    };
    let known: &[&str] = match kind {
        "fido2" => &["rp_id", "user", "user_b64", "name"],
        "piv" => &["slot", "alg", "pin_policy", "touch_policy"],
        "unblock" => &["rotate_puk"],
        _ => bail!("--op {spec:?}: unknown operation {kind:?} (fido2, piv or unblock)"),
    };
    if let Some((k, _)) = kv.iter().find(|(k, _)| !known.contains(k)) {
        bail!(
            "--op {spec:?}: unknown field {k:?} (expected {})",
            known.join(", ")
        );
    }
    let need = |k: &str| get(k).ok_or_else(|| anyhow!("--op {spec:?}: {k}= is required"));
    Ok(match kind {
        "fido2" => Op::Fido2(Fido2Op {
            rp_id: need("rp_id")?,
            user: get("user_b64").or_else(|| {
                get("user").map(|u| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(u))
            }),
            user_name: get("name"),
        }),
        "unblock" => Op::Unblock(UnblockOp {
            rotate_puk: match get("rotate_puk").as_deref() {
                None | Some("false") => false,
                Some("true") => true,
                Some(v) => bail!("--op {spec:?}: rotate_puk must be true or false, not {v:?}"),
            },
        }),
        _ => Op::Piv(PivOp {
            slot: need("slot")?.to_ascii_lowercase(),
            alg: need("alg")?,
            pin_policy: get("pin_policy"),
            touch_policy: get("touch_policy"),
        }),
    })
}

fn parse_replaces(spec: &str) -> Result<Replaces> {
    let mut r = Replaces {
        serial: None,
        binding: None,
        reason: String::new(),
    };
    for (k, v) in pairs(spec).context("--replaces")? {
        match k {
            "serial" => {
                r.serial = Some(
                    v.parse()
                        .with_context(|| format!("--replaces serial {v:?}"))?,
                )
            }
            "binding" => r.binding = Some(v.to_owned()),
            "reason" => r.reason = v.to_owned(),
            _ => bail!("--replaces: unknown field {k:?} (serial, binding, reason)"),
        }
    }
    Ok(r)
}

fn parse_evidence(spec: Option<&str>, iss: &str) -> Result<Evidence> {
    let mut e = Evidence {
        method: "unspecified".into(),
        verifier: iss.into(),
        time: None,
        reference: None,
    };
    for (k, v) in spec
        .map(pairs)
        .transpose()
        .context("--evidence")?
        .unwrap_or_default()
    {
        match k {
            "method" => e.method = v.to_owned(),
            "verifier" => e.verifier = v.to_owned(),
            "reference" => e.reference = Some(v.to_owned()),
            _ => bail!("--evidence: unknown field {k:?} (method, verifier, reference)"),
        }
    }
    Ok(e)
}

pub(super) fn cosign(a: CosignArgs) -> Result<()> {
    let key = read_signing_key(&a.key)?;
    let kid = a.kid.unwrap_or_else(|| key.public().thumbprint());
    let t = ticket::cosign(&read_input(&a.file)?, &key, &kid)?;
    output(a.out.as_deref(), &t)
}

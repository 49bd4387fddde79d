//! Enrollment latency: `cargo bench --bench enroll`.
//!
//! Runs complete FIDO2 enrollments (ticket verification, getInfo, setPIN,
//! enterprise attestation, makeCredential, attestation verification and
//! policy, getAssertion, one ledger commit with fsync) against in-process
//! simulated keys, one after another, through a station built from a real
//! keyward.toml, and prints
//! `enroll_fido2_inprocess n=... median_ms=... p90_ms=... max_ms=...` and the
//! median time of each step. This is keyward's own share of an enrollment:
//! a person's touch and PIN entry come on top.

use std::time::Instant;

use keyward::config::Config;
use keyward::ctap::Pin;
use keyward::provision::{self, Cancel, EnrollRequest, KeyTarget, NoEvents, PinChoice};
use keyward::sim::DeviceProfile;
use keyward::sim::ca::SimCa;
use keyward::sim::device::{SimDevice, SimOptions};
use keyward::ticket::{self, Audience, Claims, Evidence, Fido2Op, Op, SigningKey, TicketAlg};
use zeroize::Zeroizing;

const N: usize = 40;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = SigningKey::generate(TicketAlg::EdDsa, &Zeroizing::new([5; 32])).unwrap();
    std::fs::write(
        dir.path().join("issuer.jwk"),
        serde_json::to_string(&key.public().to_jwk("bench-1")).unwrap(),
    )
    .unwrap();
    let cfg = r#"
station = "bench"
[[ticket.issuers]]
iss = "https://idp.bench"
allowed_ops = ["fido2"]
keys = [{ path = "issuer.jwk", kid = "bench-1" }]
[attestation]
danger_trust_simulator = true
[policy.profiles.standard]
"#;
    let path = dir.path().join("keyward.toml");
    std::fs::write(&path, cfg).unwrap();
    let station = Config::load(&path)
        .unwrap()
        .station(&dir.path().join("ledger.db"))
        .unwrap();
    let ca = std::sync::Arc::new(SimCa::from_seed(SimCa::DEFAULT_SEED).unwrap());
    let mut total = Vec::with_capacity(N);
    let mut per_step: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for i in 0..N {
        let now = jiff::Timestamp::now().as_second();
        let claims = Claims {
            ver: ticket::VERSION,
            iss: "https://idp.bench".into(),
            sub: format!("user-{i}@bench"),
            aud: Audience::One("bench".into()),
            iat: now,
            nbf: now,
            exp: now + 600,
            jti: format!("bench-{i}-{now}"),
            ial: 2,
            evidence: Evidence {
                method: "bench".into(),
                verifier: "bench".into(),
                time: None,
                reference: None,
            },
            ops: vec![Op::Fido2(Fido2Op {
                rp_id: "bench.example".into(),
                user: None,
                user_name: None,
            })],
            replaces: None,
            device: None,
            policy: "standard".into(),
            approvals: 1,
        };
        let t = ticket::sign_compact(&claims, &key, "bench-1").unwrap();
        let dev = SimDevice::new(&SimOptions::new(
            DeviceProfile {
                serial: 50_000_000 + i as u32,
                ..DeviceProfile::default()
            },
            ca.clone(),
        ));
        let req = EnrollRequest::new(
            t.into_bytes(),
            KeyTarget::device(dev),
            PinChoice::Given(Pin::from("58213947")),
        );
        let start = Instant::now();
        let o = provision::enroll(&station, req, &NoEvents, &Cancel::new()).unwrap();
        total.push(start.elapsed().as_secs_f64() * 1000.0);
        for s in o.steps {
            per_step
                .entry(s.step.to_string())
                .or_default()
                .push(s.elapsed_ms);
        }
    }
    total.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| total[((total.len() - 1) as f64 * p).round() as usize];
    println!(
        "enroll_fido2_inprocess n={N} median_ms={:.1} p90_ms={:.1} max_ms={:.1}",
        q(0.5),
        q(0.9),
        total[total.len() - 1]
    );
    for (step, mut v) in per_step {
        v.sort_unstable();
        println!("  step {step} median_ms={}", v[v.len() / 2]);
    }
}

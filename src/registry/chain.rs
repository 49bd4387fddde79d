//! The registry's checks on a push, free of any database: does the pushed
//! audit segment extend the station's chain as the registry holds it, does
//! the signed head verify and agree with it, and what each event does to the
//! fleet's bindings. Both backends fetch the hashes [`needed`] names inside
//! their transaction, call [`check`], and write what it returns.

use std::collections::HashMap;

use serde_json::Value;

use crate::store::audit::row_hash;
use crate::sync::head::{self, verify_head};
use crate::sync::wire::{Event, Push};

/// A station's chain as the registry holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: [u8; 32],
}

impl ChainHead {
    pub const EMPTY: ChainHead = ChainHead {
        seq: 0,
        hash: [0; 32],
    };
}

/// Why the audit part of a push is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainRefusal {
    /// The rows start after what the registry has: the station must resend
    /// from the registry's head.
    #[error(
        "the audit rows start after row {after}, but the registry holds this station's chain only up to row {registry}; resend from there"
    )]
    Gap {
        registry: i64,
        registry_hash: [u8; 32],
        after: i64,
    },
    /// A row's hash is not the hash of its content after the previous row.
    #[error("audit row {seq} does not match its hash chain")]
    Invalid { seq: i64 },
    /// A row or the head differs from what the station pushed before.
    #[error(
        "audit row {seq} differs from the copy the registry acknowledged: the station's ledger was rewritten (fork)"
    )]
    Fork { seq: i64 },
    /// The station's head is behind what it pushed before.
    #[error(
        "the station's signed head is at row {station}, behind row {registry} the registry acknowledged: the ledger was cut back or restored from an old copy"
    )]
    Cut { registry: i64, station: i64 },
    #[error("the signed audit head {0}")]
    BadHead(&'static str),
}

impl ChainRefusal {
    /// Stable code for the refusal document.
    pub fn code(&self) -> &'static str {
        match self {
            ChainRefusal::Gap { .. } => "audit-gap",
            ChainRefusal::Invalid { .. } => "audit-invalid",
            ChainRefusal::Fork { .. } => "audit-fork",
            ChainRefusal::Cut { .. } => "audit-cut",
            ChainRefusal::BadHead(_) => "bad-head",
        }
    }

    /// Recorded as an incident (not just refused).
    pub fn is_incident(&self) -> bool {
        matches!(self, ChainRefusal::Fork { .. } | ChainRefusal::Cut { .. })
    }
}

/// What a push adds to the station's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// Index of the first row in `push.audit.rows` the registry does not
    /// hold yet (rows before it matched stored copies).
    pub first_new: usize,
    /// The chain's new head.
    pub head: ChainHead,
}

/// Sequence numbers whose stored hash [`check`] needs.
pub fn needed(push: &Push, registry_seq: i64) -> Vec<i64> {
    let mut v = Vec::new();
    let after = push.audit.after;
    if after > 0 && after <= registry_seq {
        v.push(after);
    }
    v.extend(
        push.audit
            .rows
            .iter()
            .map(|r| r.seq)
            .filter(|&s| s <= registry_seq),
    );
    if let Some(h) = &push.head
        && h.seq > 0
        && h.seq <= registry_seq
    {
        v.push(h.seq);
    }
    v
}

/// Check a push's audit segment and head against the registry's copy.
/// `known` holds the stored hashes [`needed`] named.
pub fn check(
    public: &[u8; 32],
    registry: ChainHead,
    known: &HashMap<i64, [u8; 32]>,
    push: &Push,
) -> Result<Extension, ChainRefusal> {
    let after = push.audit.after;
    if after > registry.seq {
        return Err(ChainRefusal::Gap {
            registry: registry.seq,
            registry_hash: registry.hash,
            after,
        });
    }
    let stored = |seq: i64| -> Option<[u8; 32]> {
        if seq == 0 {
            Some([0; 32])
        } else if seq == registry.seq {
            Some(registry.hash)
        } else {
            known.get(&seq).copied()
        }
    };
    let mut prev = stored(after).ok_or(ChainRefusal::Gap {
        registry: registry.seq,
        registry_hash: registry.hash,
        after,
    })?;
    let mut hashes = Vec::with_capacity(push.audit.rows.len());
    let mut first_new = push.audit.rows.len();
    for (i, w) in push.audit.rows.iter().enumerate() {
        let h = row_hash(&prev, &w.to_row());
        if hex::encode(h) != w.hash.to_ascii_lowercase() {
            return Err(ChainRefusal::Invalid { seq: w.seq });
        }
        if w.seq <= registry.seq {
            if stored(w.seq) != Some(h) {
                return Err(ChainRefusal::Fork { seq: w.seq });
            }
        } else if first_new == push.audit.rows.len() {
            first_new = i;
        }
        hashes.push(h);
        prev = h;
    }
    let tip = match push.audit.rows.last() {
        Some(last) if last.seq > registry.seq => ChainHead {
            seq: last.seq,
            hash: prev,
        },
        _ => registry,
    };
    let Some(wire_head) = &push.head else {
        if tip.seq > 0 {
            return Err(if registry.seq > 0 {
                ChainRefusal::Cut {
                    registry: registry.seq,
                    station: 0,
                }
            } else {
                ChainRefusal::BadHead("is missing from a push with audit rows")
            });
        }
        return Ok(Extension {
            first_new,
            head: tip,
        });
    };
    let signed = head::from_wire(wire_head).ok_or(ChainRefusal::BadHead("does not decode"))?;
    if !verify_head(public, &signed) {
        return Err(ChainRefusal::BadHead(
            "does not verify with the station's key",
        ));
    }
    if signed.seq < registry.seq {
        return Err(ChainRefusal::Cut {
            registry: registry.seq,
            station: signed.seq,
        });
    }
    if signed.seq <= tip.seq {
        let expected = if signed.seq > registry.seq {
            hashes[(signed.seq - after - 1) as usize]
        } else {
            registry.hash
        };
        if expected != signed.hash {
            return Err(ChainRefusal::Fork { seq: signed.seq });
        }
    }
    Ok(Extension {
        first_new,
        head: tip,
    })
}

/// What an event does to the fleet's bindings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingChange {
    Created {
        binding: String,
        subject: String,
        serial: Option<String>,
        replaces: Option<String>,
        /// Why the replaced binding was replaced (lost, stolen, damaged).
        replace_reason: Option<String>,
        ial: Option<i64>,
        policy: Option<String>,
        /// The ticket's (iss, jti), for fleet-wide single use.
        ticket: Option<(String, String)>,
    },
    State {
        binding: String,
        state: String,
        reason: Option<String>,
        replaced_by: Option<String>,
    },
    None,
}

/// Derive the binding change an event records.
pub fn binding_change(e: &Event) -> BindingChange {
    let p = &e.payload;
    let s = |v: &Value| v.as_str().map(str::to_string);
    let Some(binding) = p.get("binding").and_then(s) else {
        return BindingChange::None;
    };
    let state = |state: String| BindingChange::State {
        binding: binding.clone(),
        state,
        reason: p.pointer("/change/reason").and_then(s),
        replaced_by: p.pointer("/change/replaced_by").and_then(s),
    };
    match e.kind.as_str() {
        "binding.created" => BindingChange::Created {
            subject: p.get("subject").and_then(s).unwrap_or_default(),
            serial: p.pointer("/device/serial").and_then(s),
            replaces: p.get("replaces").and_then(s),
            replace_reason: p.get("replace_reason").and_then(s),
            ial: p.pointer("/ticket/ial").and_then(Value::as_i64),
            policy: p.get("policy").and_then(s),
            ticket: p
                .pointer("/ticket/issuer")
                .and_then(s)
                .zip(p.pointer("/ticket/jti").and_then(s)),
            binding,
        },
        "binding.state_changed" => match p.pointer("/change/to").and_then(s) {
            Some(to) => state(to),
            None => BindingChange::None,
        },
        "binding.revoked" => state("revoked".into()),
        "binding.returned" => state("returned".into()),
        _ => BindingChange::None,
    }
}

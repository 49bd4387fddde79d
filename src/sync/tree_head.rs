//! The station's check of the registry's verifiable log (docs/sync.md,
//! "Verifiable log"): before an ack marks anything delivered, its signed
//! tree head must verify with the pinned registry key (`[sync]
//! registry_key`; without one the head is kept but marked unverified), each
//! pushed event must be proven a leaf of that tree (its digest computed from
//! what the station sent, not from anything the registry says), and the
//! tree must extend the head the station kept from its last sync. The new
//! head is then kept (ledger meta `sync.tree_head`) in the transaction that
//! marks the events delivered.
//!
//! Refused: a head signed by another key or unsigned while a key is pinned,
//! an event without a proof or with one that does not lead to the root, a
//! log smaller than the kept head or not consistent with it (the registry
//! rewrote its log). Paths are bounded and hex-checked by
//! [`super::wire::parse_ack`] and again by [`log::parse_path`].

use serde::{Deserialize, Serialize};

use super::wire::{LogSection, Push};
use crate::registry::log::{self, TreeHead};

/// The tree head a station keeps after a verified ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeptHead {
    pub size: u64,
    /// 32 bytes, hex.
    pub root: String,
    pub at: i64,
    /// 64 bytes hex, or empty (an unsigned registry).
    pub signature: String,
    /// Whether the signature was checked with `[sync] registry_key`.
    pub verified: bool,
}

impl KeptHead {
    fn root(&self) -> Option<log::Hash> {
        let mut r = [0u8; 32];
        hex::decode_to_slice(&self.root, &mut r).ok()?;
        Some(r)
    }
}

/// Why an ack's log section is refused (the events stay queued).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogCheckError {
    #[error(
        "the registry's ack carries no verifiable log, but [sync] registry_key is set: the events stay queued; run the registry with `registry serve --key` (this keyward or newer)"
    )]
    Missing,
    #[error(
        "the registry's tree head (size {size}) is not signed, but [sync] registry_key is set: the events stay queued; start the registry with `--key` (the key whose public half is registry_key)"
    )]
    Unsigned { size: u64 },
    #[error(
        "the registry's tree head (size {size}) is not signed by [sync] registry_key (key {pinned}): the events stay queued; check registry_key against the registry's --key, and report it if they match"
    )]
    BadSignature { size: u64, pinned: String },
    #[error(
        "the registry's log does not prove event {event_id} is in it ({reason}): the events stay queued; report it to the registry's operators"
    )]
    NotIncluded { event_id: String, reason: String },
    #[error(
        "the registry's log is not consistent with the tree head it signed before (size {size}): the registry rewrote its log; stop syncing and report it"
    )]
    Inconsistent { size: u64 },
    #[error("the tree head kept in the ledger (meta sync.tree_head) is unreadable: {0}")]
    Kept(String),
}

/// Check an ack's log section against what this station pushed and the
/// head it kept; the head to keep next. `None` when the ack has no log and
/// no key is pinned (a registry from before the log): nothing to keep.
pub fn check(
    push: &Push,
    section: Option<&LogSection>,
    kept: Option<&KeptHead>,
    pinned: Option<&[u8; 32]>,
) -> Result<Option<KeptHead>, LogCheckError> {
    let Some(s) = section else {
        return match pinned {
            Some(_) => Err(LogCheckError::Missing),
            None => Ok(None),
        };
    };
    let bad_head = |reason: &str| LogCheckError::NotIncluded {
        event_id: "-".into(),
        reason: reason.into(),
    };
    let mut root = [0u8; 32];
    hex::decode_to_slice(&s.root, &mut root).map_err(|_| bad_head("its root is not hex"))?;
    let head = TreeHead {
        size: s.size,
        root,
        at: s.at,
    };
    if let Some(key) = pinned {
        if s.signature.is_empty() {
            return Err(LogCheckError::Unsigned { size: s.size });
        }
        let sig = hex::decode(&s.signature).unwrap_or_default();
        if !log::verify_head(key, &head, &sig) {
            return Err(LogCheckError::BadSignature {
                size: s.size,
                pinned: crate::store::station_key::key_id(key),
            });
        }
    }
    if let Some(k) = kept {
        consistent(s, &root, k)?;
    }
    // Events the log held before (a resend) carry an inclusion proof each;
    // the rest, in the push's order, must be the leaves the append proof
    // names. Either way the digest is computed here from what was sent.
    let proofs: std::collections::HashMap<&str, &super::wire::Inclusion> = s
        .inclusion
        .iter()
        .map(|i| (i.event_id.as_str(), i))
        .collect();
    let mut appended = Vec::new();
    let mut first_appended = None;
    for e in &push.events {
        let not_in = |reason: String| LogCheckError::NotIncluded {
            event_id: e.event_id.clone(),
            reason,
        };
        let digest = crate::registry::digest_of(&push.station, e);
        match proofs.get(e.event_id.as_str()) {
            Some(p) => {
                let path = log::parse_path(&p.path).map_err(|x| not_in(x.to_string()))?;
                log::verify_inclusion(s.size, &root, &digest, p.index, &path)
                    .map_err(|x| not_in(format!("leaf {}: {x}", p.index)))?;
            }
            None => {
                first_appended.get_or_insert(e.event_id.as_str());
                appended.push(digest);
            }
        }
    }
    if let Some(event_id) = first_appended {
        let not_in = |reason: String| LogCheckError::NotIncluded {
            event_id: event_id.to_string(),
            reason,
        };
        let a = s
            .appended
            .as_ref()
            .ok_or_else(|| not_in("the ack has no proof for it".into()))?;
        let frontier = log::parse_path(&a.frontier).map_err(|x| not_in(x.to_string()))?;
        log::verify_append(a.first, frontier, &appended, s.size, &root).map_err(|x| {
            not_in(format!(
                "the {} new events as leaves {}..{}: {x}",
                appended.len(),
                a.first,
                s.size
            ))
        })?;
    }
    Ok(Some(KeptHead {
        size: s.size,
        root: s.root.to_ascii_lowercase(),
        at: s.at,
        signature: s.signature.to_ascii_lowercase(),
        verified: pinned.is_some(),
    }))
}

/// The new tree must extend the kept one: a consistency proof from its size.
fn consistent(s: &LogSection, root: &log::Hash, k: &KeptHead) -> Result<(), LogCheckError> {
    let inconsistent = LogCheckError::Inconsistent { size: k.size };
    let old = k
        .root()
        .ok_or_else(|| LogCheckError::Kept(format!("root {:?}", k.root)))?;
    if k.size == 0 {
        return Ok(());
    }
    let c = match &s.consistency {
        Some(c) if c.from == k.size => c,
        _ if s.size == k.size && *root == old => return Ok(()),
        _ => return Err(inconsistent),
    };
    let path = log::parse_path(&c.path).map_err(|_| inconsistent.clone())?;
    log::verify_consistency(k.size, &old, s.size, root, &path).map_err(|_| inconsistent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::log::{LogTree, sign_head};
    use crate::store::StationKey;
    use crate::sync::wire::{Appended, AuditSegment, Consistency, Event, Inclusion};

    fn event(i: u8) -> Event {
        Event {
            event_id: format!("{i:02x}").repeat(16),
            seq: i64::from(i),
            kind: "binding.created".into(),
            payload: serde_json::json!({"binding": format!("b{i}")}),
            created_at: 1_800_000_000,
        }
    }

    fn push(events: Vec<Event>) -> Push {
        Push {
            v: 1,
            station: "kiosk-1".into(),
            events,
            head: None,
            audit: AuditSegment {
                after: 0,
                rows: vec![],
            },
            log_size: None,
        }
    }

    /// The ack section a registry whose log is `tree` sends for a push
    /// whose new events are its leaves from `first` on.
    fn section(tree: &LogTree, first: u64, from: Option<u64>, key: &StationKey) -> LogSection {
        let head = TreeHead {
            size: tree.size(),
            root: tree.root(),
            at: 1_800_000_100,
        };
        let hexes = |v: Vec<log::Hash>| v.iter().map(hex::encode).collect();
        let mut before = LogTree::new();
        for i in 0..first {
            before.push(*tree.leaf(i).unwrap());
        }
        LogSection {
            size: head.size,
            root: hex::encode(head.root),
            at: head.at,
            signature: hex::encode(sign_head(key, &head)),
            inclusion: Vec::new(),
            appended: Some(Appended {
                first,
                frontier: hexes(before.frontier().nodes().to_vec()),
            }),
            consistency: from.map(|f| Consistency {
                from: f,
                path: hexes(tree.consistency(f).unwrap()),
            }),
        }
    }

    fn grown_by(tree: &LogTree, events: &[&Event]) -> LogTree {
        let mut t = LogTree::new();
        for i in 0..tree.size() {
            t.push(*tree.leaf(i).unwrap());
        }
        for e in events {
            t.push(crate::registry::digest_of("kiosk-1", e));
        }
        t
    }

    /// The section for a resend: every event held before, one inclusion
    /// proof each.
    fn held(tree: &LogTree, p: &Push, first: u64, key: &StationKey) -> LogSection {
        let hexes = |v: Vec<log::Hash>| v.iter().map(hex::encode).collect();
        LogSection {
            inclusion: p
                .events
                .iter()
                .enumerate()
                .map(|(i, e)| Inclusion {
                    event_id: e.event_id.clone(),
                    index: first + i as u64,
                    path: hexes(tree.inclusion(first + i as u64).unwrap()),
                })
                .collect(),
            appended: None,
            ..section(tree, first, None, key)
        }
    }

    #[test]
    fn honest_acks_verify_and_every_forgery_is_refused() {
        let key = StationKey::generate();
        let pk = key.public_key();
        let mut tree = LogTree::new();
        tree.push([7; 32]);
        let p1 = push(vec![event(1), event(2)]);
        for e in &p1.events {
            tree.push(crate::registry::digest_of("kiosk-1", e));
        }
        let s1 = section(&tree, 1, None, &key);
        let kept = check(&p1, Some(&s1), None, Some(&pk)).unwrap().unwrap();
        assert!(kept.verified);
        assert_eq!(kept.size, 3);

        // A second push, consistent with the kept head.
        let mut p2 = push(vec![event(3)]);
        p2.log_size = Some(3);
        let mut grown = LogTree::new();
        for i in 0..3 {
            grown.push(*tree.leaf(i).unwrap());
        }
        grown.push([8; 32]);
        grown.push(crate::registry::digest_of("kiosk-1", &p2.events[0]));
        let s2 = section(&grown, 4, Some(3), &key);
        assert_eq!(
            check(&p2, Some(&s2), Some(&kept), Some(&pk))
                .unwrap()
                .unwrap()
                .size,
            5
        );
        // Without a pin: accepted, kept as unverified.
        assert!(
            !check(&p2, Some(&s2), Some(&kept), None)
                .unwrap()
                .unwrap()
                .verified
        );

        // Signed by another key; unsigned while pinned.
        let other = StationKey::generate();
        let forged = section(&grown, 4, Some(3), &other);
        assert!(matches!(
            check(&p2, Some(&forged), Some(&kept), Some(&pk)),
            Err(LogCheckError::BadSignature { size: 5, .. })
        ));
        let mut unsigned = s2.clone();
        unsigned.signature.clear();
        assert_eq!(
            check(&p2, Some(&unsigned), Some(&kept), Some(&pk)),
            Err(LogCheckError::Unsigned { size: 5 })
        );
        assert_eq!(
            check(&p2, None, Some(&kept), Some(&pk)),
            Err(LogCheckError::Missing)
        );

        // The proof of another leaf, a truncated frontier, no proof at all.
        let other_leaf = section(&grown, 3, None, &key);
        let not_in = |s: &LogSection, p: &Push| {
            matches!(
                check(p, Some(s), Some(&kept), Some(&pk)),
                Err(LogCheckError::NotIncluded { .. })
            )
        };
        assert!(not_in(
            &LogSection {
                consistency: s2.consistency.clone(),
                ..other_leaf
            },
            &p2
        ));
        let mut short = s2.clone();
        short.appended.as_mut().unwrap().frontier.pop();
        assert!(not_in(&short, &p2));
        let mut none = s2.clone();
        none.appended = None;
        assert!(not_in(&none, &p2));
        // Two new events stored in the other order: the signed tree does not
        // hold them where the push put them.
        let p3 = push(vec![event(4), event(5)]);
        let mut swapped = grown_by(&grown, &[&p3.events[1], &p3.events[0]]);
        let s3 = section(&swapped, 5, Some(5), &key);
        let kept5 = check(&p2, Some(&s2), Some(&kept), Some(&pk))
            .unwrap()
            .unwrap();
        assert!(matches!(
            check(&p3, Some(&s3), Some(&kept5), Some(&pk)),
            Err(LogCheckError::NotIncluded { .. })
        ));
        // One of them left out of the log, another leaf in its place.
        swapped = grown_by(&grown, &[&p3.events[0]]);
        swapped.push([9; 32]);
        let s4 = section(&swapped, 5, Some(5), &key);
        assert!(check(&p3, Some(&s4), Some(&kept5), Some(&pk)).is_err());
        // A resend of events the log held: one inclusion proof each.
        let resent = held(&tree, &p1, 1, &key);
        assert!(check(&p1, Some(&resent), None, Some(&pk)).is_ok());
        let mut bent = resent.clone();
        bent.inclusion[1].path[0] = hex::encode([3u8; 32]);
        assert!(check(&p1, Some(&bent), None, Some(&pk)).is_err());

        // A rewritten log: leaf 1 (event 1) removed, the rest appended again;
        // signed with the right key, its proofs honest for the new tree.
        let mut rewritten = LogTree::new();
        rewritten.push([7; 32]);
        rewritten.push(*tree.leaf(2).unwrap());
        rewritten.push([8; 32]);
        rewritten.push([9; 32]);
        rewritten.push(crate::registry::digest_of("kiosk-1", &p2.events[0]));
        let r = section(&rewritten, 4, Some(3), &key);
        assert_eq!(
            check(&p2, Some(&r), Some(&kept), Some(&pk)),
            Err(LogCheckError::Inconsistent { size: 3 })
        );
        assert!(
            LogCheckError::Inconsistent { size: 3 }
                .to_string()
                .contains("not consistent with the tree head it signed before (size 3)")
        );
        // No consistency proof, or one from elsewhere; a smaller tree.
        let mut missing = s2.clone();
        missing.consistency = None;
        assert!(check(&p2, Some(&missing), Some(&kept), Some(&pk)).is_err());
        let bigger = KeptHead {
            size: 9,
            ..kept.clone()
        };
        assert!(matches!(
            check(&p2, Some(&s2), Some(&bigger), Some(&pk)),
            Err(LogCheckError::Inconsistent { size: 9 })
        ));
    }
}

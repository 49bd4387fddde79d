//! The sync wire format, version 1 (docs/sync.md): one JSON document per
//! push, one per answer. Parsing is strict (unknown fields refused) and
//! callers size-limit the bytes before [`parse_push`] sees them.

use serde::{Deserialize, Serialize};

use crate::store::AuditRow;

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;
/// Where a station pushes.
pub const PUSH_PATH: &str = "/v1/push";
/// Largest request body the registry reads (before parsing).
pub const MAX_BODY: usize = 8 << 20;
/// Most events in one push.
pub const MAX_EVENTS: usize = 1000;
/// Most audit rows in one push.
pub const MAX_AUDIT_ROWS: usize = 2000;

/// One push: a batch of outbox events, the station's signed audit head and
/// the audit rows after the last head the registry acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Push {
    pub v: u32,
    pub station: String,
    pub events: Vec<Event>,
    /// `None` only while the station's audit log is empty.
    pub head: Option<Head>,
    pub audit: AuditSegment,
    /// The size of the registry's log in the last tree head this station
    /// verified and kept, so the ack can prove the log grew from it
    /// (absent at first and from stations before the log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_size: Option<u64>,
}

/// One outbox event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Stable, random 128-bit id (hex): the deduplication key.
    pub event_id: String,
    /// The station's outbox sequence number.
    pub seq: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    pub created_at: i64,
}

/// The station's signed audit head: Ed25519 over
/// `"keyward-audit-head-v1" ‖ seq (8 bytes BE) ‖ hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    pub seq: i64,
    /// 32 bytes, hex.
    pub hash: String,
    pub key_id: String,
    /// 64 bytes, hex.
    pub signature: String,
    pub at: i64,
}

/// Audit rows `after + 1 ..`, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSegment {
    /// The sequence number the rows follow (the registry's acknowledged head).
    pub after: i64,
    pub rows: Vec<WireAuditRow>,
}

/// An audit row as the station stores it; `hash` is hex.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireAuditRow {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    pub detail: serde_json::Value,
    pub hash: String,
}

impl From<&AuditRow> for WireAuditRow {
    fn from(r: &AuditRow) -> Self {
        WireAuditRow {
            seq: r.seq,
            at: r.at,
            actor: r.actor.clone(),
            action: r.action.clone(),
            entity: r.entity.clone(),
            entity_id: r.entity_id.clone(),
            detail: r.detail.clone(),
            hash: hex::encode(&r.hash),
        }
    }
}

impl WireAuditRow {
    /// The store's row type (for the shared chain hash).
    pub fn to_row(&self) -> AuditRow {
        AuditRow {
            seq: self.seq,
            at: self.at,
            actor: self.actor.clone(),
            action: self.action.clone(),
            entity: self.entity.clone(),
            entity_id: self.entity_id.clone(),
            detail: self.detail.clone(),
            hash: hex::decode(&self.hash).unwrap_or_default(),
        }
    }
}

/// The registry's record of a station's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryHead {
    pub seq: i64,
    /// hex; 64 zeros for an empty chain.
    pub hash: String,
}

/// 200: the events acknowledged (stored now or before) and the head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    pub v: u32,
    pub acked: Vec<String>,
    pub stored: u64,
    pub duplicates: u64,
    pub head: RegistryHead,
    /// The registry's verifiable log after the push: its signed tree head,
    /// where each acked event sits in it, and that it grew from the
    /// station's last head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogSection>,
}

/// The log part of an ack (docs/sync.md, "Verifiable log").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// The signed tree head: size, root (32 bytes hex), when signed, and the
    /// registry key's Ed25519 signature (64 bytes hex; empty when the
    /// registry runs without a key).
    pub size: u64,
    pub root: String,
    pub at: i64,
    pub signature: String,
    /// One per pushed event the log held before this push (a resend after
    /// a lost ack), in the push's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inclusion: Vec<Inclusion>,
    /// The push's new events, in its order, are the last leaves of the
    /// tree: one append proof for all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appended: Option<Appended>,
    /// From the push's `log_size` to `size`; absent when the push gave none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<Consistency>,
}

/// Where an event sits in the log, and the path to the root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inclusion {
    pub event_id: String,
    pub index: u64,
    pub path: Vec<String>,
}

/// The push's new events are leaves `first .. size` of the tree; `frontier`
/// is the tree of `first` leaves as a compact range (one 32-byte hex root
/// per bit set in `first`, largest subtree first; see
/// [`crate::registry::log::verify_append`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Appended {
    pub first: u64,
    pub frontier: Vec<String>,
}

/// The consistency proof from tree size `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consistency {
    pub from: u64,
    pub path: Vec<String>,
}

/// Any other answer: a stable code, a message, and the registry's head when
/// it helps the station resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refusal {
    pub v: u32,
    pub error: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<RegistryHead>,
}

/// Why a push could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    #[error("the push is {0} bytes, over the {MAX_BODY}-byte limit; send smaller batches")]
    TooLarge(usize),
    #[error("the push is not a version-1 sync document: {0}")]
    Malformed(String),
    #[error("the registry's answer is not a version-1 sync ack: {0}")]
    BadAck(String),
}

/// Largest ack a station reads.
pub const MAX_ACK: usize = 1 << 20;

/// Parse and check an ack (size, version, and the log section's shape:
/// hex fields, at most one inclusion per event of a push, proof paths of
/// at most [`crate::registry::log::MAX_PATH`] 32-byte hex hashes).
pub fn parse_ack(body: &[u8]) -> Result<Ack, WireError> {
    use crate::registry::log::{MAX_PATH, MAX_TREE_SIZE};
    let bad = |m: &str| Err(WireError::BadAck(m.into()));
    if body.len() > MAX_ACK {
        return bad("over the size limit");
    }
    let a: Ack = serde_json::from_slice(body).map_err(|e| WireError::BadAck(e.to_string()))?;
    if a.v != VERSION {
        return bad("unsupported version");
    }
    if a.acked.len() > MAX_EVENTS {
        return bad("too many acked events");
    }
    let Some(log) = &a.log else {
        return Ok(a);
    };
    let path_ok = |p: &[String]| p.len() <= MAX_PATH && p.iter().all(|h| is_hex(h, 32));
    if log.size > MAX_TREE_SIZE
        || !is_hex(&log.root, 32)
        || !(log.signature.is_empty() || is_hex(&log.signature, 64))
    {
        return bad("log tree head");
    }
    if log.inclusion.len() > MAX_EVENTS
        || log
            .inclusion
            .iter()
            .any(|i| !valid_event_id(&i.event_id) || i.index >= log.size || !path_ok(&i.path))
    {
        return bad("log inclusion proof");
    }
    if let Some(c) = &log.consistency
        && (c.from > log.size || !path_ok(&c.path))
    {
        return bad("log consistency proof");
    }
    if let Some(p) = &log.appended
        && (p.first >= log.size || !path_ok(&p.frontier))
    {
        return bad("log append proof");
    }
    Ok(a)
}

/// Parse and check a push (size, version, counts, id shapes).
pub fn parse_push(body: &[u8]) -> Result<Push, WireError> {
    if body.len() > MAX_BODY {
        return Err(WireError::TooLarge(body.len()));
    }
    let p: Push = serde_json::from_slice(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    let bad = |m: &str| Err(WireError::Malformed(m.into()));
    if p.v != VERSION {
        return bad("unsupported version");
    }
    if !valid_id(&p.station) {
        return bad("station id");
    }
    if p.events.len() > MAX_EVENTS || p.audit.rows.len() > MAX_AUDIT_ROWS {
        return bad("too many events or audit rows in one push");
    }
    if p.events
        .iter()
        .any(|e| !valid_event_id(&e.event_id) || e.kind.len() > 64)
    {
        return bad("event id or kind");
    }
    if p.audit.after < 0 {
        return bad("audit.after");
    }
    for (i, r) in p.audit.rows.iter().enumerate() {
        if r.seq != p.audit.after + 1 + i as i64 || !is_hex(&r.hash, 32) {
            return bad("audit rows must follow `after` without a gap, each with a 32-byte hash");
        }
    }
    if let Some(h) = &p.head
        && (h.seq < 1 || !is_hex(&h.hash, 32) || !is_hex(&h.signature, 64))
    {
        return bad("head");
    }
    Ok(p)
}

/// A station id: printable ASCII, 1-128 bytes (as the station config allows).
pub fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_graphic())
}

fn valid_event_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_hex(s: &str, bytes: usize) -> bool {
    s.len() == bytes * 2 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Push {
        Push {
            v: 1,
            station: "kiosk-1".into(),
            events: vec![Event {
                event_id: "00112233445566778899aabbccddeeff".into(),
                seq: 7,
                kind: "binding.created".into(),
                payload: serde_json::json!({"binding": "b1", "subject": "alice"}),
                created_at: 1_800_000_000,
            }],
            head: Some(Head {
                seq: 3,
                hash: "ab".repeat(32),
                key_id: "0011223344556677".into(),
                signature: "cd".repeat(64),
                at: 1_800_000_000,
            }),
            audit: AuditSegment {
                after: 2,
                rows: vec![WireAuditRow {
                    seq: 3,
                    at: 1_800_000_000,
                    actor: "keyward@kiosk-1".into(),
                    action: "binding.created".into(),
                    entity: "binding".into(),
                    entity_id: "b1".into(),
                    detail: serde_json::json!({"subject": "alice"}),
                    hash: "ab".repeat(32),
                }],
            },
            log_size: None,
        }
    }

    #[test]
    fn push_json_is_exactly_the_documented_shape() {
        let text = serde_json::to_string(&sample()).unwrap();
        let want = format!(
            concat!(
                r#"{{"v":1,"station":"kiosk-1","events":[{{"event_id":"00112233445566778899aabbccddeeff","seq":7,"kind":"binding.created","payload":{{"binding":"b1","subject":"alice"}},"created_at":1800000000}}],"#,
                r#""head":{{"seq":3,"hash":"{h}","key_id":"0011223344556677","signature":"{s}","at":1800000000}},"#,
                r#""audit":{{"after":2,"rows":[{{"seq":3,"at":1800000000,"actor":"keyward@kiosk-1","action":"binding.created","entity":"binding","entity_id":"b1","detail":{{"subject":"alice"}},"hash":"{h}"}}]}}}}"#
            ),
            h = "ab".repeat(32),
            s = "cd".repeat(64)
        );
        assert_eq!(text, want);
        assert_eq!(parse_push(text.as_bytes()).unwrap(), sample());
    }

    #[test]
    fn ack_and_refusal_json() {
        let a = Ack {
            v: 1,
            acked: vec!["aa".into()],
            stored: 1,
            duplicates: 0,
            head: RegistryHead {
                seq: 3,
                hash: "00".into(),
            },
            log: None,
        };
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"v":1,"acked":["aa"],"stored":1,"duplicates":0,"head":{"seq":3,"hash":"00"}}"#
        );
        let r = Refusal {
            v: 1,
            error: "replayed".into(),
            message: "m".into(),
            head: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"v":1,"error":"replayed","message":"m"}"#
        );
    }

    #[test]
    fn ack_log_section_is_bounded_and_hex_checked() {
        let ok = Ack {
            v: 1,
            acked: vec!["00112233445566778899aabbccddeeff".into()],
            stored: 1,
            duplicates: 0,
            head: RegistryHead {
                seq: 3,
                hash: "00".repeat(32),
            },
            log: Some(LogSection {
                size: 5,
                root: "ab".repeat(32),
                at: 1_800_000_000,
                signature: "cd".repeat(64),
                inclusion: vec![Inclusion {
                    event_id: "00112233445566778899aabbccddeeff".into(),
                    index: 4,
                    path: vec!["ef".repeat(32); 3],
                }],
                appended: Some(Appended {
                    first: 4,
                    frontier: vec!["ef".repeat(32)],
                }),
                consistency: Some(Consistency {
                    from: 3,
                    path: vec!["ef".repeat(32); 2],
                }),
            }),
        };
        let text = serde_json::to_vec(&ok).unwrap();
        assert_eq!(parse_ack(&text).unwrap(), ok);
        // A push without `log_size` and an ack without `log` keep the old shape.
        let mut old = ok.clone();
        old.log = None;
        assert!(!serde_json::to_string(&old).unwrap().contains("log"));
        type Mutation = Box<dyn Fn(&mut LogSection)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "path over the bound",
                Box::new(|l| {
                    l.inclusion[0].path = vec!["ef".repeat(32); crate::registry::log::MAX_PATH + 1]
                }),
            ),
            (
                "consistency over the bound",
                Box::new(|l| {
                    l.consistency.as_mut().unwrap().path =
                        vec!["ef".repeat(32); crate::registry::log::MAX_PATH + 1]
                }),
            ),
            (
                "short hash",
                Box::new(|l| l.inclusion[0].path[1] = "ef".into()),
            ),
            (
                "not hex",
                Box::new(|l| l.inclusion[0].path[1] = "zz".repeat(32)),
            ),
            ("root", Box::new(|l| l.root = "ab".into())),
            ("signature", Box::new(|l| l.signature = "cd".repeat(63))),
            ("index", Box::new(|l| l.inclusion[0].index = 5)),
            (
                "from",
                Box::new(|l| l.consistency.as_mut().unwrap().from = 6),
            ),
            ("size", Box::new(|l| l.size = u64::MAX)),
            (
                "append past the end",
                Box::new(|l| l.appended.as_mut().unwrap().first = 5),
            ),
            (
                "frontier over the bound",
                Box::new(|l| {
                    l.appended.as_mut().unwrap().frontier =
                        vec!["ef".repeat(32); crate::registry::log::MAX_PATH + 1]
                }),
            ),
            (
                "frontier not hex",
                Box::new(|l| l.appended.as_mut().unwrap().frontier[0] = "zz".repeat(32)),
            ),
        ];
        for (what, f) in cases {
            let mut a = ok.clone();
            f(a.log.as_mut().unwrap());
            let text = serde_json::to_vec(&a).unwrap();
            assert!(
                matches!(parse_ack(&text), Err(WireError::BadAck(_))),
                "{what}"
            );
        }
        let extra = String::from_utf8(text)
            .unwrap()
            .replace(r#""at":"#, r#""x":1,"at":"#);
        assert!(
            parse_ack(extra.as_bytes()).is_err(),
            "unknown field accepted"
        );
    }

    #[test]
    fn refuses_bad_pushes() {
        let ok = sample();
        type Mutation = Box<dyn Fn(&mut Push)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("version", Box::new(|p| p.v = 2)),
            ("station", Box::new(|p| p.station = "a b".into())),
            ("event id", Box::new(|p| p.events[0].event_id = "x".into())),
            ("gap", Box::new(|p| p.audit.rows[0].seq = 5)),
            ("row hash", Box::new(|p| p.audit.rows[0].hash = "ab".into())),
            (
                "head sig",
                Box::new(|p| p.head.as_mut().unwrap().signature = "cd".into()),
            ),
            ("after", Box::new(|p| p.audit.after = -1)),
        ];
        for (what, f) in cases {
            let mut p = ok.clone();
            f(&mut p);
            let text = serde_json::to_vec(&p).unwrap();
            assert!(
                matches!(parse_push(&text), Err(WireError::Malformed(_))),
                "{what}"
            );
        }
        let extra = br#"{"v":1,"station":"s","events":[],"head":null,"audit":{"after":0,"rows":[]},"pin":"1234"}"#;
        assert!(parse_push(extra).is_err(), "unknown field accepted");
        assert_eq!(
            parse_push(&vec![b' '; MAX_BODY + 1]),
            Err(WireError::TooLarge(MAX_BODY + 1))
        );
    }
}

//! The station's parser and checker of a registry's ack: the ack document
//! (its log section bounded and hex-checked) and the log check against a
//! fixed push and kept head, with and without a pinned key. None may panic;
//! a parsed ack must serialise and parse back to itself.
#![no_main]

use keyward::sync::tree_head::{self, KeptHead};
use keyward::sync::wire::{self, AuditSegment, Event, Push};
use libfuzzer_sys::fuzz_target;

fn push() -> Push {
    Push {
        v: 1,
        station: "kiosk-1".into(),
        events: vec![Event {
            event_id: "00112233445566778899aabbccddeeff".into(),
            seq: 1,
            kind: "binding.created".into(),
            payload: serde_json::json!({"binding": "b1"}),
            created_at: 1_800_000_000,
        }],
        head: None,
        audit: AuditSegment {
            after: 0,
            rows: vec![],
        },
        log_size: Some(3),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(ack) = wire::parse_ack(data) else {
        return;
    };
    let again = serde_json::to_vec(&ack).expect("a parsed ack serialises");
    assert_eq!(wire::parse_ack(&again).expect("round trip"), ack);
    let p = push();
    let kept = KeptHead {
        size: 3,
        root: "ab".repeat(32),
        at: 1_800_000_000,
        signature: String::new(),
        verified: false,
    };
    let key = [7u8; 32];
    for pinned in [None, Some(&key)] {
        let _ = tree_head::check(&p, ack.log.as_ref(), Some(&kept), pinned);
        let _ = tree_head::check(&p, ack.log.as_ref(), None, pinned);
    }
});

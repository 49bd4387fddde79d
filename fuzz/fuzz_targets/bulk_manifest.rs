//! Fuzz the bulk manifest parser (JSON lines and CSV) with arbitrary bytes.
//!
//! Properties: nothing panics; an accepted manifest has at least one and at
//! most MAX_ENTRIES tickets, strictly increasing line numbers, no two
//! tickets with the same (iss, jti) and no serial assigned twice.
#![no_main]

use std::collections::HashSet;

use keyward::provision::bulk::manifest::{Format, MAX_ENTRIES, parse};
use keyward::ticket::DEFAULT_MAX_BYTES;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for format in [Format::JsonLines, Format::Csv] {
        let Ok(m) = parse(data, format, DEFAULT_MAX_BYTES) else {
            continue;
        };
        assert!(!m.entries.is_empty() && m.entries.len() <= MAX_ENTRIES);
        assert!(m.entries.windows(2).all(|w| w[0].line < w[1].line));
        let mut ids = HashSet::new();
        let mut serials = HashSet::new();
        for e in &m.entries {
            assert!(ids.insert((e.iss.clone(), e.jti.clone())));
            if let Some(s) = e.serial {
                assert!(serials.insert(s));
            }
        }
    }
});

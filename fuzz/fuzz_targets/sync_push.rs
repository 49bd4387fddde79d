//! The registry's request parsers: the push document, the Signature-Input
//! header and the air-gap bundle. None may panic; a parsed push must
//! serialise and parse back to itself.
#![no_main]

use keyward::sync::{bundle, signature, wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = wire::parse_push(data) {
        let again = serde_json::to_vec(&p).expect("a parsed push serialises");
        assert_eq!(wire::parse_push(&again).expect("round trip"), p);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = signature::parse_input(s);
    }
    let _ = bundle::parse(data);
});

//! Fuzz CTAP response decoding: the status byte and strict canonical CBOR
//! (keyward::ctap::client::parse_response), then each command's response
//! parser on the decoded body (with the extension outputs of §12), and the
//! large-blob array check, as a hostile authenticator would answer.
//!
//! Properties: nothing panics; what the strict decoder accepts re-encodes
//! to the same bytes (canonical round trip).
//!
//! The seed corpus (fuzz/corpus/ctap_response) holds the simulator's real
//! answers, written by tests/ctap_fuzz_seeds.rs.
#![no_main]

use keyward::ctap::cbor;
use keyward::ctap::client::parse_response;
use keyward::ctap::commands::auth_data::AuthData;
use keyward::ctap::commands::{get_assertion, get_info, large_blobs, make_credential};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = large_blobs::deserialize(data);
    let Ok(Some(v)) = parse_response(data) else {
        let _ = AuthData::parse(data);
        return;
    };
    assert_eq!(cbor::encode(&v), data[1..], "accepted CBOR must be canonical");
    let _ = get_info::parse(&v);
    if let Ok(a) = make_credential::parse(&v) {
        let _ = a.extensions();
    }
    if let Ok(a) = get_assertion::parse(&v) {
        let _ = a.extensions();
    }
});

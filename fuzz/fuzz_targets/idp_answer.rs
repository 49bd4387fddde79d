//! The registry's parsers of identity-provider answers (src/idp): Graph's
//! creationOptions, Okta's WebAuthn enrollment and factor list, and the
//! HTTP layer's bounded read. None may panic; options that parse must give
//! a clientDataJSON that is JSON, of type webauthn.create, whose challenge
//! decodes back to the options' challenge.
#![no_main]

use base64::Engine as _;
use keyward::idp::http::{Response, read_limited};
use keyward::idp::{entra, okta};
use libfuzzer_sys::fuzz_target;

fn check(o: &keyward::idp::CreationOptions) {
    let cd: serde_json::Value = serde_json::from_slice(&o.client_data_json()).expect("clientDataJSON is JSON");
    assert_eq!(cd["type"], "webauthn.create");
    let c = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cd["challenge"].as_str().expect("challenge"))
        .expect("base64url challenge");
    assert_eq!(c, o.challenge);
    assert!(!o.challenge.is_empty() && o.user_handle.len() <= 64);
}

fuzz_target!(|data: &[u8]| {
    let resp = Response { status: 200, body: data.to_vec() };
    if let Ok(o) = entra::parse_creation_options("u", &resp) {
        check(&o);
    }
    let org = reqwest::Url::parse("https://example.okta.com").unwrap();
    if let Ok(o) = okta::parse_enrollment(&org, "u", &resp, 1_800_000_000) {
        check(&o);
        assert!(o.state.is_some());
    }
    let _ = okta::match_factor(&resp, data.get(..16).unwrap_or(data));
    let _ = read_limited(&mut &data[..], Some(data.len() as u64), "fuzz");
});

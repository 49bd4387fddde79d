//! Fuzz MDS3 BLOB verification (compact JWS, x5c, JSON payload).
//!
//! Properties: nothing panics; a verified BLOB's index only returns entries
//! it holds.
#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use keyward::attest::{MdsBlob, TrustStore};
use libfuzzer_sys::fuzz_target;

static ROOT: LazyLock<TrustStore> = LazyLock::new(TrustStore::bundled_mds_root);

fuzz_target!(|data: &[u8]| {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_734_220_800);
    if let Ok(b) = MdsBlob::verify(data, &ROOT, at, Default::default()) {
        for e in b.entries() {
            let _ = e.status();
            let _ = e.anchors();
            if let Some(a) = e.aaguid.as_deref().and_then(keyward::attest::mds::parse_aaguid) {
                assert!(b.by_aaguid(&a).is_some());
            }
        }
    }
    let _ = keyward::attest::mds::parse_aaguid(&String::from_utf8_lossy(data));
});

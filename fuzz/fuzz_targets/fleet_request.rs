//! The fleet documents (docs/fleet.md): the registry's request parsers
//! (reserve, lookup, pull, head) and the answers a station reads (pull,
//! lookup, reservation). None may panic; a parsed request round-trips.
#![no_main]

use keyward::sync::fleet;
use libfuzzer_sys::fuzz_target;

fn round_trip<T>(data: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(r) = fleet::parse::<T>(data) {
        let again = serde_json::to_vec(&r).expect("a parsed request serialises");
        assert_eq!(fleet::parse::<T>(&again).expect("round trip"), r);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<fleet::ReserveRequest>(data);
    round_trip::<fleet::LookupRequest>(data);
    round_trip::<fleet::PullRequest>(data);
    round_trip::<fleet::HeadRequest>(data);
    let _ = serde_json::from_slice::<fleet::PullAnswer>(data);
    let _ = serde_json::from_slice::<fleet::LookupAnswer>(data);
    let _ = serde_json::from_slice::<fleet::Reserved>(data);
});

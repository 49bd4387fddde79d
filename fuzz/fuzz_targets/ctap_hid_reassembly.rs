//! Fuzz CTAPHID reassembly (keyward::transport::ctaphid::Assembler) with
//! arbitrary input reports, as a hostile HID device would send them.
//!
//! Properties: nothing panics; a completed message is never longer than
//! MAX_MESSAGE; and any payload split by `packets` reassembles to itself.
//!
//! Input: 4 bytes of channel id, then 64-byte reports. The seed corpus
//! (fuzz/corpus/ctap_hid_reassembly) is written by tests/ctap_fuzz_seeds.rs.
#![no_main]

use keyward::transport::ctaphid::{Assembler, Fed, MAX_MESSAGE, REPORT_LEN, packets};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let cid = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
    let mut asm = Assembler::new(cid);
    for chunk in data[4..].chunks(REPORT_LEN) {
        let mut r = [0u8; REPORT_LEN];
        r[..chunk.len()].copy_from_slice(chunk);
        match asm.feed(&r) {
            Ok(Fed::Complete(_, msg)) => assert!(msg.len() <= MAX_MESSAGE),
            Ok(_) => {}
            Err(_) => asm = Assembler::new(cid),
        }
    }

    // Round trip: the payload split into packets comes back whole.
    let payload = &data[4..data.len().min(4 + MAX_MESSAGE)];
    let cmd = data[0] & 0x7F;
    let ps = packets(cid, cmd, payload).expect("within MAX_MESSAGE");
    let mut asm = Assembler::new(cid);
    let mut out = None;
    for p in &ps {
        if let Fed::Complete(c, m) = asm.feed(p).expect("own packets are well-formed") {
            out = Some((c, m));
        }
    }
    assert_eq!(out, Some((cmd, payload.to_vec())));
});

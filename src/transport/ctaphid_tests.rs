use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::*;
use crate::transport::mem::FnReports;

#[test]
fn init_packet_is_byte_exact() {
    let p = packets(0x0102_0304, cmd::CBOR, &[0x04]).unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(
        &p[0][..8],
        &[0x01, 0x02, 0x03, 0x04, 0x90, 0x00, 0x01, 0x04]
    );
    assert!(p[0][8..].iter().all(|&b| b == 0));
}

#[test]
fn long_messages_split_and_reassemble() {
    let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    let ps = packets(7, cmd::CBOR, &data).unwrap();
    // 57 in INIT, then ceil(943 / 59) = 16 CONT packets.
    assert_eq!(ps.len(), 17);
    assert_eq!(ps[1][4], 0);
    assert_eq!(ps[16][4], 15);
    let mut a = Assembler::new(7);
    let mut out = None;
    for p in &ps {
        if let Fed::Complete(c, d) = a.feed(p).unwrap() {
            out = Some((c, d));
        }
    }
    assert_eq!(out, Some((cmd::CBOR, data)));
    assert!(packets(7, cmd::CBOR, &vec![0; MAX_MESSAGE + 1]).is_err());
}

#[test]
fn assembler_rejects_bad_sequences_and_skips_other_channels() {
    let ps = packets(7, cmd::CBOR, &[1u8; 100]).unwrap();
    let mut a = Assembler::new(7);
    assert_eq!(
        a.feed(&packets(8, cmd::CBOR, &[1]).unwrap()[0]).unwrap(),
        Fed::Ignored
    );
    assert_eq!(a.feed(&ps[1]).unwrap(), Fed::Ignored);
    assert_eq!(a.feed(&ps[0]).unwrap(), Fed::Partial);
    let mut bad = ps[1];
    bad[4] = 5;
    assert!(matches!(a.feed(&bad), Err(TransportError::Framing(_))));
    let mut big = ps[0];
    big[5..7].copy_from_slice(&0xFFFFu16.to_be_bytes());
    assert!(matches!(
        Assembler::new(7).feed(&big),
        Err(TransportError::Framing(_))
    ));
}

/// A scripted device: answers each written INIT/CBOR with queued reports.
type Script = Arc<Mutex<(Vec<Report>, VecDeque<Report>)>>;

#[allow(clippy::type_complexity)]
fn scripted(
    replies: Vec<Vec<Report>>,
) -> (
    FnReports<
        impl FnMut(&Report) -> Result<(), TransportError> + Send,
        impl FnMut(Duration) -> Result<Option<Report>, TransportError> + Send,
    >,
    Script,
) {
    let state: Script = Arc::new(Mutex::new((Vec::new(), VecDeque::new())));
    let replies = Arc::new(Mutex::new(VecDeque::from(replies)));
    let (w, r) = (state.clone(), state.clone());
    let io = FnReports::new(
        move |rep: &Report| {
            let mut s = w.lock().unwrap();
            s.0.push(*rep);
            if rep[4] & 0x80 != 0 {
                let mut next = replies.lock().unwrap().pop_front().unwrap_or_default();
                // Echo the nonce into an INIT answer.
                if rep[4] == 0x86 && next.first().is_some_and(|p| p[4] == 0x86) {
                    next[0][7..15].copy_from_slice(&rep[7..15]);
                }
                s.1.extend(next);
            }
            Ok(())
        },
        move |_t: Duration| Ok(r.lock().unwrap().1.pop_front()),
    );
    (io, state)
}

fn init_reply(cid: u32) -> Vec<Report> {
    let mut d = vec![0u8; 8];
    d.extend_from_slice(&cid.to_be_bytes());
    d.extend_from_slice(&[2, 5, 7, 1, 0x0D]);
    packets(BROADCAST_CID, cmd::INIT, &d).unwrap()
}

#[test]
fn open_allocates_a_channel_then_keepalive_busy_and_answer() {
    let cid = 0x0A0B_0C0D;
    let mut ka = packets(cid, cmd::KEEPALIVE, &[2]).unwrap();
    ka.extend(packets(cid, cmd::CBOR, &[0x00, 0xA0]).unwrap());
    let (io, state) = scripted(vec![
        init_reply(cid),
        packets(cid, cmd::ERROR, &[err::CHANNEL_BUSY]).unwrap(),
        ka,
    ]);
    let mut t = CtapHid::open(
        io,
        "t".into(),
        TransportKind::Memory,
        Duration::from_secs(1),
    )
    .unwrap();
    assert_eq!(t.info().cid, cid);
    assert_eq!(t.info().version, [5, 7, 1]);
    let mut seen = Vec::new();
    let mut cb = |s| seen.push(s);
    let mut call = Call::new(Duration::from_secs(2)).on_status(&mut cb);
    assert_eq!(t.cbor(&[0x04], &mut call).unwrap(), vec![0x00, 0xA0]);
    assert_eq!(seen, vec![KeepaliveStatus::UpNeeded]);
    let sent = &state.lock().unwrap().0;
    // INIT on broadcast, then the CBOR request twice (BUSY retry).
    assert_eq!(&sent[0][..7], &[0xFF, 0xFF, 0xFF, 0xFF, 0x86, 0x00, 0x08]);
    assert_eq!(
        &sent[1][..8],
        &[0x0A, 0x0B, 0x0C, 0x0D, 0x90, 0x00, 0x01, 0x04]
    );
    assert_eq!(sent[2], sent[1]);
}

#[test]
fn errors_truncation_and_deadline_are_typed() {
    let cid = 9;
    let mut cut = packets(cid, cmd::CBOR, &[0u8; 100]).unwrap();
    cut.pop();
    let (io, _) = scripted(vec![
        init_reply(cid),
        packets(cid, cmd::ERROR, &[0x01]).unwrap(),
        cut,
        vec![],
    ]);
    let mut t = CtapHid::open(
        io,
        "t".into(),
        TransportKind::Memory,
        Duration::from_secs(1),
    )
    .unwrap();
    let e = t
        .cbor(&[0x04], &mut Call::new(Duration::from_secs(2)))
        .unwrap_err();
    assert!(matches!(e, TransportError::HidError(0x01)), "{e:?}");
    let e = t
        .cbor(&[0x04], &mut Call::new(Duration::from_secs(5)))
        .unwrap_err();
    assert!(
        matches!(
            e,
            TransportError::Truncated {
                expected: 100,
                got: 57
            }
        ),
        "{e:?}"
    );
    let start = Instant::now();
    let e = t
        .cbor(&[0x04], &mut Call::new(Duration::from_millis(200)))
        .unwrap_err();
    assert!(matches!(e, TransportError::Timeout), "{e:?}");
    assert!(start.elapsed() < Duration::from_secs(1));
}

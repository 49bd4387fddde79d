//! Bad input never panics: random and mutated requests for every command
//! get a status byte back (CTAP 2.1 §8.2), never a crash.

use super::cbor;
use super::testutil::*;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

fn check(t: &mut Tester, req: &[u8]) {
    let r = t
        .auth
        .handle(req, &mut t.up)
        .expect("no interrupt without faults");
    assert!(!r.is_empty(), "{req:02X?}");
    if r[0] == 0 && r.len() > 1 {
        cbor::parse_map(&r[1..]).expect("successful responses are CBOR maps");
    }
}

#[test]
fn random_bodies_for_every_command() {
    let mut t = Tester::new();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for command in [0x01u8, 0x02, 0x04, 0x06, 0x08, 0x0A, 0x0B, 0x0D, 0x41, 0x07] {
        for _ in 0..300 {
            let len = (rng.next() % 80) as usize;
            let mut req = vec![command];
            // Start most bodies with a map header so parsing goes deeper.
            if !rng.next().is_multiple_of(4) {
                req.push(0xA0 | (rng.byte() % 8));
            }
            req.extend((0..len).map(|_| rng.byte()));
            check(&mut t, &req);
        }
    }
}

#[test]
fn mutated_valid_requests() {
    let mut t = Tester::new();
    t.set_pin(2, "123456");
    let tok = t.token(2, "123456", 0x07, None).unwrap();
    let auth = proto(2).authenticate(&tok, &CDH);
    let mc = cbor::encode_raw(&mc_req(
        "example.com",
        b"u",
        true,
        vec![(8, cbor::bytes(&auth)), (9, cbor::int(2))],
    ));
    let pin_req = cbor::encode_raw(&t.set_pin_req(2, "654321"));
    let mut rng = Rng(42);
    for (command, body) in [
        (0x01u8, &mc),
        (0x02, &mc),
        (0x06, &pin_req),
        (0x0A, &pin_req),
    ] {
        for _ in 0..400 {
            let mut b = body.clone();
            for _ in 0..1 + rng.next() % 3 {
                let i = (rng.next() as usize) % b.len();
                b[i] = rng.byte();
            }
            if rng.next().is_multiple_of(5) {
                b.truncate((rng.next() as usize) % b.len());
            }
            check(&mut t, &[&[command][..], &b].concat());
        }
    }
}

#[test]
fn huge_declared_lengths_are_refused_cheaply() {
    let mut t = Tester::new();
    for body in [
        &[0x5Au8, 0xFF, 0xFF, 0xFF, 0xFF][..],
        &[0x9B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
        &[0xBB, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
        &[0xA1, 0x01, 0x7A, 0xFF, 0xFF, 0xFF, 0x00],
    ] {
        assert_eq!(
            t.auth
                .handle(&[&[0x01u8][..], body].concat(), &mut t.up)
                .unwrap(),
            [0x12]
        );
    }
    // Deep nesting stops at ciborium's recursion limit.
    let mut deep = vec![0x01, 0xA1, 0x01];
    deep.extend(std::iter::repeat_n(0x81, 1000));
    deep.push(0x00);
    assert_eq!(t.auth.handle(&deep, &mut t.up).unwrap(), [0x12]);
    // Over maxMsgSize: CTAP2_ERR_REQUEST_TOO_LARGE before any parsing.
    let big = [&[0x01u8][..], &[0u8; 1201]].concat();
    assert_eq!(t.auth.handle(&big, &mut t.up).unwrap(), [0x39]);
}

//! BER-TLV as the PIV card uses it (NIST SP 800-73-4 Part 2 §3, ISO/IEC
//! 7816-4 §5.2): one- or two-byte tags, definite lengths of up to three bytes.
//!
//! Parsing is bounded by the input and never panics; the encoder is the
//! inverse for lengths below 64 KiB.

/// One data object: its tag (up to two bytes, big-endian) and value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u16,
    pub value: &'a [u8],
}

/// Parse a concatenation of TLVs; `None` if any is malformed or runs past
/// the end of `data`.
pub fn parse(mut data: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let (tlv, rest) = parse_one(data)?;
        out.push(tlv);
        data = rest;
    }
    Some(out)
}

/// Parse one TLV from the front of `data`, returning it and what follows.
pub fn parse_one(data: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&first, mut rest) = data.split_first()?;
    let mut tag = u16::from(first);
    // ISO 7816-4 §5.2.2.1: low five bits all set means a subsequent tag byte.
    if first & 0x1F == 0x1F {
        let (&second, r) = rest.split_first()?;
        if second & 0x80 != 0 {
            return None; // three-byte tags do not occur in PIV
        }
        tag = (tag << 8) | u16::from(second);
        rest = r;
    }
    let (&l0, r) = rest.split_first()?;
    let (len, r) = match l0 {
        0..=0x7F => (usize::from(l0), r),
        0x81 => (usize::from(*r.first()?), r.get(1..)?),
        0x82 => (
            usize::from(u16::from_be_bytes([*r.first()?, *r.get(1)?])),
            r.get(2..)?,
        ),
        _ => return None,
    };
    let value = r.get(..len)?;
    Some((Tlv { tag, value }, &r[len..]))
}

/// The value of the first TLV with `tag`, if any.
pub fn find<'a>(tlvs: &[Tlv<'a>], tag: u16) -> Option<&'a [u8]> {
    tlvs.iter().find(|t| t.tag == tag).map(|t| t.value)
}

/// Append a BER length.
pub fn push_len(out: &mut Vec<u8>, len: usize) {
    match len {
        0..=0x7F => out.push(len as u8),
        0x80..=0xFF => out.extend_from_slice(&[0x81, len as u8]),
        _ => {
            let l = u16::try_from(len).unwrap_or(u16::MAX);
            out.push(0x82);
            out.extend_from_slice(&l.to_be_bytes());
        }
    }
}

/// Encode one TLV.
pub fn encode(tag: u16, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 5);
    if tag > 0xFF {
        out.extend_from_slice(&tag.to_be_bytes());
    } else {
        out.push(tag as u8);
    }
    push_len(&mut out, value.len());
    out.extend_from_slice(value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_short_long_and_two_byte_tags() {
        for len in [0usize, 1, 0x7F, 0x80, 0xFF, 0x100, 3000] {
            let v = vec![0xA5; len];
            for tag in [0x53u16, 0x7F49] {
                let enc = encode(tag, &v);
                let tlvs = parse(&enc).unwrap();
                assert_eq!(tlvs.len(), 1);
                assert_eq!((tlvs[0].tag, tlvs[0].value), (tag, &v[..]));
            }
        }
        assert_eq!(encode(0x80, &[]), [0x80, 0x00]);
        assert_eq!(encode(0x7F49, &[1]), [0x7F, 0x49, 0x01, 0x01]);
    }

    #[test]
    fn rejects_truncated_and_odd_lengths() {
        for bad in [
            &[0x53][..],
            &[0x53, 0x02, 0x00],
            &[0x53, 0x81],
            &[0x53, 0x82, 0x01],
            &[0x53, 0x83, 0, 0, 1, 0],
            &[0x7F],
            &[0x7F, 0x81, 0x01, 0x00],
        ] {
            assert!(parse(bad).is_none(), "{bad:02X?}");
        }
    }
}

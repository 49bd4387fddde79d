//! Minimal BER-TLV for PIV data objects (SP 800-73-4 Part 2 §3: one-byte
//! tags here, lengths in short form or `81 xx` / `82 xx xx`). Untrusted
//! input: every read is bounds-checked and nothing panics.

/// Split the first TLV off `data`: (tag, value, rest).
pub fn parse(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&l0, rest) = rest.split_first()?;
    let (len, rest) = match l0 {
        0x00..=0x7F => (usize::from(l0), rest),
        0x81 => (usize::from(*rest.first()?), rest.get(1..)?),
        0x82 => (
            usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?])),
            rest.get(2..)?,
        ),
        _ => return None,
    };
    let value = rest.get(..len)?;
    Some((tag, value, rest.get(len..)?))
}

/// The value of the first TLV with `tag` at this level.
pub fn find(mut data: &[u8], tag: u8) -> Option<&[u8]> {
    while let Some((t, v, rest)) = parse(data) {
        if t == tag {
            return Some(v);
        }
        data = rest;
    }
    None
}

/// Encode one TLV.
pub fn encode(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    match value.len() {
        n @ 0..=0x7F => v.push(n as u8),
        n @ 0x80..=0xFF => v.extend([0x81, n as u8]),
        n => v.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    v.extend_from_slice(value);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let long = vec![7u8; 300];
        let enc = encode(0x70, &long);
        assert_eq!(&enc[..4], &[0x70, 0x82, 0x01, 0x2C]);
        assert_eq!(find(&enc, 0x70), Some(&long[..]));
        assert_eq!(find(&enc[..100], 0x70), None);
        assert_eq!(parse(&[0x53, 0x83, 0, 0, 1]), None);
        assert_eq!(
            find(&[0x01, 0x00, 0x02, 0x01, 0x09], 0x02),
            Some(&[9u8][..])
        );
    }
}

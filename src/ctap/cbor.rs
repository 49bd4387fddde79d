//! CTAP2 canonical CBOR (CTAP 2.1 §8 "Message Encoding"): requests are
//! encoded with map keys in canonical order; responses are decoded
//! strictly: size-limited, well-formed, nothing trailing, and canonical
//! (minimal lengths, definite lengths, sorted unique map keys). Fields are
//! read through [`Fields`], which names the missing or mistyped field.

use ciborium::Value;

/// Why a response could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("response of {len} bytes exceeds the {limit}-byte limit")]
    TooLarge { len: usize, limit: usize },
    #[error("response CBOR ends early (truncated)")]
    Truncated,
    #[error("response is not well-formed CBOR")]
    Malformed,
    #[error("response CBOR nests too deeply")]
    TooDeep,
    #[error("response has {0} bytes after the CBOR item")]
    Trailing(usize),
    #[error("response CBOR is not canonical (CTAP 2.1 §8): {0}")]
    NonCanonical(&'static str),
    #[error("response field {0} has an unexpected type")]
    UnexpectedType(&'static str),
    #[error("response lacks required field {0}")]
    MissingField(&'static str),
    #[error("response field {field} is {len} long, more than {limit}")]
    FieldTooLong {
        field: &'static str,
        len: usize,
        limit: usize,
    },
    #[error("response is empty")]
    Empty,
    #[error("response field {0} is invalid")]
    Invalid(&'static str),
}

/// Encode a value (keys already in canonical order, see [`map`]).
pub fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = ciborium::into_writer(v, &mut out);
    out
}

/// A map with its entries in CTAP canonical order: by the encoded key,
/// shorter first, then bytewise (§8, RFC 7049 §3.9).
pub fn map(mut entries: Vec<(Value, Value)>) -> Value {
    entries.sort_by_cached_key(|(k, _)| {
        let e = encode(k);
        (e.len(), e)
    });
    Value::Map(entries)
}

/// A map with integer keys, in canonical order.
pub fn int_map(entries: Vec<(i64, Value)>) -> Value {
    map(entries
        .into_iter()
        .map(|(k, v)| (Value::from(k), v))
        .collect())
}

/// A map with text keys, in canonical order.
pub fn text_map(entries: Vec<(&str, Value)>) -> Value {
    map(entries
        .into_iter()
        .map(|(k, v)| (Value::from(k), v))
        .collect())
}

pub fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

/// Decode one CBOR item of at most `limit` bytes, strictly.
pub fn decode_strict(input: &[u8], limit: usize) -> Result<Value, DecodeError> {
    if input.len() > limit {
        return Err(DecodeError::TooLarge {
            len: input.len(),
            limit,
        });
    }
    let mut rest = input;
    let v: Value =
        ciborium::de::from_reader_with_recursion_limit(&mut rest, 16).map_err(|e| match e {
            ciborium::de::Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                DecodeError::Truncated
            }
            ciborium::de::Error::RecursionLimitExceeded => DecodeError::TooDeep,
            _ => DecodeError::Malformed,
        })?;
    if !rest.is_empty() {
        return Err(DecodeError::Trailing(rest.len()));
    }
    check_order(&v)?;
    // Re-encoding is minimal and definite-length: any difference means the
    // key used a longer form than needed, or indefinite lengths.
    if encode(&v) != input {
        return Err(DecodeError::NonCanonical(
            "non-minimal or indefinite-length encoding",
        ));
    }
    Ok(v)
}

fn check_order(v: &Value) -> Result<(), DecodeError> {
    match v {
        Value::Map(m) => {
            let mut prev: Option<(usize, Vec<u8>)> = None;
            for (k, val) in m {
                let e = encode(k);
                let key = (e.len(), e);
                if let Some(p) = &prev {
                    if *p == key {
                        return Err(DecodeError::NonCanonical("duplicate map key"));
                    }
                    if *p > key {
                        return Err(DecodeError::NonCanonical("map keys out of order"));
                    }
                }
                prev = Some(key);
                check_order(k)?;
                check_order(val)?;
            }
            Ok(())
        }
        Value::Array(a) => a.iter().try_for_each(check_order),
        Value::Tag(_, inner) => check_order(inner),
        _ => Ok(()),
    }
}

/// A decoded map, read field by field with typed errors. `name` labels each
/// field in errors (the spec's member name).
pub struct Fields<'a>(&'a [(Value, Value)]);

impl<'a> Fields<'a> {
    /// The fields of `v`, which must be a map.
    pub fn of(v: &'a Value, name: &'static str) -> Result<Fields<'a>, DecodeError> {
        match v {
            Value::Map(m) => Ok(Fields(m)),
            _ => Err(DecodeError::UnexpectedType(name)),
        }
    }

    pub fn entries(&self) -> &'a [(Value, Value)] {
        self.0
    }

    /// The value under integer key `k`.
    pub fn get(&self, k: i64) -> Option<&'a Value> {
        self.0
            .iter()
            .find(|(key, _)| {
                key.as_integer()
                    .is_some_and(|i| i128::from(i) == i128::from(k))
            })
            .map(|(_, v)| v)
    }

    /// The value under text key `k`.
    pub fn get_text(&self, k: &str) -> Option<&'a Value> {
        self.0
            .iter()
            .find(|(key, _)| key.as_text() == Some(k))
            .map(|(_, v)| v)
    }

    pub fn require(&self, k: i64, name: &'static str) -> Result<&'a Value, DecodeError> {
        self.get(k).ok_or(DecodeError::MissingField(name))
    }
}

/// Typed readers of one value.
pub fn as_bytes<'a>(v: &'a Value, name: &'static str) -> Result<&'a [u8], DecodeError> {
    v.as_bytes()
        .map(Vec::as_slice)
        .ok_or(DecodeError::UnexpectedType(name))
}

pub fn as_text<'a>(v: &'a Value, name: &'static str) -> Result<&'a str, DecodeError> {
    v.as_text().ok_or(DecodeError::UnexpectedType(name))
}

pub fn as_bool(v: &Value, name: &'static str) -> Result<bool, DecodeError> {
    v.as_bool().ok_or(DecodeError::UnexpectedType(name))
}

pub fn as_int(v: &Value, name: &'static str) -> Result<i128, DecodeError> {
    v.as_integer()
        .map(i128::from)
        .ok_or(DecodeError::UnexpectedType(name))
}

pub fn as_u32(v: &Value, name: &'static str) -> Result<u32, DecodeError> {
    u32::try_from(as_int(v, name)?).map_err(|_| DecodeError::Invalid(name))
}

pub fn as_array<'a>(v: &'a Value, name: &'static str) -> Result<&'a [Value], DecodeError> {
    v.as_array()
        .map(Vec::as_slice)
        .ok_or(DecodeError::UnexpectedType(name))
}

/// A byte string of at most `limit` bytes.
pub fn bytes_max<'a>(
    v: &'a Value,
    name: &'static str,
    limit: usize,
) -> Result<&'a [u8], DecodeError> {
    let b = as_bytes(v, name)?;
    if b.len() > limit {
        return Err(DecodeError::FieldTooLong {
            field: name,
            len: b.len(),
            limit,
        });
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_canonical() {
        let m = int_map(vec![
            (-1, 1.into()),
            (3, 2.into()),
            (1, 3.into()),
            (-25, 4.into()),
        ]);
        assert_eq!(
            hex::encode(encode(&m)),
            "a40103030220013818 04".replace(' ', "")
        );
        let t = text_map(vec![
            ("name", 1.into()),
            ("id", 2.into()),
            ("displayName", 3.into()),
        ]);
        assert_eq!(
            hex::encode(encode(&t)),
            "a362696402646e616d65016b646973706c61794e616d6503"
        );
    }

    #[test]
    fn strict_decoding_types_each_failure() {
        assert_eq!(
            decode_strict(&hex::decode("a20102").unwrap(), 100),
            Err(DecodeError::Truncated)
        );
        assert_eq!(decode_strict(&[0xFF], 100), Err(DecodeError::Malformed));
        assert_eq!(
            decode_strict(&hex::decode("a1010200").unwrap(), 100),
            Err(DecodeError::Trailing(1))
        );
        // Keys out of order, non-minimal integer, indefinite length, duplicate.
        for bad in ["a202010102", "a1180101", "bf0101ff", "a201010102"] {
            assert!(
                matches!(
                    decode_strict(&hex::decode(bad).unwrap(), 100),
                    Err(DecodeError::NonCanonical(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            decode_strict(&[0x40; 10], 5),
            Err(DecodeError::TooLarge { len: 10, limit: 5 })
        ));
        let deep = [vec![0x81; 40], vec![0x00]].concat();
        assert_eq!(decode_strict(&deep, 100), Err(DecodeError::TooDeep));
        assert!(decode_strict(&hex::decode("a2010203a0").unwrap(), 100).is_ok());
    }
}

//! CBOR as the authenticator reads and writes it.
//!
//! Requests are parsed into [`ciborium::Value`] with a size limit checked by
//! the caller; responses are built as values and encoded in the CTAP2
//! canonical form (CTAP 2.1 §8 "Message Encoding": map keys sorted by the
//! length of their encoding, then bytewise; shortest integer and length
//! encodings, which ciborium always uses).

use ciborium::Value;

use super::status::CtapError;

/// Parse a request's CBOR parameter map. An empty body is an empty map.
///
/// Malformed CBOR is `CTAP2_ERR_INVALID_CBOR`; anything but a map is
/// `CTAP2_ERR_CBOR_UNEXPECTED_TYPE` (CTAP 2.1 §8.1).
pub fn parse_map(data: &[u8]) -> Result<Req, CtapError> {
    if data.is_empty() {
        return Ok(Req(Vec::new()));
    }
    let mut rd = data;
    let v: Value = ciborium::from_reader(&mut rd).map_err(|_| CtapError::InvalidCbor)?;
    if !rd.is_empty() {
        return Err(CtapError::InvalidCbor);
    }
    match v {
        Value::Map(m) => Ok(Req(m)),
        _ => Err(CtapError::CborUnexpectedType),
    }
}

/// A decoded CBOR map with typed accessors. Every accessor returns
/// `CTAP2_ERR_CBOR_UNEXPECTED_TYPE` when the value has the wrong type and
/// `Ok(None)` when the key is absent.
#[derive(Clone, Debug, Default)]
pub struct Req(pub Vec<(Value, Value)>);

impl Req {
    pub fn from_value(v: &Value) -> Result<Req, CtapError> {
        match v {
            Value::Map(m) => Ok(Req(m.clone())),
            _ => Err(CtapError::CborUnexpectedType),
        }
    }

    fn find(&self, key: &Value) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value under integer key `k`.
    pub fn get(&self, k: i64) -> Option<&Value> {
        self.find(&Value::Integer(k.into()))
    }

    /// The value under text key `k`.
    pub fn get_text_key(&self, k: &str) -> Option<&Value> {
        self.find(&Value::Text(k.to_string()))
    }

    pub fn bytes(&self, k: i64) -> Result<Option<&[u8]>, CtapError> {
        self.get(k).map(as_bytes).transpose()
    }
    pub fn text(&self, k: i64) -> Result<Option<&str>, CtapError> {
        self.get(k).map(as_text).transpose()
    }
    pub fn int(&self, k: i64) -> Result<Option<i128>, CtapError> {
        self.get(k).map(as_int).transpose()
    }
    pub fn bool(&self, k: i64) -> Result<Option<bool>, CtapError> {
        self.get(k).map(as_bool).transpose()
    }
    pub fn map(&self, k: i64) -> Result<Option<Req>, CtapError> {
        self.get(k).map(Req::from_value).transpose()
    }
    pub fn array(&self, k: i64) -> Result<Option<&[Value]>, CtapError> {
        self.get(k).map(as_array).transpose()
    }
}

pub fn as_bytes(v: &Value) -> Result<&[u8], CtapError> {
    v.as_bytes()
        .map(|b| b.as_slice())
        .ok_or(CtapError::CborUnexpectedType)
}
pub fn as_text(v: &Value) -> Result<&str, CtapError> {
    v.as_text().ok_or(CtapError::CborUnexpectedType)
}
pub fn as_int(v: &Value) -> Result<i128, CtapError> {
    v.as_integer()
        .map(i128::from)
        .ok_or(CtapError::CborUnexpectedType)
}
pub fn as_bool(v: &Value) -> Result<bool, CtapError> {
    v.as_bool().ok_or(CtapError::CborUnexpectedType)
}
pub fn as_array(v: &Value) -> Result<&[Value], CtapError> {
    v.as_array()
        .map(|a| a.as_slice())
        .ok_or(CtapError::CborUnexpectedType)
}

/// Integer key or value.
pub fn int(i: i64) -> Value {
    Value::Integer(i.into())
}
pub fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}
pub fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

/// Build a map from integer keys (order does not matter: [`encode`] sorts).
pub fn int_map(entries: Vec<(i64, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (int(k), v)).collect())
}

/// Build a map from text keys.
pub fn text_map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (text(k), v)).collect())
}

/// Encode `v` in CTAP2 canonical form (CTAP 2.1 §8).
pub fn encode(v: Value) -> Vec<u8> {
    encode_raw(&canonical(v))
}

/// Encode without reordering (for values already canonical, or on purpose
/// not).
pub fn encode_raw(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail, and every Value is encodable.
    if ciborium::into_writer(v, &mut out).is_err() {
        out.clear();
    }
    out
}

/// Sort every map's entries by the canonical order of their encoded keys:
/// shorter encodings first, then bytewise (RFC 7049 §3.9 as CTAP 2.1 §8
/// adopts it).
pub fn canonical(v: Value) -> Value {
    match v {
        Value::Map(m) => {
            let mut entries: Vec<(Vec<u8>, Value, Value)> = m
                .into_iter()
                .map(|(k, v)| (encode_raw(&k), k, canonical(v)))
                .collect();
            entries.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.cmp(&b.0)));
            Value::Map(entries.into_iter().map(|(_, k, v)| (k, v)).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(canonical).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_orders_int_then_text_keys() {
        let v = Value::Map(vec![
            (text("displayName"), int(1)),
            (text("id"), int(2)),
            (int(-1), int(3)),
            (int(3), int(4)),
            (int(1), int(5)),
            (text("name"), int(6)),
        ]);
        let want = [
            0xA6, 0x01, 0x05, 0x03, 0x04, 0x20, 0x03, 0x62, b'i', b'd', 0x02, 0x64, b'n', b'a',
            b'm', b'e', 0x06, 0x6B, b'd', b'i', b's', b'p', b'l', b'a', b'y', b'N', b'a', b'm',
            b'e', 0x01,
        ];
        assert_eq!(encode(v), want);
    }

    #[test]
    fn parse_rejects_garbage_and_non_maps() {
        assert_eq!(parse_map(&[0xA1]).unwrap_err(), CtapError::InvalidCbor);
        assert_eq!(
            parse_map(&[0x01]).unwrap_err(),
            CtapError::CborUnexpectedType
        );
        assert_eq!(
            parse_map(&[0xA0, 0x00]).unwrap_err(),
            CtapError::InvalidCbor
        );
        let r = parse_map(&[0xA1, 0x01, 0x41, 0xAA]).unwrap();
        assert_eq!(r.bytes(1).unwrap(), Some(&[0xAA][..]));
        assert_eq!(r.text(1).unwrap_err(), CtapError::CborUnexpectedType);
        assert_eq!(r.int(2).unwrap(), None);
    }
}

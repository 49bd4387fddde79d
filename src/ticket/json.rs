//! Strict JSON pre-parse: refuse objects that repeat a member name.
//!
//! serde_json (and with it jsonwebtoken) keeps the last of two equal member
//! names without a word, while other JOSE stacks keep the first, so one ticket
//! could mean two things. RFC 7515 §5.2 step 2 and RFC 7519 §7.2 step 4
//! allow refusing such input; keyward always does. No crate offers this check
//! on top of serde_json, hence this short visitor: it walks the document once,
//! allocates only member names, and relies on serde_json's recursion limit
//! (128) for depth.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Why [`check`] refused a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StrictJsonError {
    /// An object repeats this member name (compared after unescaping).
    Duplicate(String),
    /// Not JSON at all.
    Syntax(String),
}

/// Check that `json` is one well-formed JSON value in which no object repeats
/// a member name.
pub(crate) fn check(json: &[u8]) -> Result<(), StrictJsonError> {
    let dup = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(json);
    let walked = NoDup(&dup).deserialize(&mut de).and_then(|()| de.end());
    match (walked, dup.into_inner()) {
        (_, Some(key)) => Err(StrictJsonError::Duplicate(key)),
        (Err(e), None) => Err(StrictJsonError::Syntax(e.to_string())),
        (Ok(()), None) => Ok(()),
    }
}

/// Walks any JSON value; records the first repeated member name it meets.
#[derive(Clone, Copy)]
struct NoDup<'a>(&'a RefCell<Option<String>>);

impl<'de> DeserializeSeed<'de> for NoDup<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NoDup<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                *self.0.borrow_mut() = Some(key.clone());
                return Err(de::Error::custom(format_args!("duplicate member {key:?}")));
            }
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_distinct_members_at_every_level() {
        assert_eq!(
            check(br#"{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}]}"#),
            Ok(())
        );
    }

    #[test]
    fn finds_duplicates_nested_and_escaped() {
        assert_eq!(
            check(br#"{"a":1,"a":2}"#),
            Err(StrictJsonError::Duplicate("a".into()))
        );
        assert_eq!(
            check(br#"{"x":[{"k":1,"k":1}]}"#),
            Err(StrictJsonError::Duplicate("k".into()))
        );
        // "\u0069ss" is "iss" once unescaped.
        assert_eq!(
            check(br#"{"iss":"a","\u0069ss":"b"}"#),
            Err(StrictJsonError::Duplicate("iss".into()))
        );
    }

    #[test]
    fn refuses_trailing_data_and_garbage() {
        assert!(matches!(check(b"{} {}"), Err(StrictJsonError::Syntax(_))));
        assert!(matches!(check(b"{"), Err(StrictJsonError::Syntax(_))));
    }
}

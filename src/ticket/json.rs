//! Strict JSON pre-parse: refuse objects that repeat a member name.
//!
//! serde_json (and with it jsonwebtoken) keeps the last of two equal member
//! names without a word, while other JOSE stacks keep the first, so one ticket
//! could mean two things. RFC 7515 §5.2 step 2 and RFC 7519 §7.2 step 4
//! allow refusing such input; keyward always does. No crate offers this check
//! on top of serde_json, hence this short visitor: it walks the document once,
//! allocates only escaped member names, and relies on serde_json's recursion limit
//! (128) for depth.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;
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
        // Keys borrow from the input unless they contain escapes; a linear
        // scan beats hashing for the small objects tickets have, and the
        // set switches to hashing past 32 members so a hostile object stays
        // O(n).
        let mut few: Vec<Cow<'de, str>> = Vec::new();
        let mut many: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let repeated = if many.is_empty() && few.len() < 32 {
                let r = few.contains(&key);
                few.push(key.clone());
                r
            } else {
                if many.is_empty() {
                    many.extend(few.drain(..));
                }
                !many.insert(key.clone())
            };
            if repeated {
                *self.0.borrow_mut() = Some(key.clone().into_owned());
                return Err(de::Error::custom(format_args!("duplicate member {key:?}")));
            }
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

/// A member name, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
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
    fn finds_duplicates_in_large_objects() {
        let mut doc = String::from("{");
        for i in 0..100 {
            doc.push_str(&format!("\"k{i}\":{i},"));
        }
        doc.push_str("\"k7\":0}");
        assert_eq!(
            check(doc.as_bytes()),
            Err(StrictJsonError::Duplicate("k7".into()))
        );
    }

    #[test]
    fn refuses_trailing_data_and_garbage() {
        assert!(matches!(check(b"{} {}"), Err(StrictJsonError::Syntax(_))));
        assert!(matches!(check(b"{"), Err(StrictJsonError::Syntax(_))));
    }
}

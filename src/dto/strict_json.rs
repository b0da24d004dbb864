//! The one set of JSON rules for REST request bodies and WebSocket frames alike:
//! - the top level is an object;
//! - a key appears at most once per object (serde_json alone would keep the last one
//!   silently, so two readers of one document could see different requests);
//! - a number without a fractional part is an integer however it is spelled (`5`, `5.0`,
//!   `5e0`), as JSON Schema, and so the OpenAPI document, defines integers.
//!
//! Then the object is deserialized into the request type, whose own rules (required
//! fields, no unknown fields) apply as usual.

use std::fmt;

use serde::{
    Deserialize, Deserializer,
    de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor},
};
use serde_json::{Map, Number, Value};

/// A JSON object read under these rules.
pub struct StrictObject(pub Map<String, Value>);

impl StrictObject {
    /// The request the object describes.
    pub fn into_request<T: DeserializeOwned>(self) -> serde_json::Result<T> {
        serde_json::from_value(Value::Object(self.0))
    }
}

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match deserializer.deserialize_any(StrictVisitor)? {
            Value::Object(object) => Ok(StrictObject(object)),
            _ => Err(de::Error::custom("the body must be a JSON object")),
        }
    }
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        // i64::MAX is not representable as f64; the bound below is the largest f64 that is
        // strictly smaller than 2^63.
        let integral = value.fract() == 0.0 && value >= i64::MIN as f64 && value < 9_223_372_036_854_775_808.0;
        if integral {
            return Ok(Value::from(value as i64));
        }
        Number::from_f64(value).map(Value::Number).ok_or_else(|| E::custom("not a finite number"))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(text: &str) -> serde_json::Result<Value> {
        serde_json::from_str::<StrictObject>(text).map(|object| Value::Object(object.0))
    }

    #[test]
    fn integral_numbers_are_integers_however_spelled() {
        assert_eq!(
            parse(r#"{"a":5.0,"b":5e2,"c":-0.0,"d":[1.0,{"e":2.00}]}"#).unwrap(),
            json!({"a":5,"b":500,"c":0,"d":[1,{"e":2}]})
        );
        assert!(parse(r#"{"a":5.5}"#).unwrap()["a"].is_f64());
        assert!(parse(r#"{"a":1e300}"#).unwrap()["a"].is_f64(), "too large for an integer: stays a float");
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert!(parse(r#"{"a":1,"a":2}"#).unwrap_err().to_string().contains("duplicate key \"a\""));
        assert!(parse(r#"{"a":{"b":1,"b":1}}"#).is_err());
        assert!(parse(r#"{"a":1,"b":{"a":2}}"#).is_ok(), "the same key in different objects is fine");
    }

    #[test]
    fn only_an_object_is_a_request() {
        for text in ["[]", "1", "\"x\"", "null", "true"] {
            let error = parse(text).unwrap_err();
            assert!(error.is_data(), "{text}: {error}");
        }
        assert!(parse("{").unwrap_err().is_eof());
        assert!(parse("{x}").unwrap_err().is_syntax());
    }

    #[test]
    fn the_request_type_still_applies_its_own_rules() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Mark {
            seq: i64,
        }
        let object = serde_json::from_str::<StrictObject>(r#"{"seq":7.0}"#).unwrap();
        assert_eq!(object.into_request::<Mark>().unwrap().seq, 7);
        let object = serde_json::from_str::<StrictObject>(r#"{"seq":7,"x":1}"#).unwrap();
        assert!(object.into_request::<Mark>().is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_parsed_or_refused_without_panicking(text in ".{0,200}") {
            let _ = serde_json::from_str::<StrictObject>(&text);
        }

        /// An object without repeated keys reads as serde_json reads it, and integers
        /// written as floats read as those integers.
        #[test]
        fn an_object_reads_as_written(
            fields in proptest::collection::hash_map("[a-z]{1,8}", proptest::prelude::any::<i32>(), 0..8),
            as_float in proptest::prelude::any::<bool>(),
        ) {
            let text = format!(
                "{{{}}}",
                fields
                    .iter()
                    .map(|(k, v)| if as_float { format!("\"{k}\":{v}.0") } else { format!("\"{k}\":{v}") })
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let parsed = Value::Object(serde_json::from_str::<StrictObject>(&text).unwrap().0);
            let expected: serde_json::Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k, Value::from(v))).collect();
            proptest::prop_assert_eq!(parsed, Value::Object(expected));
        }
    }
}

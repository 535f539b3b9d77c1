//! Document values: a JSON object, or a tombstone (JSON `null`).
//!
//! Values are kept as parsed JSON so that two spellings of the same object
//! (key order, white space) are the same value; `canonical()` is the one text
//! form stores and the wire use.
//!
//! Parsing also brings a value to the form both stores keep and give back
//! alike: PostgreSQL's `jsonb` can not hold U+0000 in a string, so such a
//! value is refused as bad input for every store; and it prints numbers
//! without an exponent and has no negative zero, so a float it would give
//! back in another form takes that form here (see [`normalize`]).

use serde_json::{Map, Number};

/// A settings document's content. `None` is a tombstone: a delete that
/// merges like any other write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value(Option<Map<String, serde_json::Value>>);

/// Bounds on what a caller may store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueLimits {
    /// Largest accepted JSON text, in bytes.
    pub max_bytes: usize,
    /// Deepest accepted nesting of arrays and objects (the top object is 1).
    pub max_depth: usize,
}

impl Default for ValueLimits {
    fn default() -> Self {
        ValueLimits {
            max_bytes: 64 * 1024,
            max_depth: 32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("value is {size} bytes, more than the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("value nests deeper than the limit of {max} levels")]
    TooDeep { max: usize },
    #[error("value is not valid JSON: {0}")]
    NotJson(String),
    #[error("value must be a JSON object or null, got {0}")]
    NotAnObject(&'static str),
    #[error("value must not contain the character U+0000 (\\u0000) in a string or key")]
    NulCharacter,
}

impl Value {
    pub const TOMBSTONE: Value = Value(None);

    /// Parses JSON text from a caller, enforcing `limits` before and after
    /// parsing (the depth check runs on the text so a hostile nesting can not
    /// exhaust the parser's stack).
    pub fn parse(text: &str, limits: ValueLimits) -> Result<Self, ValueError> {
        if text.len() > limits.max_bytes {
            return Err(ValueError::TooLarge {
                size: text.len(),
                max: limits.max_bytes,
            });
        }
        if nesting_depth(text) > limits.max_depth {
            return Err(ValueError::TooDeep {
                max: limits.max_depth,
            });
        }
        let mut parsed: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ValueError::NotJson(e.to_string()))?;
        normalize(&mut parsed)?;
        Self::from_json(parsed)
    }

    /// Parses the JSON text of one top-level field's value (any JSON value),
    /// held to what the field adds to its document: `limits.max_bytes` for
    /// the text, and one level less of nesting than a whole document has.
    pub fn parse_field(text: &str, limits: ValueLimits) -> Result<serde_json::Value, ValueError> {
        if text.len() > limits.max_bytes {
            return Err(ValueError::TooLarge {
                size: text.len(),
                max: limits.max_bytes,
            });
        }
        let max = limits.max_depth.saturating_sub(1);
        if nesting_depth(text) > max {
            return Err(ValueError::TooDeep {
                max: limits.max_depth,
            });
        }
        let mut parsed: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ValueError::NotJson(e.to_string()))?;
        normalize(&mut parsed)?;
        Ok(parsed)
    }

    /// A value from already-parsed JSON (a store row, a test). Not limit-checked.
    pub fn from_json(json: serde_json::Value) -> Result<Self, ValueError> {
        match json {
            serde_json::Value::Null => Ok(Value(None)),
            serde_json::Value::Object(map) => Ok(Value(Some(map))),
            other => Err(ValueError::NotAnObject(kind(&other))),
        }
    }

    pub fn object(map: Map<String, serde_json::Value>) -> Self {
        Value(Some(map))
    }

    pub fn is_tombstone(&self) -> bool {
        self.0.is_none()
    }

    pub fn as_object(&self) -> Option<&Map<String, serde_json::Value>> {
        self.0.as_ref()
    }

    pub fn to_json(&self) -> serde_json::Value {
        match &self.0 {
            None => serde_json::Value::Null,
            Some(map) => serde_json::Value::Object(map.clone()),
        }
    }

    /// The one text form: compact, keys sorted (serde_json's default map is
    /// ordered), `null` for a tombstone.
    pub fn canonical(&self) -> String {
        self.to_json().to_string()
    }
}

fn kind(json: &serde_json::Value) -> &'static str {
    match json {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Refuses what a store can not keep and rewrites what one would give back
/// in another form. Recursion is bounded: the depth was checked on the text.
fn normalize(json: &mut serde_json::Value) -> Result<(), ValueError> {
    match json {
        serde_json::Value::String(s) if s.contains('\0') => Err(ValueError::NulCharacter),
        serde_json::Value::Number(n) => {
            if let Some(number) = as_postgres_gives_back(n) {
                *n = number;
            }
            Ok(())
        }
        serde_json::Value::Array(items) => items.iter_mut().try_for_each(normalize),
        serde_json::Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                return Err(ValueError::NulCharacter);
            }
            map.values_mut().try_for_each(normalize)
        }
        _ => Ok(()),
    }
}

/// The number a float comes back as from PostgreSQL, where that differs.
/// serde_json writes a float of 1e16 or more with an exponent (`1e17`,
/// `1.152921504606847e18`); `numeric` keeps that decimal and prints it in
/// full (`1152921504606847000`), which parses back as an integer when it
/// fits u64 or i64. And `numeric` has no negative zero.
fn as_postgres_gives_back(n: &Number) -> Option<Number> {
    let x = n.as_f64().filter(|_| n.is_f64())?;
    if x == 0.0 && x.is_sign_negative() {
        return Number::from_f64(0.0);
    }
    if x.abs() < 1e16 {
        return None;
    }
    let digits = without_exponent(&n.to_string())?;
    digits
        .parse::<u64>()
        .map(Number::from)
        .or_else(|_| digits.parse::<i64>().map(Number::from))
        .ok()
}

/// `-1.5e17` as `-150000000000000000`; `None` unless the text is an
/// integer written with a positive exponent.
fn without_exponent(text: &str) -> Option<String> {
    let (mantissa, exponent) = text.split_once(['e', 'E'])?;
    let exponent: usize = exponent.trim_start_matches('+').parse().ok()?;
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let zeros = exponent.checked_sub(fraction.len())?;
    Some(format!("{whole}{fraction}{}", "0".repeat(zeros)))
}

/// Deepest bracket nesting in JSON text, skipping brackets inside strings.
/// Runs before parsing, so it must tolerate malformed input.
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for b in text.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ValueLimits = ValueLimits {
        max_bytes: 64,
        max_depth: 3,
    };

    #[test]
    fn spellings_of_one_object_are_one_value() {
        let a = Value::parse(r#"{"b": 1, "a": [true]}"#, LIMITS).unwrap();
        let b = Value::parse(r#"{"a":[true],"b":1}"#, LIMITS).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.canonical(), r#"{"a":[true],"b":1}"#);
    }

    #[test]
    fn the_canonical_form_parses_back_to_itself() {
        // Found by fuzzing: without exact float parsing this number's
        // canonical text 9.9e+33 came back as 9.900000000000001e+33.
        let limits = ValueLimits::default();
        for text in [
            r#"{"a":9900000000000000000000000000000009}"#,
            r#"{"a":18446744073709551616}"#,
            r#"{"a":-9223372036854775809}"#,
            r#"{"a":0.30000000000000004}"#,
            r#"{"a":1e-320}"#,
        ] {
            let canonical = Value::parse(text, limits).unwrap().canonical();
            let again = Value::parse(&canonical, limits).unwrap().canonical();
            assert_eq!(again, canonical, "{text}");
        }
    }

    #[test]
    fn null_is_a_tombstone() {
        let v = Value::parse("null", LIMITS).unwrap();
        assert!(v.is_tombstone());
        assert_eq!(v.canonical(), "null");
    }

    #[test]
    fn only_objects_and_null_are_values() {
        assert_eq!(
            Value::parse("[1]", LIMITS),
            Err(ValueError::NotAnObject("an array"))
        );
        assert_eq!(
            Value::parse("\"x\"", LIMITS),
            Err(ValueError::NotAnObject("a string"))
        );
        assert!(matches!(
            Value::parse("{", LIMITS),
            Err(ValueError::NotJson(_))
        ));
        assert!(matches!(
            Value::parse("", LIMITS),
            Err(ValueError::NotJson(_))
        ));
    }

    #[test]
    fn limits_are_enforced() {
        let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(64));
        assert!(matches!(
            Value::parse(&big, LIMITS),
            Err(ValueError::TooLarge { .. })
        ));
        assert_eq!(
            Value::parse(r#"{"a":{"b":{"c":{}}}}"#, LIMITS),
            Err(ValueError::TooDeep { max: 3 })
        );
        assert!(Value::parse(r#"{"a":{"b":{}}}"#, LIMITS).is_ok());
    }

    #[test]
    fn a_nul_character_is_refused_in_strings_and_keys_at_any_depth() {
        let limits = ValueLimits::default();
        for text in [
            r#"{"a":"\u0000"}"#,
            r#"{"a":["x","b\u0000c"]}"#,
            r#"{"a":{"\u0000":1}}"#,
            r#"{"\u0000":null}"#,
        ] {
            assert_eq!(
                Value::parse(text, limits),
                Err(ValueError::NulCharacter),
                "{text}"
            );
        }
        assert!(Value::parse(r#"{"a":"\u0001"}"#, limits).is_ok());
    }

    #[test]
    fn floats_come_back_as_postgres_gives_them_back() {
        let limits = ValueLimits::default();
        let canonical = |text: &str| Value::parse(text, limits).unwrap().canonical();
        assert_eq!(canonical(r#"{"a":1e17}"#), r#"{"a":100000000000000000}"#);
        assert_eq!(canonical(r#"{"a":-1e17}"#), r#"{"a":-100000000000000000}"#);
        assert_eq!(
            canonical(r#"{"a":1.152921504606847e18}"#),
            r#"{"a":1152921504606847000}"#
        );
        // Below 1e16 a float keeps its decimal point; past u64 and i64 it
        // stays a float, as PostgreSQL's text then parses back to one.
        assert_eq!(canonical(r#"{"a":1e15}"#), r#"{"a":1000000000000000.0}"#);
        assert_eq!(canonical(r#"{"a":2e19}"#), r#"{"a":2e+19}"#);
        assert_eq!(canonical(r#"{"a":-1e19}"#), r#"{"a":-1e+19}"#);
        assert_eq!(canonical(r#"{"a":[1.0,0.5]}"#), r#"{"a":[1.0,0.5]}"#);
        assert_eq!(canonical(r#"{"a":[-0.0,-0]}"#), r#"{"a":[0.0,0.0]}"#);
        // 2^60 is the float nearest to both; the decimal written is kept,
        // as PostgreSQL keeps it.
        assert_eq!(
            canonical(r#"{"a":1152921504606846976.0}"#),
            r#"{"a":1152921504606847000}"#
        );
    }

    #[test]
    fn brackets_inside_strings_do_not_count_as_nesting() {
        assert!(Value::parse(r#"{"a":"[[[[\"{{{{"}"#, LIMITS).is_ok());
    }

    #[test]
    fn hostile_nesting_is_rejected_without_parsing() {
        let deep = "[".repeat(100_000);
        let limits = ValueLimits {
            max_bytes: 1 << 20,
            max_depth: 32,
        };
        assert_eq!(
            Value::parse(&deep, limits),
            Err(ValueError::TooDeep { max: 32 })
        );
    }
}

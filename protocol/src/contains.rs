//! JSON containment with PostgreSQL's `jsonb @>` semantics, so the embedded
//! store answers `Query` exactly as PostgreSQL does:
//! - an object contains another if every key of the other is present and its
//!   value is contained;
//! - an array contains another if every element of the other is contained in
//!   some element of it (order and duplicates do not matter);
//! - scalars contain only an equal scalar (numbers compare by value).

use serde_json::Value as Json;

pub fn contains(haystack: &Json, needle: &Json) -> bool {
    match (haystack, needle) {
        (Json::Object(h), Json::Object(n)) => n
            .iter()
            .all(|(key, nv)| h.get(key).is_some_and(|hv| contains(hv, nv))),
        (Json::Array(h), Json::Array(n)) => n
            .iter()
            .all(|nv| h.iter().any(|hv| element_contains(hv, nv))),
        (Json::Number(h), Json::Number(n)) => numbers_equal(h, n),
        (h, n) => !h.is_array() && !h.is_object() && h == n,
    }
}

/// Inside arrays PostgreSQL matches scalars to scalars and containers to
/// containers of the same kind.
fn element_contains(haystack: &Json, needle: &Json) -> bool {
    match (haystack, needle) {
        (Json::Object(_), Json::Object(_)) | (Json::Array(_), Json::Array(_)) => {
            contains(haystack, needle)
        }
        (Json::Object(_) | Json::Array(_), _) | (_, Json::Object(_) | Json::Array(_)) => false,
        _ => contains(haystack, needle),
    }
}

/// Numbers compare as PostgreSQL's `numeric` compares the text it is given:
/// by exact decimal value. Comparing an integer with a float through `f64`
/// would call 2^60 and 1.152921504606847e18 equal, which PostgreSQL does not.
fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    let integer = |n: &serde_json::Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (integer(a), integer(b), a.as_f64(), b.as_f64()) {
        (Some(x), Some(y), _, _) => x == y,
        // Two floats: each is the shortest text of its f64, so equal values
        // are equal f64s.
        (None, None, Some(x), Some(y)) => x == y,
        _ => Decimal::of(&a.to_string()) == Decimal::of(&b.to_string()),
    }
}

/// A number's exact value as `digits × 10^exponent`, with no leading or
/// trailing zeros in `digits` (so equal values have equal forms; zero is
/// empty digits, whatever its sign).
#[derive(Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    digits: String,
    exponent: i64,
}

impl Decimal {
    /// `text` is JSON number syntax, as serde_json writes it.
    fn of(text: &str) -> Decimal {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(at) => (
                &unsigned[..at],
                unsigned[at + 1..].parse::<i64>().unwrap_or(0),
            ),
            None => (unsigned, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all = format!("{whole}{fraction}");
        let significant = all.trim_start_matches('0');
        let digits = significant.trim_end_matches('0');
        if digits.is_empty() {
            return Decimal {
                negative: false,
                digits: String::new(),
                exponent: 0,
            };
        }
        let trailing = (significant.len() - digits.len()) as i64;
        Decimal {
            negative,
            digits: digits.to_owned(),
            exponent: exponent - fraction.len() as i64 + trailing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::contains;
    use serde_json::json;

    #[test]
    fn objects_match_on_a_subset_of_keys() {
        let doc = json!({"alerts": {"airports": ["SEA", "LAX"], "email": true}, "theme": "dark"});
        assert!(contains(&doc, &json!({})));
        assert!(contains(&doc, &json!({"theme": "dark"})));
        assert!(contains(&doc, &json!({"alerts": {"airports": ["SEA"]}})));
        assert!(contains(
            &doc,
            &json!({"alerts": {"airports": ["LAX", "SEA", "SEA"]}})
        ));
        assert!(!contains(&doc, &json!({"alerts": {"airports": ["JFK"]}})));
        assert!(!contains(&doc, &json!({"theme": "light"})));
        assert!(!contains(&doc, &json!({"missing": null})));
    }

    #[test]
    fn arrays_hold_scalars_and_containers_apart() {
        assert!(!contains(&json!([[1, 2]]), &json!([1])));
        assert!(contains(&json!([[1, 2], 3]), &json!([[1]])));
        assert!(contains(&json!([{"a": 1, "b": 2}]), &json!([{"a": 1}])));
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(contains(&json!({"n": 1.0}), &json!({"n": 1})));
        assert!(contains(&json!({"n": 0.0}), &json!({"n": -0.0})));
        assert!(contains(&json!({"n": 1.5e3}), &json!({"n": 1500})));
        assert!(!contains(&json!({"n": 1.5}), &json!({"n": 1})));
    }

    #[test]
    fn numbers_compare_exactly_not_through_f64() {
        // 2^60 is an f64 exactly, but its shortest text 1.152921504606847e18
        // is another number, and that text is what PostgreSQL compares.
        let two_to_60 = json!({"n": 1_u64 << 60});
        assert!(!contains(&two_to_60, &json!({"n": (1_u64 << 60) as f64})));
        assert!(!contains(
            &json!({"n": u64::MAX}),
            &json!({"n": u64::MAX as f64})
        ));
        assert!(contains(
            &json!({"n": 1e20}),
            &json!({"n": 100_000_000_000_000_000_000.0})
        ));
    }

    #[test]
    fn decimals_are_normalised() {
        use super::Decimal;
        let of = Decimal::of;
        assert_eq!(of("1500"), of("1.5e3"));
        assert_eq!(of("1.5e+3"), of("15e2"));
        assert_eq!(of("0.001"), of("1e-3"));
        assert_eq!(of("-0.0"), of("0"));
        assert_ne!(of("-1"), of("1"));
        assert_ne!(of("10"), of("1"));
    }
}

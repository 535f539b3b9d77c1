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

fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
        (Some(x), Some(y), _, _) => x == y,
        (_, _, Some(x), Some(y)) => x == y,
        _ => a.as_f64() == b.as_f64(),
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
        assert!(!contains(&json!({"n": 1.5}), &json!({"n": 1})));
    }
}

//! Differential test: `Query`'s filter means the same on both stores. The
//! embedded store filters with `settings_sync_protocol::contains`;
//! PostgreSQL runs `value @> filter::jsonb`. Random documents and filters,
//! both in the canonical text the service stores and binds, are judged by
//! both and must agree pair by pair.
//!
//! Numbers are drawn from spellings that are easy to get wrong: `1` and
//! `1.0` and `1e0`; integers past 2^53, past u64 and i64; floats whose
//! shortest text is not their exact binary value (2^60); `-0`.
//!
//! A planted bug must be caught: numbers compared through `f64`.

use rand::prelude::*;
use serde_json::{Map, Number, Value as Json};
use settings_sync_protocol::contains::contains;
use settings_sync_protocol::{Value, ValueLimits};
use settings_sync_tests::postgres;
use sqlx::Connection;

const PAIRS: usize = 4000;

const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "0.0",
    "1",
    "1.0",
    "1e0",
    "-1",
    "10",
    "1e1",
    "1.5",
    "15e-1",
    "0.1",
    "0.30000000000000004",
    "1e-7",
    "1e-320",
    "9007199254740992",
    "9007199254740993",
    "9.007199254740993e15",
    "1152921504606846976",
    "1.152921504606847e18",
    "18446744073709551615",
    "18446744073709551616",
    "1.8446744073709552e19",
    "-9223372036854775808",
    "-9223372036854775809",
    "9900000000000000000000000000000009",
    "9.9e33",
    "1e308",
];

const KEYS: &[&str] = &["a", "b", "c"];
const STRINGS: &[&str] = &["SEA", "LAX", "", "1"];

fn number(rng: &mut StdRng) -> Json {
    serde_json::from_str(NUMBERS.choose(rng).expect("numbers")).expect("a JSON number")
}

fn scalar(rng: &mut StdRng) -> Json {
    match rng.random_range(0..10) {
        0..=5 => number(rng),
        6 | 7 => Json::String(STRINGS.choose(rng).expect("strings").to_string()),
        8 => Json::Bool(rng.random()),
        _ => Json::Null,
    }
}

fn any(rng: &mut StdRng, depth: u32) -> Json {
    match rng.random_range(0..if depth == 0 { 1 } else { 4 }) {
        0 | 1 => scalar(rng),
        2 => Json::Array(
            (0..rng.random_range(0..4))
                .map(|_| any(rng, depth - 1))
                .collect(),
        ),
        _ => Json::Object(object(rng, depth - 1)),
    }
}

fn object(rng: &mut StdRng, depth: u32) -> Map<String, Json> {
    let mut map = Map::new();
    for key in KEYS {
        if rng.random_bool(0.6) {
            map.insert(key.to_string(), any(rng, depth));
        }
    }
    map
}

/// A filter built from `doc`, so that containment is often true: a subset
/// of its keys and elements, now and then with a number spelled anew.
fn part_of(rng: &mut StdRng, doc: &Json) -> Json {
    match doc {
        Json::Object(map) => {
            let mut part = Map::new();
            for (key, value) in map {
                if rng.random_bool(0.7) {
                    part.insert(key.clone(), part_of(rng, value));
                }
            }
            Json::Object(part)
        }
        Json::Array(items) => {
            let mut part = Vec::new();
            for value in items {
                if rng.random_bool(0.7) {
                    part.push(part_of(rng, value));
                }
            }
            Json::Array(part)
        }
        Json::Number(_) if rng.random_bool(0.5) => number(rng),
        other => other.clone(),
    }
}

/// A value as the service stores or binds it: parsed, then canonical.
fn canonical(json: &Json) -> String {
    Value::parse(&json.to_string(), ValueLimits::default())
        .expect("generated values are within limits")
        .canonical()
}

/// `(document, filter)` pairs in canonical text.
fn pairs(seed: u64) -> Vec<(String, String)> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..PAIRS)
        .map(|_| {
            let doc = Json::Object(object(&mut rng, 2));
            let filter = if rng.random_bool(0.7) {
                part_of(&mut rng, &doc)
            } else {
                Json::Object(object(&mut rng, 2))
            };
            (canonical(&doc), canonical(&filter))
        })
        .collect()
}

/// PostgreSQL's verdict on every pair, in one statement.
async fn postgres_verdicts(pairs: &[(String, String)]) -> Vec<bool> {
    let mut connection = sqlx::PgConnection::connect(&postgres::admin_url())
        .await
        .expect("connecting to the test cluster");
    let (docs, filters): (Vec<&str>, Vec<&str>) =
        pairs.iter().map(|(d, f)| (d.as_str(), f.as_str())).unzip();
    sqlx::query_scalar(
        "SELECT d::jsonb @> f::jsonb FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS p(d, f, i)
         ORDER BY i",
    )
    .bind(docs)
    .bind(filters)
    .fetch_all(&mut connection)
    .await
    .expect("asking PostgreSQL")
}

/// The pairs on which `rule` and PostgreSQL disagree.
fn disagreements<'a>(
    pairs: &'a [(String, String)],
    verdicts: &[bool],
    rule: impl Fn(&Json, &Json) -> bool,
) -> Vec<(&'a str, &'a str, bool)> {
    pairs
        .iter()
        .zip(verdicts)
        .filter_map(|((doc, filter), &postgres)| {
            let parse = |t: &str| serde_json::from_str::<Json>(t).expect("canonical text");
            (rule(&parse(doc), &parse(filter)) != postgres).then_some((
                doc.as_str(),
                filter.as_str(),
                postgres,
            ))
        })
        .collect()
}

fn seed() -> u64 {
    let seed = rand::rng().random();
    println!("seed {seed} (pairs are generated from it)");
    seed
}

#[tokio::test]
async fn the_embedded_filter_agrees_with_postgres_jsonb_containment() {
    let pairs = pairs(seed());
    let verdicts = postgres_verdicts(&pairs).await;
    let matched = verdicts.iter().filter(|&&v| v).count();
    println!("{} pairs, {matched} contained per PostgreSQL", pairs.len());
    assert!(
        matched > PAIRS / 5 && matched < PAIRS * 4 / 5,
        "the generator should give both verdicts often, got {matched} of {PAIRS} contained"
    );
    let wrong = disagreements(&pairs, &verdicts, contains);
    assert!(
        wrong.is_empty(),
        "{} disagreements (document, filter, PostgreSQL's verdict), first: {:#?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
}

/// Every number replaced by the `f64` nearest to it.
fn through_f64(json: &Json) -> Json {
    match json {
        Json::Number(n) => n
            .as_f64()
            .and_then(Number::from_f64)
            .map_or(Json::Null, Json::Number),
        Json::Array(items) => Json::Array(items.iter().map(through_f64).collect()),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), through_f64(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The planted bug: comparing numbers as `f64` (as this crate once did)
/// calls 2^60 and 1.152921504606847e18 equal; PostgreSQL does not.
#[tokio::test]
async fn numbers_compared_through_f64_are_caught() {
    let pairs = pairs(seed());
    let verdicts = postgres_verdicts(&pairs).await;
    let wrong = disagreements(&pairs, &verdicts, |doc, filter| {
        contains(&through_f64(doc), &through_f64(filter))
    });
    println!(
        "f64 comparison: {} disagreements, e.g. {:?}",
        wrong.len(),
        wrong.first()
    );
    assert!(
        !wrong.is_empty(),
        "comparing numbers through f64 went unnoticed"
    );
}

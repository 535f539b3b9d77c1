//! The per-field model check at its two default bounds (or both at
//! `SETTINGS_SYNC_FIELD_MODEL_BOUNDS`): the per-field rules keep P1–P5 per
//! field and P6; the planted bugs are caught, each with a readable history.

use settings_sync_model::field::{self, FieldRules};
use settings_sync_model::{Bounds, Outcome, Property};

fn run(rules: FieldRules, bounds: Bounds) -> Outcome<FieldRules> {
    let outcome = field::check(rules, field::bounds_from_env(bounds));
    println!("{outcome}");
    outcome
}

fn expect_violation(rules: FieldRules, expected: &[Property]) {
    let outcome = run(rules, field::THREE_CLIENTS);
    let found = outcome
        .counterexample
        .unwrap_or_else(|| panic!("{rules:?}: the checker found no counterexample"));
    assert!(
        expected.contains(&found.violation.property),
        "{rules:?}: expected one of {expected:?}, found {:?}: {}",
        found.violation.property,
        found.violation.detail
    );
}

fn expect_every_property(bounds: Bounds) {
    let outcome = run(FieldRules::Correct, bounds);
    if let Some(c) = &outcome.counterexample {
        panic!(
            "{:?}: {}\n{}",
            c.violation.property, c.violation.detail, c.history
        );
    }
    assert_eq!(outcome.truncated, 0, "the search must be exhaustive");
    assert!(
        outcome.states > 100_000,
        "the model explored too little to mean anything"
    );
}

#[test]
fn the_per_field_rules_keep_every_property_with_three_clients() {
    expect_every_property(field::THREE_CLIENTS);
}

#[test]
fn the_per_field_rules_keep_every_property_over_three_edits() {
    expect_every_property(field::THREE_EDITS);
}

#[test]
fn a_planted_comparison_with_the_document_stamp_is_caught() {
    // Found first as P1 (BFS checks the two lost edits' state before the
    // deliveries); `field::properties`' tests show P6 catching it alone.
    expect_violation(
        FieldRules::DocumentStamp,
        &[Property::FieldIndependence, Property::Convergence],
    );
}

#[test]
fn a_planted_backend_that_forgets_field_tombstones_is_caught() {
    expect_violation(
        FieldRules::ForgetTombstones,
        &[
            Property::Monotonic,
            Property::NoCausalRegression,
            Property::NothingAcknowledgedLost,
            Property::FieldIndependence,
            Property::Convergence,
        ],
    );
}

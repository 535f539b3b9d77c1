//! The model check at the default bounds (or `SETTINGS_SYNC_MODEL_BOUNDS`):
//! the protocol keeps every property; the seed post's rules and planted bugs
//! are caught, each with a readable history. The mutations stay in the
//! suite for good: they show the checker can fail.

use settings_sync_model::{Bounds, Outcome, Property, Rules, check};

fn run(rules: Rules) -> Outcome {
    let outcome = check(rules, Bounds::from_env());
    println!("{outcome}");
    outcome
}

fn expect_violation(rules: Rules, expected: &[Property]) {
    let outcome = run(rules);
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

#[test]
fn the_protocol_keeps_every_property_in_every_reachable_state() {
    let outcome = run(Rules::Correct);
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
fn the_seeds_original_rule_is_caught_not_converging() {
    expect_violation(Rules::SeedOriginal, &[Property::Convergence]);
}

#[test]
fn the_seeds_fixed_rule_is_caught_losing_the_second_click() {
    expect_violation(
        Rules::SeedFixed,
        &[
            Property::NoFlicker,
            Property::NoCausalRegression,
            Property::NothingAcknowledgedLost,
        ],
    );
}

#[test]
fn a_planted_clock_only_comparison_is_caught() {
    expect_violation(Rules::ClockOnly, &[Property::Convergence]);
}

#[test]
fn a_planted_client_that_does_not_catch_up_its_clock_is_caught() {
    expect_violation(
        Rules::NoClockCatchUp,
        &[
            Property::NoFlicker,
            Property::NoCausalRegression,
            Property::NothingAcknowledgedLost,
            Property::Convergence,
        ],
    );
}

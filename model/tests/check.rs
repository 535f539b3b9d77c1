//! The model check at CI bounds: the protocol passes; the seed post's rules
//! and a planted bug are caught, each with a readable history.

use settings_sync_model::properties::Property;
use settings_sync_model::{Bounds, Rules, check};

/// The CI bounds, or those of `SETTINGS_SYNC_MODEL_BOUNDS=clients,edits,resets,in_flight`.
fn bounds() -> Vec<Bounds> {
    match std::env::var("SETTINGS_SYNC_MODEL_BOUNDS") {
        Ok(text) => vec![
            Bounds::parse(&text)
                .expect("SETTINGS_SYNC_MODEL_BOUNDS is clients,edits,resets,in_flight"),
        ],
        Err(_) => Bounds::CI.to_vec(),
    }
}

fn expect_violation(rules: Rules, property: Property) {
    let outcome = check(rules, bounds()[0]);
    let (violation, history) = outcome
        .counterexample
        .expect("the checker must find a counterexample");
    println!(
        "{:?} violates {:?}: {}\n{history}",
        rules, violation.property, violation.detail
    );
    println!(
        "found after exploring {} states in {:?}",
        outcome.states, outcome.elapsed
    );
    assert_eq!(violation.property, property, "{}", violation.detail);
}

#[test]
fn the_protocol_keeps_every_property_in_every_reachable_state() {
    for bounds in bounds() {
        let outcome = check(Rules::Correct, bounds);
        println!(
            "{bounds:?}: {} states, {} transitions explored in {:?}",
            outcome.states, outcome.transitions, outcome.elapsed
        );
        if let Some((violation, history)) = outcome.counterexample {
            panic!("{:?}: {}\n{history}", violation.property, violation.detail);
        }
        assert!(
            outcome.states > 1000,
            "the model explored too little to mean anything"
        );
    }
}

#[test]
fn the_seeds_original_rule_is_caught_not_converging() {
    expect_violation(Rules::SeedOriginal, Property::Convergence);
}

#[test]
fn the_seeds_fixed_rule_is_caught_losing_the_second_click() {
    expect_violation(Rules::SeedFixed, Property::NoFlicker);
}

#[test]
fn a_planted_clock_only_comparison_is_caught() {
    expect_violation(Rules::ClockOnly, Property::Convergence);
}

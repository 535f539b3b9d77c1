//! Which Kubernetes Events a status change deserves. Events are for what
//! *changed* (`kubectl describe` shows a history); the status says what *is*.
//! Deciding from the old and new status keeps repeated reconciles of an
//! unchanged resource from flooding the event stream.

use kube::runtime::events::{Event, EventType};

use crate::crd::SettingsSyncStatus;

fn condition<'a>(
    status: Option<&'a SettingsSyncStatus>,
    type_: &str,
) -> Option<(&'a str, &'a str, &'a str)> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.as_str(), c.reason.as_str(), c.message.as_str()))
}

fn event(type_: EventType, reason: &str, note: &str) -> Event {
    Event {
        type_,
        reason: reason.into(),
        note: Some(note.into()),
        action: "Reconcile".into(),
        secondary: None,
    }
}

pub fn transitions(previous: Option<&SettingsSyncStatus>, next: &SettingsSyncStatus) -> Vec<Event> {
    let mut events = Vec::new();
    let before = |t| condition(previous, t);
    let after = |t| condition(Some(next), t);

    match (before("Degraded"), after("Degraded")) {
        (old, Some(("True", reason, message)))
            if old.map(|c| (c.0, c.1)) != Some(("True", reason)) =>
        {
            events.push(event(EventType::Warning, reason, message));
        }
        (Some(("True", ..)), Some(("False", ..))) => {
            events.push(event(
                EventType::Normal,
                "Recovered",
                "no problems found any more",
            ));
        }
        _ => {}
    }
    if let Some((_, "MigrationRunning", message)) = after("Progressing")
        && before("Progressing").map(|c| c.1) != Some("MigrationRunning")
    {
        events.push(event(EventType::Normal, "MigrationStarted", message));
    }
    if let Some(image) = &next.migrated_image
        && previous.and_then(|p| p.migrated_image.as_ref()) != Some(image)
    {
        events.push(event(
            EventType::Normal,
            "MigrationSucceeded",
            &format!("database migrated for {image}"),
        ));
    }
    if let Some(("True", reason, message)) = after("Insecure")
        && before("Insecure").map(|c| c.0) != Some("True")
    {
        events.push(event(EventType::Warning, reason, message));
    }
    match (before("Available").map(|c| c.0), after("Available")) {
        (Some("True"), Some(("False", reason, message))) => {
            events.push(event(EventType::Warning, reason, message));
        }
        (old, Some(("True", _, message))) if old != Some("True") => {
            events.push(event(EventType::Normal, "Available", message));
        }
        _ => {}
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn status(conditions: &[(&str, &str, &str)], migrated: Option<&str>) -> SettingsSyncStatus {
        SettingsSyncStatus {
            migrated_image: migrated.map(String::from),
            conditions: conditions
                .iter()
                .map(|(t, s, r)| Condition {
                    type_: t.to_string(),
                    status: s.to_string(),
                    reason: r.to_string(),
                    message: format!("{t} is {s}"),
                    observed_generation: None,
                    last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                })
                .collect(),
            ..SettingsSyncStatus::default()
        }
    }

    fn reasons(events: Vec<Event>) -> Vec<String> {
        events.into_iter().map(|e| e.reason).collect()
    }

    #[test]
    fn becoming_degraded_is_a_warning_with_the_reason() {
        let next = status(&[("Degraded", "True", "DatabaseSecretMissing")], None);
        let events = transitions(None, &next);
        assert_eq!(events[0].type_, EventType::Warning);
        assert_eq!(reasons(events), ["DatabaseSecretMissing"]);
    }

    #[test]
    fn an_unchanged_status_makes_no_events() {
        let same = status(
            &[
                ("Degraded", "True", "DatabaseSecretMissing"),
                ("Available", "True", "ReplicasReady"),
            ],
            Some("img"),
        );
        assert!(transitions(Some(&same), &same).is_empty());
    }

    #[test]
    fn running_without_authentication_is_a_warning_once() {
        let insecure = status(&[("Insecure", "True", "InsecureNoAuth")], None);
        let events = transitions(None, &insecure);
        assert_eq!(events[0].type_, EventType::Warning);
        assert_eq!(reasons(events), ["InsecureNoAuth"]);
        assert!(transitions(Some(&insecure), &insecure).is_empty());
        let secure = status(&[("Insecure", "False", "TokensRequired")], None);
        assert!(transitions(None, &secure).is_empty());
    }

    #[test]
    fn recovery_migration_and_availability_are_announced() {
        let before = status(&[("Degraded", "True", "MigrationFailed")], None);
        let after = status(
            &[
                ("Degraded", "False", "AsExpected"),
                ("Available", "True", "ReplicasReady"),
            ],
            Some("img:2"),
        );
        assert_eq!(
            reasons(transitions(Some(&before), &after)),
            ["Recovered", "MigrationSucceeded", "Available"]
        );
    }
}

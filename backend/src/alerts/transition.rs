//! One alert instance's next state, from what an evaluation saw: inactive → pending → firing →
//! resolved, with `for`, `keep_firing_for`, repeats and escalation. Pure, so that every path
//! is tested without a clock or a database.

use vigil_proto::alerts::{AlertState, NotificationEvent};

use crate::store::AlertInstanceRow;

const EVALUATOR: &str = "evaluator";

/// A rule's delays, in milliseconds (`None`: never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub pending_for: i64,
    pub keep_firing_for: i64,
    pub repeat_every: Option<i64>,
    pub escalate_after: Option<i64>,
}

/// What the evaluation saw of an instance that holds: its value, labels and annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub value: Option<f64>,
    pub labels: String,
    pub annotations: String,
}

/// A change to write: the new row, its timeline entry, and the notifications it causes (with
/// their sequence within the episode).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Who made it, for the timeline.
    pub actor: &'static str,
    pub instance: AlertInstanceRow,
    pub event: Option<(AlertState, String)>,
    pub notify: Vec<(NotificationEvent, i64)>,
}

/// The step for one instance (`previous` as stored, `seen` when the condition holds now);
/// `None` when nothing is to be written.
pub fn step(
    fingerprint: &str,
    rule_id: i64,
    previous: Option<&AlertInstanceRow>,
    seen: Option<Seen>,
    now: i64,
    timing: Timing,
) -> Option<Change> {
    let previous_state = previous.map(|row| super::state_of(&row.state));
    match (previous, previous_state, seen) {
        (_, None | Some(AlertState::Resolved | AlertState::Inactive), Some(seen)) => {
            let mut instance = AlertInstanceRow {
                fingerprint: fingerprint.to_owned(),
                rule_id,
                source: previous.map_or_else(|| "rule".to_owned(), |previous| previous.source.clone()),
                ends_at_millis: None,
                labels: seen.labels,
                annotations: seen.annotations,
                state: AlertState::Pending.as_str().to_owned(),
                value: seen.value,
                active_since_millis: now,
                last_active_millis: now,
                firing_since_millis: None,
                resolved_at_millis: None,
                episode: previous.map_or(0, |previous| previous.episode),
                acknowledged_by: None,
                acknowledged_at_millis: None,
                acknowledgement_note: None,
                repeats: 0,
                escalated: false,
                notified: false,
            };
            if timing.pending_for <= 0 {
                return Some(fire(instance, now));
            }
            instance.state = AlertState::Pending.as_str().to_owned();
            Some(Change {
                actor: EVALUATOR,
                instance,
                event: Some((AlertState::Pending, String::new())),
                notify: Vec::new(),
            })
        }
        (Some(previous), Some(AlertState::Pending), Some(seen)) => {
            let unchanged = same(previous, &seen);
            let instance = AlertInstanceRow {
                labels: seen.labels,
                annotations: seen.annotations,
                value: seen.value,
                last_active_millis: now,
                ..previous.clone()
            };
            if now - instance.active_since_millis >= timing.pending_for {
                return Some(fire(instance, now));
            }
            // Nothing to write while it waits with the same value.
            (!unchanged).then_some(Change { actor: EVALUATOR, instance, event: None, notify: Vec::new() })
        }
        (Some(previous), Some(AlertState::Pending), None) => Some(Change {
            actor: EVALUATOR,
            instance: AlertInstanceRow { state: AlertState::Inactive.as_str().to_owned(), ..previous.clone() },
            event: Some((AlertState::Inactive, "the condition stopped holding before it fired".to_owned())),
            notify: Vec::new(),
        }),
        (Some(previous), Some(AlertState::Firing), Some(seen)) => {
            // `last_active` only matters to `keep_firing_for`: without it, an alert that fires
            // on with the same value writes nothing.
            let quiet = same(previous, &seen) && timing.keep_firing_for <= 0;
            let instance = AlertInstanceRow {
                labels: seen.labels,
                annotations: seen.annotations,
                value: seen.value,
                last_active_millis: now,
                ..previous.clone()
            };
            let change = reminders(instance, now, timing);
            (!(quiet && change.notify.is_empty())).then_some(change)
        }
        (Some(previous), Some(AlertState::Firing), None) => {
            if now - previous.last_active_millis < timing.keep_firing_for {
                let change = reminders(previous.clone(), now, timing);
                return (!change.notify.is_empty()).then_some(change);
            }
            let instance = AlertInstanceRow {
                state: AlertState::Resolved.as_str().to_owned(),
                resolved_at_millis: Some(now),
                ..previous.clone()
            };
            Some(Change {
                actor: EVALUATOR,
                instance,
                event: Some((AlertState::Resolved, String::new())),
                notify: vec![(NotificationEvent::Resolved, 0)],
            })
        }
        _ => None,
    }
}

/// Whether an evaluation saw what is stored already.
fn same(previous: &AlertInstanceRow, seen: &Seen) -> bool {
    previous.value == seen.value && previous.labels == seen.labels && previous.annotations == seen.annotations
}

/// Pending (or new) to firing: a new episode, told to the rule's channels.
pub fn fire(instance: AlertInstanceRow, now: i64) -> Change {
    let instance = AlertInstanceRow {
        state: AlertState::Firing.as_str().to_owned(),
        firing_since_millis: Some(now),
        episode: instance.episode + 1,
        repeats: 0,
        escalated: false,
        notified: false,
        ..instance
    };
    Change {
        actor: EVALUATOR,
        instance,
        event: Some((AlertState::Firing, String::new())),
        notify: vec![(NotificationEvent::Firing, 0)],
    }
}

/// A firing alert nobody acknowledged: repeated every `repeat_every`, escalated once after
/// `escalate_after`.
fn reminders(mut instance: AlertInstanceRow, now: i64, timing: Timing) -> Change {
    let mut notify = Vec::new();
    let firing_since = instance.firing_since_millis.unwrap_or(now);
    if instance.acknowledged_by.is_none() {
        if let Some(every) = timing.repeat_every.filter(|every| *every > 0)
            && now - firing_since >= every * (instance.repeats + 1)
        {
            instance.repeats = (now - firing_since) / every;
            notify.push((NotificationEvent::Repeat, instance.repeats));
        }
        if let Some(after) = timing.escalate_after
            && !instance.escalated
            && now - firing_since >= after
        {
            instance.escalated = true;
            notify.push((NotificationEvent::Escalation, 0));
        }
    }
    Change { actor: EVALUATOR, instance, event: None, notify }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: Timing = Timing { pending_for: 60_000, keep_firing_for: 0, repeat_every: None, escalate_after: None };

    fn seen(value: f64) -> Option<Seen> {
        Some(Seen { value: Some(value), labels: "{}".to_owned(), annotations: "{}".to_owned() })
    }

    fn run(previous: Option<&AlertInstanceRow>, holds: Option<f64>, now: i64, timing: Timing) -> Option<Change> {
        step("f", 1, previous, holds.and_then(seen), now, timing)
    }

    #[test]
    fn pending_then_firing_then_resolved_with_one_notification_each() {
        assert_eq!(run(None, None, 0, TIMING), None, "nothing holds, nothing is written");
        let pending = run(None, Some(5.0), 0, TIMING).unwrap();
        assert_eq!((pending.instance.state.as_str(), pending.notify.len()), ("pending", 0));
        assert_eq!(run(Some(&pending.instance), Some(5.0), 20_000, TIMING), None, "the same value: nothing to write");
        let still = run(Some(&pending.instance), Some(6.0), 30_000, TIMING).unwrap();
        assert_eq!((still.instance.state.as_str(), still.event, still.instance.value), ("pending", None, Some(6.0)));
        let firing = run(Some(&still.instance), Some(7.0), 60_000, TIMING).unwrap();
        assert_eq!(firing.instance.state, "firing");
        assert_eq!((firing.instance.episode, firing.notify.clone()), (1, vec![(NotificationEvent::Firing, 0)]));
        let again = run(Some(&firing.instance), Some(8.0), 120_000, TIMING).unwrap();
        assert!(again.notify.is_empty() && again.event.is_none(), "firing stays quiet: {again:?}");
        assert_eq!(run(Some(&again.instance), Some(8.0), 150_000, TIMING), None, "the same value: nothing to write");
        let resolved = run(Some(&again.instance), None, 180_000, TIMING).unwrap();
        assert_eq!(resolved.instance.state, "resolved");
        assert_eq!(resolved.notify, vec![(NotificationEvent::Resolved, 0)]);
        assert_eq!(run(Some(&resolved.instance), None, 240_000, TIMING), None);
        // It holds again: a new pending, then a new episode.
        let back = run(Some(&resolved.instance), Some(1.0), 300_000, TIMING).unwrap();
        assert_eq!((back.instance.state.as_str(), back.instance.episode), ("pending", 1));
        let refired = run(Some(&back.instance), Some(1.0), 360_000, TIMING).unwrap();
        assert_eq!((refired.instance.episode, refired.notify.len()), (2, 1));
    }

    #[test]
    fn pending_that_stops_holding_never_notifies() {
        let pending = run(None, Some(5.0), 0, TIMING).unwrap();
        let gone = run(Some(&pending.instance), None, 10_000, TIMING).unwrap();
        assert_eq!((gone.instance.state.as_str(), gone.notify.len()), ("inactive", 0));
        assert_eq!(gone.instance.episode, 0);
    }

    #[test]
    fn without_for_an_alert_fires_at_once() {
        let timing = Timing { pending_for: 0, ..TIMING };
        let firing = run(None, Some(1.0), 0, timing).unwrap();
        assert_eq!((firing.instance.state.as_str(), firing.notify.len()), ("firing", 1));
    }

    #[test]
    fn keep_firing_for_bridges_gaps() {
        let timing = Timing { pending_for: 0, keep_firing_for: 60_000, ..TIMING };
        let firing = run(None, Some(1.0), 0, timing).unwrap();
        assert_eq!(run(Some(&firing.instance), None, 30_000, timing), None, "kept firing, nothing to write");
        let resolved = run(Some(&firing.instance), None, 60_000, timing).unwrap();
        assert_eq!(resolved.instance.state, "resolved");
    }

    #[test]
    fn repeats_and_escalation_stop_once_acknowledged() {
        let timing = Timing { pending_for: 0, repeat_every: Some(10_000), escalate_after: Some(25_000), ..TIMING };
        let firing = run(None, Some(1.0), 0, timing).unwrap().instance;
        assert!(run(Some(&firing), Some(1.0), 5_000, timing).is_none_or(|change| change.notify.is_empty()));
        let first = run(Some(&firing), Some(1.0), 10_000, timing).unwrap();
        assert_eq!(first.notify, vec![(NotificationEvent::Repeat, 1)]);
        assert!(run(Some(&first.instance), Some(1.0), 15_000, timing).is_none_or(|change| change.notify.is_empty()));
        let escalated = run(Some(&first.instance), Some(1.0), 25_000, timing).unwrap();
        assert_eq!(escalated.notify, vec![(NotificationEvent::Repeat, 2), (NotificationEvent::Escalation, 0)]);
        let later = run(Some(&escalated.instance), Some(1.0), 26_000, timing);
        assert!(later.is_none_or(|change| change.notify.is_empty()), "escalated once");
        let acknowledged = AlertInstanceRow { acknowledged_by: Some("ana".to_owned()), ..firing };
        assert!(run(Some(&acknowledged), Some(1.0), 100_000, timing).is_none_or(|change| change.notify.is_empty()));
    }
}

//! The rollout state machine, pure: requested → awaiting approval (when the environment
//! requires it) → triggered → running → analysing → succeeded | failed | rolled back |
//! aborted; a provider that deploys in batches goes from analysing back to running for each
//! batch after the first. Every change of state in the store goes through [`next`], so that a transition not
//! listed here cannot happen, whoever asks for it.

use vigil_proto::rollouts::RolloutState;

/// What happens to a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// It was requested; a second person must approve it first when `approval_required`.
    Submit { approval_required: bool },
    /// A second person approved it.
    Approve,
    /// The provider accepted the trigger: a run exists.
    RunStarted,
    /// The provider refused the trigger, or its outcome is unknown.
    TriggerFailed,
    /// The provider's run ended.
    RunFinished { succeeded: bool },
    /// The analysis window passed with every acting gate healthy.
    AnalysisPassed,
    /// An acting gate failed; a rollback is started when there is a version to go back to.
    GateFailed { rolls_back: bool },
    /// The analysis after a batch passed and the provider started the next batch.
    NextBatch,
    /// Someone stopped it.
    Abort,
}

impl Event {
    fn describe(self) -> &'static str {
        match self {
            Self::Submit { .. } => "be submitted",
            Self::Approve => "be approved",
            Self::RunStarted => "start a run",
            Self::TriggerFailed => "fail to trigger",
            Self::RunFinished { .. } => "finish a run",
            Self::AnalysisPassed => "pass its analysis",
            Self::GateFailed { .. } => "fail a gate",
            Self::NextBatch => "start its next batch",
            Self::Abort => "be aborted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a rollout that is {} cannot {}", from.as_str().replace('_', " "), event.describe())]
pub struct TransitionError {
    pub from: RolloutState,
    pub event: Event,
}

/// The state `event` moves a rollout in `from` to.
pub fn next(from: RolloutState, event: Event) -> Result<RolloutState, TransitionError> {
    use RolloutState::*;
    let to = match (from, event) {
        (Requested, Event::Submit { approval_required: true }) => AwaitingApproval,
        (Requested, Event::Submit { approval_required: false }) => Triggered,
        (AwaitingApproval, Event::Approve) => Triggered,
        (Triggered, Event::RunStarted) => Running,
        (Triggered, Event::TriggerFailed) => Failed,
        (Running, Event::RunFinished { succeeded: true }) => Analysing,
        (Running, Event::RunFinished { succeeded: false }) => Failed,
        (Analysing, Event::AnalysisPassed) => Succeeded,
        (Analysing, Event::GateFailed { rolls_back: true }) => RolledBack,
        (Analysing, Event::GateFailed { rolls_back: false }) => Failed,
        (Analysing, Event::NextBatch) => Running,
        (state, Event::Abort) if !state.is_terminal() => Aborted,
        _ => return Err(TransitionError { from, event }),
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use RolloutState::*;

    const EVENTS: [Event; 12] = [
        Event::Submit { approval_required: true },
        Event::Submit { approval_required: false },
        Event::Approve,
        Event::RunStarted,
        Event::TriggerFailed,
        Event::RunFinished { succeeded: true },
        Event::RunFinished { succeeded: false },
        Event::AnalysisPassed,
        Event::GateFailed { rolls_back: true },
        Event::GateFailed { rolls_back: false },
        Event::NextBatch,
        Event::Abort,
    ];

    fn walk(events: &[Event]) -> Result<RolloutState, TransitionError> {
        events.iter().try_fold(Requested, |state, event| next(state, *event))
    }

    #[test]
    fn a_deploy_without_approval_runs_to_success() {
        let path = [
            Event::Submit { approval_required: false },
            Event::RunStarted,
            Event::RunFinished { succeeded: true },
            Event::AnalysisPassed,
        ];
        assert_eq!(walk(&path), Ok(Succeeded));
    }

    #[test]
    fn approval_comes_before_the_trigger() {
        assert_eq!(walk(&[Event::Submit { approval_required: true }]), Ok(AwaitingApproval));
        let error = walk(&[Event::Submit { approval_required: true }, Event::RunStarted]).unwrap_err();
        assert_eq!(error.to_string(), "a rollout that is awaiting approval cannot start a run");
        assert_eq!(walk(&[Event::Submit { approval_required: true }, Event::Approve]), Ok(Triggered));
        assert!(walk(&[Event::Submit { approval_required: false }, Event::Approve]).is_err(), "approved twice");
    }

    #[test]
    fn failures_end_where_they_happen() {
        assert_eq!(walk(&[Event::Submit { approval_required: false }, Event::TriggerFailed]), Ok(Failed));
        let run_failed =
            [Event::Submit { approval_required: false }, Event::RunStarted, Event::RunFinished { succeeded: false }];
        assert_eq!(walk(&run_failed), Ok(Failed));
        let analysed =
            [Event::Submit { approval_required: false }, Event::RunStarted, Event::RunFinished { succeeded: true }];
        let mut rolled_back = analysed.to_vec();
        rolled_back.push(Event::GateFailed { rolls_back: true });
        assert_eq!(walk(&rolled_back), Ok(RolledBack));
        let mut nothing_to_go_back_to = analysed.to_vec();
        nothing_to_go_back_to.push(Event::GateFailed { rolls_back: false });
        assert_eq!(walk(&nothing_to_go_back_to), Ok(Failed));
    }

    #[test]
    fn a_batch_that_passed_its_analysis_runs_the_next_and_is_analysed_again() {
        let mut batches =
            vec![Event::Submit { approval_required: false }, Event::RunStarted, Event::RunFinished { succeeded: true }];
        batches.extend([Event::NextBatch, Event::RunFinished { succeeded: true }, Event::AnalysisPassed]);
        assert_eq!(walk(&batches), Ok(Succeeded));
        assert!(next(Running, Event::NextBatch).is_err(), "only after an analysis");
    }

    #[test]
    fn abort_works_at_any_point_until_the_end_and_never_after() {
        for state in RolloutState::ALL {
            let aborted = next(state, Event::Abort);
            if state.is_terminal() {
                assert!(aborted.is_err(), "{state:?}");
            } else {
                assert_eq!(aborted, Ok(Aborted), "{state:?}");
            }
        }
    }

    #[test]
    fn terminal_states_take_no_event_and_triggered_is_reached_only_through_submit_or_approve() {
        for state in RolloutState::ALL.into_iter().filter(|state| state.is_terminal()) {
            for event in EVENTS {
                assert!(next(state, event).is_err(), "{state:?} took {event:?}");
            }
        }
        for state in RolloutState::ALL {
            for event in EVENTS {
                if next(state, event) == Ok(Triggered) {
                    assert!(matches!(event, Event::Submit { .. } | Event::Approve), "{state:?} {event:?}");
                }
            }
        }
    }
}

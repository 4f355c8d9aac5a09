//! A run's steps as a CI run page lists them: the worktree, `on_claim` hooks, each turn, the
//! push, each gate, with outcome and duration, each linking to its place in the log.

use crate::domain::agent_event::AgentEvent;
use crate::store::runs::StoredEvent;

use super::view;

/// One step of a run.
pub struct StepView {
    /// `worktree`, `turn 2`, `push`, `on_complete: tests`.
    pub name: String,
    pub outcome: String,
    pub passed: bool,
    /// `1m 05s`, or `—` when not known (hooks recorded before durations were kept).
    pub took: String,
    /// The step's event, for the link into the log.
    pub seq: i64,
}

/// The steps among `events` (others are skipped), in order.
pub fn shape(events: &[StoredEvent]) -> Vec<StepView> {
    events
        .iter()
        .filter_map(|stored| {
            let (name, outcome, passed, millis) = match &stored.event {
                AgentEvent::Step {
                    name,
                    millis,
                    passed,
                    outcome,
                } => (name.clone(), outcome.clone(), *passed, Some(*millis)),
                AgentEvent::Hook {
                    stage,
                    name,
                    outcome,
                    passed,
                    millis,
                    ..
                } => (
                    format!("{stage}: {name}"),
                    outcome.clone(),
                    *passed,
                    *millis,
                ),
                _ => return None,
            };
            Some(StepView {
                name,
                outcome,
                passed,
                took: millis.map_or_else(
                    || "—".to_owned(),
                    |ms| view::duration(i64::try_from(ms).unwrap_or(i64::MAX)),
                ),
                seq: stored.seq,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(seq: i64, event: AgentEvent) -> StoredEvent {
        StoredEvent {
            seq,
            turn: 1,
            at: 0,
            event,
        }
    }

    #[test]
    fn steps_and_hooks_in_order_others_skipped() {
        let events = vec![
            stored(
                1,
                AgentEvent::Step {
                    name: "worktree".into(),
                    millis: 1200,
                    passed: true,
                    outcome: "done".into(),
                },
            ),
            stored(
                2,
                AgentEvent::Raw {
                    line: "hello".into(),
                },
            ),
            stored(
                3,
                AgentEvent::Hook {
                    stage: "on_complete".into(),
                    name: "tests".into(),
                    outcome: "exit 1, 2s".into(),
                    passed: false,
                    output: String::new(),
                    millis: None,
                },
            ),
        ];
        let steps = shape(&events);
        assert_eq!(steps.len(), 2);
        assert_eq!(
            (steps[0].name.as_str(), steps[0].took.as_str()),
            ("worktree", "1s")
        );
        assert_eq!(steps[1].name, "on_complete: tests");
        assert!(!steps[1].passed);
        assert_eq!((steps[1].took.as_str(), steps[1].seq), ("—", 3));
    }
}

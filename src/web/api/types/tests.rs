//! Every response type reads back what it writes, and requests ignore fields they do not know.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;
use crate::domain::agent_event::AgentEvent;
use crate::domain::{ForgeKind, RepoRef};

fn at(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + s, 0)
        .single()
        .expect("a valid time")
}

/// Serializes, reads back, and serializes again: equal values and equal JSON.
fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: T) {
    let json = serde_json::to_string(&value).expect("serializes");
    let back: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e} in {json}"));
    assert_eq!(back, value, "{json}");
    assert_eq!(serde_json::to_string(&back).expect("serializes"), json);
}

fn ticket() -> Ticket {
    Ticket {
        id: 1,
        repo_id: 2,
        forge: "github".into(),
        owner: "octo".into(),
        repo: "app".into(),
        number: 17,
        title: "Add a greeting".into(),
        body: "Please.".into(),
        state: "open".into(),
        labels: vec!["agent:todo".into()],
        author: "alice".into(),
        html_url: "https://github.com/octo/app/issues/17".into(),
        status: Some("todo".into()),
        deleted: false,
        gone_reason: None,
        pinned_version: Some(1),
        needs_reconcile: false,
        forge_updated_at: at(0),
        updated_at: at(1),
    }
}

fn pull() -> PullRequest {
    PullRequest {
        number: 18,
        title: "Greeting".into(),
        state: "open".into(),
        head_ref: "forgehand/17-add-a-greeting".into(),
        head_sha: "abc".into(),
        html_url: "https://github.com/octo/app/pull/18".into(),
    }
}

fn run() -> Run {
    Run {
        id: 7,
        ticket_id: 1,
        workflow: "build".into(),
        agent: "script".into(),
        config_version: 1,
        pickup_status: "todo".into(),
        started_status: "in-progress".into(),
        attempt: 1,
        state: RunState::Succeeded,
        not_before: 0,
        cancel_requested: false,
        cancel_reason: None,
        session_id: Some("sess-1".into()),
        turns: 2,
        finish_status: Some("in-review".into()),
        error: None,
        input_tokens: 100,
        output_tokens: 20,
        cost_usd: 0.25,
        pull_number: Some(18),
        created_at: at(2),
        started_at: Some(1_700_000_003_000),
        finished_at: None,
        started_by_comment: None,
    }
}

#[test]
fn tickets_round_trip() {
    round_trips(Page {
        items: vec![TicketSummary {
            ticket: ticket(),
            pull_request: Some(pull()),
        }],
        page: 1,
        per_page: 30,
        next_page: Some(2),
    });
    round_trips(TicketDetail {
        ticket: ticket(),
        pull_request: None,
        comments: vec![Comment {
            forge_id: 3,
            author: "bob".into(),
            body: "Looks good".into(),
            created_at: at(4),
            updated_at: at(5),
        }],
        runs: vec![run()],
    });
}

#[test]
fn runs_round_trip() {
    round_trips(run());
    round_trips(vec![
        RunEvent {
            seq: 1,
            turn: 1,
            at: 1_700_000_000_000,
            event: AgentEvent::Message {
                role: "assistant".into(),
                text: "hi".into(),
            },
        },
        RunEvent {
            seq: 2,
            turn: 1,
            at: 1_700_000_000_001,
            event: AgentEvent::Step {
                name: "tests".into(),
                millis: 5,
                passed: true,
                outcome: "ok".into(),
            },
        },
    ]);
    round_trips(Requeued {
        status: "todo".into(),
    });
}

#[test]
fn deliveries_and_audit_round_trip() {
    round_trips(DeliveryPage {
        items: vec![Delivery {
            id: 9,
            forge: "gitea".into(),
            delivery_id: "d-1".into(),
            event: "issues".into(),
            received_at: 1_700_000_000_000,
            outcome: "failed".into(),
            reason: Some("does not parse".into()),
            processed_at: Some(1_700_000_000_500),
            size: 120,
            stored_size: 80,
            attempts: 2,
        }],
        next_before: Some(9),
    });
    round_trips(Redriven {
        id: 9,
        outcome: "pending".into(),
    });
    round_trips(vec![AuditEntry {
        id: 1,
        at: at(6),
        actor: "admin token".into(),
        action: "cancel".into(),
        target_kind: "run".into(),
        target: "7".into(),
        outcome: "requested".into(),
    }]);
    round_trips(ErrorBody {
        error: "run 7 does not exist".into(),
    });
}

#[test]
fn config_schedules_and_costs_round_trip() {
    round_trips(ConfigVersions {
        repository: "github:octo/app".into(),
        active: Some(2),
        versions: vec![ConfigVersion {
            id: 4,
            number: 2,
            commit_sha: "abc".into(),
            content_hash: "h".into(),
            created_at: at(7),
        }],
        rejected: vec![Rejection {
            commit_sha: "def".into(),
            content_hash: "g".into(),
            errors: vec![ValidationError {
                file: ".forgehand/config.yaml".into(),
                line: Some(3),
                message: "unknown field `titel`".into(),
            }],
            created_at: at(8),
        }],
        sync_error: None,
    });
    round_trips(Schedules {
        repository: "github:octo/hello".into(),
        schedules: vec![Schedule {
            name: "weekly".into(),
            cron: "0 9 * * 1".into(),
            timezone: "Europe/Berlin".into(),
            issue: ScheduledIssue {
                title: "Weekly deps".into(),
                body: String::new(),
                labels: vec!["agent:todo".into()],
            },
            next_at: Some(at(9)),
            recent_fires: vec![Fire {
                id: 1,
                name: "weekly".into(),
                due_at: at(10),
                fired_at: at(11),
                manual: true,
                issue_number: Some(5),
                error: None,
            }],
        }],
    });
    round_trips(Fired {
        repo: RepoRef::new(ForgeKind::Github, "octo", "hello"),
        name: "weekly".into(),
        due_at: at(12),
        manual: true,
        issue_number: None,
        error: Some("the forge refused".into()),
    });
    let day = DailyCost {
        day: "2026-12-01".into(),
        repo: "github:octo/app".into(),
        agent: "script".into(),
        runs: 1,
        input_tokens: 1010,
        output_tokens: 210,
        cache_read_tokens: 5000,
        cache_write_tokens: 100,
        reasoning_tokens: 50,
        cost_usd: 0.5,
    };
    round_trips(CostReport {
        days: 30,
        since: "2026-11-02".into(),
        total_cost_usd: 0.5,
        total_runs: 1,
        items: vec![day],
    });
}

#[test]
fn every_diagnosis_code_round_trips() {
    let blocker = Blocker {
        repo: "github:octo/app".into(),
        number: 3,
        reference: "#3".into(),
        state: BlockerState::Open,
        title: Some("First".into()),
        ticket_url: None,
        blockers: vec![Blocker {
            repo: "github:octo/lib".into(),
            number: 4,
            reference: "octo/lib#4".into(),
            state: BlockerState::Unknown,
            title: None,
            ticket_url: None,
            blockers: Vec::new(),
        }],
    };
    let reasons = [
        Reason::Ready {
            workflow: "build".into(),
        },
        Reason::Closed,
        Reason::RunInFlight {
            run_id: 7,
            state: "running".into(),
        },
        Reason::Backoff {
            run_id: 7,
            attempt: 2,
            until: at(13),
        },
        Reason::NoStatus,
        Reason::PermissionDenied {
            actor: "mallory".into(),
            why: "not a collaborator".into(),
        },
        Reason::LabellerUnknown {
            label: "agent:todo".into(),
            why: "no timeline".into(),
        },
        Reason::NoConfig,
        Reason::ConfigInvalid {
            commit_sha: "abc".into(),
            errors: vec!["config.yaml:1: bad".into()],
        },
        Reason::NoWorkflow {
            status: "todo".into(),
        },
        Reason::NotPickupStatus {
            status: "done".into(),
            stage: "completed".into(),
        },
        Reason::Stopped {
            run_id: 7,
            error: "timed out".into(),
            pickup: Some("todo".into()),
        },
        Reason::AgentNotConfigured {
            agent: "claude".into(),
        },
        Reason::NoRunner {
            runs_on: vec!["gpu".into()],
            labels: vec!["linux".into()],
        },
        Reason::BudgetExhausted {
            spent_usd: 1.5,
            budget_usd: 1.0,
        },
        Reason::Blocked {
            blockers: vec![blocker],
        },
        Reason::LimitReached {
            limit: Limit::AgentProfile,
            max: 2,
            name: Some("script".into()),
        },
        Reason::NoStartedStatus {
            status: "todo".into(),
        },
    ];
    for reason in reasons {
        round_trips(Diagnosis {
            ticket: "github:octo/app#17".into(),
            ready: matches!(reason, Reason::Ready { .. }),
            message: "why".into(),
            reason,
            waiting_since: Some(at(14)),
        });
    }
}

#[test]
fn a_diagnosis_has_its_code_beside_its_fields() {
    let d = Diagnosis {
        ticket: "github:octo/app#17".into(),
        ready: false,
        message: "a limit".into(),
        reason: Reason::LimitReached {
            limit: Limit::Server,
            max: 1,
            name: None,
        },
        waiting_since: None,
    };
    let v = serde_json::to_value(&d).expect("serializes");
    assert_eq!(v["code"], "limit_reached");
    assert_eq!(v["limit"], "server");
    assert_eq!(v["ticket"], "github:octo/app#17");
}

#[test]
fn agent_requests_ignore_unknown_fields() {
    let finish: FinishRequest =
        serde_json::from_str(r#"{"status":"in-review","note":"newer client"}"#)
            .expect("an unknown field is ignored");
    assert_eq!(finish.status, "in-review");
    let comment: CommentRequest =
        serde_json::from_str(r#"{"body":"hi","extra":[1]}"#).expect("an unknown field is ignored");
    assert_eq!(comment.body, "hi");
    round_trips(CommentPosted { comment_id: 5 });
    round_trips(FinishChosen {
        run: 7,
        finish_status: "in-review".into(),
    });
}

//! Cost accounting and budgets: tokens priced from the server's table, the per-ticket budget
//! enforced across runs (a run over it is stopped mid-run), daily totals.

use forgehand::web::api::types::{CostReport, Reason, RunState};

use crate::backend_tests;
use crate::harness::{Db, wait_until};
use crate::scenario::{HARNESS, REPO, Scenario, workflow};

backend_tests!(
    cost_from_tokens_and_daily_totals,
    budget_is_per_ticket_across_runs
);

/// Reports tokens without a cost (priced from the table), and a cost of its own.
const TOKENS: &str = r#"
cat > prompt.txt
echo '{"kind":"usage","input_tokens":1000,"output_tokens":200,"cache_read_tokens":5000,"cache_write_tokens":100,"reasoning_tokens":50,"cost_usd":null}'
echo '{"kind":"usage","input_tokens":10,"output_tokens":10,"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"cost_usd":0.01}'
echo "costed" > costed.txt
echo '{"kind":"result","text":"Done.","is_error":false}'
"#;

/// The scenario's agent profile gets a model; the table prices it (USD per million tokens).
const PRICED: &str = "model = \"test-sonnet\"\n\
    [prices.\"test-sonnet\"]\ninput = 3.0\noutput = 15.0\ncache_read = 0.3\ncache_write = 3.75\n";

async fn cost_from_tokens_and_daily_totals(db: Db) {
    let s = Scenario::start(db, TOKENS, &workflow(HARNESS, ""), PRICED).await;
    let n = s.open_labelled("Count it", &["agent:todo"], "alice").await;
    let ticket = s.wait_status(n, "in-review").await;
    let run = &ticket.runs[0];
    // 1000×3 + 200×15 + 50×15 (reasoning as output) + 5000×0.3 + 100×3.75 = 8625 per million,
    // plus the 0.01 the CLI reported itself.
    let expected = 0.008625 + 0.01;
    assert!((run.cost_usd - expected).abs() < 1e-9, "{run:?}");
    assert_eq!(run.input_tokens, 1010);
    assert_eq!(run.output_tokens, 210);

    let costs: CostReport = s.server.get_json("/api/v1/costs?days=30").await;
    assert_eq!(costs.items.len(), 1, "{costs:?}");
    let day = &costs.items[0];
    assert_eq!(day.repo, "github:octo/app");
    assert_eq!(day.agent, "script");
    assert_eq!(day.runs, 1);
    assert_eq!(day.input_tokens, 1010);
    assert_eq!(day.output_tokens, 210);
    assert_eq!(day.cache_read_tokens, 5000);
    assert_eq!(day.cache_write_tokens, 100);
    assert_eq!(day.reasoning_tokens, 50);
    assert!((day.cost_usd - expected).abs() < 1e-9);
    assert_eq!(day.day, chrono::Utc::now().format("%Y-%m-%d").to_string());
    assert_eq!(costs.total_runs, 1);

    let bad = s
        .server
        .http
        .get(format!("{}/api/v1/costs?days=0", s.server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // The overview shows the spend per repository and agent.
    let page = s.server.get_text("/").await;
    assert!(page.contains("id=\"costs\""), "{page}");
    assert!(page.contains("github:octo/app"), "{page}");
    s.finish().await;
}

/// Spends $0.10 of tokens (priced), then finishes; on the ticket's second run it would go on
/// for a long time after spending.
const SPENDER: &str = r#"
cat > prompt.txt
echo '{"kind":"usage","input_tokens":100,"output_tokens":0,"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"cost_usd":null}'
if [ -e "$SHARED/second" ]; then sleep 30; fi
echo "spent $FORGEHAND_RUN_ID" > spent.txt
echo '{"kind":"result","text":"Done.","is_error":false}'
"#;

async fn budget_is_per_ticket_across_runs(db: Db) {
    // 100 tokens at $1000 per million: $0.10 a run; the ticket may spend $0.15.
    let limits = "model = \"pricey\"\n[prices.pricey]\ninput = 1000.0\n";
    let s = Scenario::start(
        db,
        SPENDER,
        &workflow(HARNESS, "budget_usd: 0.15\n"),
        limits,
    )
    .await;
    let n = s.open_labelled("Spend", &["agent:todo"], "alice").await;
    let ticket = s.wait_status(n, "in-review").await;
    assert!((ticket.runs[0].cost_usd - 0.1).abs() < 1e-9);

    // Back to todo: the second run has $0.05 left and is stopped as soon as it spends more.
    std::fs::write(s.shared_path("second"), "").unwrap();
    s.model.set_labels(REPO, n, &["agent:todo"]);
    s.deliver_issue(n, "alice", "labeled").await;
    let started = std::time::Instant::now();
    wait_until("the second run to stop", || async {
        let t = s.ticket(n).await;
        t.runs.len() == 2 && t.runs[0].state == RunState::Failed
    })
    .await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "stopped mid-run, not after the agent's sleep"
    );
    let ticket = s.ticket(n).await;
    let run = &ticket.runs[0];
    let error = run.error.as_deref().unwrap();
    assert!(error.contains("budget exhausted"), "{run:?}");
    assert!(error.contains("$0.20 spent on this ticket"), "{error}");
    // It stays where it is (the mirror converges on the forge's labels).
    s.wait_status(n, "in-progress").await;
    wait_until("the ticket to say so", || async {
        s.progress_comment(n)
            .is_some_and(|c| c.contains("budget exhausted"))
    })
    .await;
    let d = s.diagnosis(n).await;
    let Reason::BudgetExhausted { budget_usd, .. } = d.reason else {
        panic!("{d:?}")
    };
    assert!((budget_usd - 0.15).abs() < 1e-9);

    // Moved back to its pickup status, it is still not claimed: the budget is spent.
    s.model.set_labels(REPO, n, &["agent:todo"]);
    s.deliver_issue(n, "alice", "labeled").await;
    let d = s.wait_diagnosis(n, "budget_exhausted").await;
    let Reason::BudgetExhausted { spent_usd, .. } = d.reason else {
        panic!("{d:?}")
    };
    assert!((spent_usd - 0.2).abs() < 1e-9, "{d:?}");
    let t = s.wait_status(n, "todo").await;
    assert_eq!(t.runs.len(), 2, "no third run");
    s.finish().await;
}

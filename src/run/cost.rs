//! What tokens cost: the server's price table (`[prices."<model>"]`, USD per million tokens)
//! fills in the cost of usage events whose CLI reports tokens but no cost (Codex, Gemini,
//! scripted agents); Claude Code's own figure is kept as reported.

use std::collections::BTreeMap;

use crate::config::server::Price;
use crate::domain::agent_event::{AgentEvent, Usage};
use crate::run::adapter::StreamParser;

/// The cost of `usage` at `price`. Reasoning tokens are priced as output.
fn price_of(usage: &Usage, price: &Price) -> f64 {
    let per_token = |tokens: u64, usd_per_million: f64| tokens as f64 * usd_per_million / 1e6;
    per_token(usage.input_tokens, price.input)
        + per_token(usage.output_tokens, price.output)
        + per_token(usage.reasoning_tokens, price.output)
        + per_token(usage.cache_read_tokens, price.cache_read)
        + per_token(usage.cache_write_tokens, price.cache_write)
}

/// The price of a model, if the table has it.
pub fn lookup<'a>(prices: &'a BTreeMap<String, Price>, model: Option<&str>) -> Option<&'a Price> {
    prices.get(model?)
}

/// Wraps an adapter's parser: usage events without a cost get one from the price table, so the
/// turn's budget check and the stored totals see what the tokens cost.
pub struct Priced {
    inner: Box<dyn StreamParser>,
    price: Option<Price>,
}

impl Priced {
    pub fn wrap(inner: Box<dyn StreamParser>, price: Option<Price>) -> Box<dyn StreamParser> {
        match price {
            Some(price) => Box::new(Self {
                inner,
                price: Some(price),
            }),
            None => inner,
        }
    }
}

impl StreamParser for Priced {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        let mut events = self.inner.line(line);
        if let Some(price) = &self.price {
            for event in &mut events {
                if let AgentEvent::Usage(usage) = event
                    && usage.cost_usd.is_none()
                {
                    usage.cost_usd = Some(price_of(usage, price));
                }
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SONNET: Price = Price {
        input: 3.0,
        output: 15.0,
        cache_read: 0.3,
        cache_write: 3.75,
    };

    #[test]
    fn prices_every_kind_of_token() {
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cache_read_tokens: 2_000_000,
            cache_write_tokens: 400_000,
            reasoning_tokens: 100_000,
            cost_usd: None,
        };
        // 3 + 1.5 + 1.5 (reasoning as output) + 0.6 + 1.5
        assert!((price_of(&usage, &SONNET) - 8.1).abs() < 1e-9);
    }

    struct Fixed(Vec<AgentEvent>);
    impl StreamParser for Fixed {
        fn line(&mut self, _: &str) -> Vec<AgentEvent> {
            self.0.clone()
        }
    }

    #[test]
    fn fills_in_missing_costs_only() {
        let reported = Usage {
            input_tokens: 10,
            cost_usd: Some(0.5),
            ..Usage::default()
        };
        let unreported = Usage {
            output_tokens: 1_000_000,
            ..Usage::default()
        };
        let mut parser = Priced::wrap(
            Box::new(Fixed(vec![
                AgentEvent::Usage(reported.clone()),
                AgentEvent::Usage(unreported),
            ])),
            Some(SONNET),
        );
        let events = parser.line("x");
        assert_eq!(events[0], AgentEvent::Usage(reported));
        let AgentEvent::Usage(u) = &events[1] else {
            panic!("{events:?}")
        };
        assert_eq!(u.cost_usd, Some(15.0));
    }

    #[test]
    fn unknown_models_have_no_price() {
        let table = BTreeMap::from([("m".to_owned(), SONNET)]);
        assert!(lookup(&table, Some("m")).is_some());
        assert!(lookup(&table, Some("other")).is_none());
        assert!(lookup(&table, None).is_none());
    }
}

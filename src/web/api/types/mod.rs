//! What `/api/v1` answers, as types of its own: the wire format is declared here, apart from
//! the store's rows and the engine's values (built from them with `From`), so a column or an
//! engine field can change without changing the API, and clients (the tests among them)
//! deserialize the same types the server serializes.
//!
//! Unknown fields in request bodies are ignored (a newer client talking to an older server
//! still works), as are unknown query parameters.

mod agent;
mod audit;
mod config;
mod costs;
mod deliveries;
mod diagnosis;
mod error;
mod page;
pub mod runner;
mod runners;
mod runs;
mod schedules;
mod tickets;

pub use agent::{CommentPosted, CommentRequest, FinishChosen, FinishRequest};
pub use audit::AuditEntry;
pub use config::{ConfigVersion, ConfigVersions, Rejection, ValidationError};
pub use costs::{CostReport, DailyCost};
pub use deliveries::{Delivery, DeliveryPage, Redriven};
pub use diagnosis::{Blocker, BlockerState, Diagnosis, Limit, Reason};
pub use error::ErrorBody;
pub use page::Page;
pub use runners::{NewRunner, Runner, RunnerCreated, RunnerRevoked};
pub use runs::{Requeued, Run, RunEvent, RunState};
pub use schedules::{Fire, Fired, Schedule, ScheduledIssue, Schedules};
pub use tickets::{Comment, PullRequest, Ticket, TicketDetail, TicketSummary};

#[cfg(test)]
mod tests;

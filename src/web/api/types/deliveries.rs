//! Stored webhook deliveries (without their bodies).

use serde::{Deserialize, Serialize};

use crate::store::deliveries::DeliverySummary;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryPage {
    pub items: Vec<Delivery>,
    /// Pass as `before` for the next page.
    pub next_before: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: i64,
    pub forge: String,
    pub delivery_id: String,
    pub event: String,
    /// Unix milliseconds.
    pub received_at: i64,
    pub outcome: String,
    pub reason: Option<String>,
    /// Unix milliseconds.
    pub processed_at: Option<i64>,
    /// The payload's size.
    pub size: i64,
    /// Bytes it takes in the database (compressed).
    pub stored_size: i64,
    /// Attempts whose processing failed; a pending delivery with attempts waits for its retry.
    pub attempts: i64,
}

/// A failed delivery put back in the inbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redriven {
    pub id: i64,
    pub outcome: String,
}

impl From<DeliverySummary> for Delivery {
    fn from(d: DeliverySummary) -> Self {
        Self {
            id: d.id,
            forge: d.forge,
            delivery_id: d.delivery_id,
            event: d.event,
            received_at: d.received_at,
            outcome: d.outcome,
            reason: d.reason,
            processed_at: d.processed_at,
            size: d.size,
            stored_size: d.stored_size,
            attempts: d.attempts,
        }
    }
}

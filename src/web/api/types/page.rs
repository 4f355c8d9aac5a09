//! A numbered page of a listing.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: i64,
    pub per_page: i64,
    /// The next page's number, when there may be one.
    pub next_page: Option<i64>,
}

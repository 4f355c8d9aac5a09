//! The runner protocol's answers and requests, defined beside the runs they are about.

pub use crate::run::protocol::*;

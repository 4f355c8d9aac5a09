//! From the forge to the database: storing deliveries, processing them, reconciling against
//! the forge API, and syncing `.forgehand/` config versions from bare mirrors.

pub(crate) mod apply;
pub mod config_sync;
pub(crate) mod history;
pub mod inbox;
pub mod intake;
pub(crate) mod links;
pub(crate) mod mirror;
pub mod reconcile;
pub mod retention;

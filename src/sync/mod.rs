//! From the forge to the database: storing deliveries, processing them, reconciling against
//! the forge API, and syncing `.forgehand/` config versions from bare mirrors.

pub mod apply;
pub mod config_sync;
pub mod history;
pub mod inbox;
pub mod intake;
pub mod links;
pub mod mirror;
pub mod reconcile;
pub mod retention;

//! Why a claim pass or a ticket's evaluation could not finish: the store or the forge failed.
//! Its own module, so the claimer, the diagnosis and the labeller share it without a circle.

use crate::forge::ForgeError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Forge(#[from] ForgeError),
}

impl From<sqlx::Error> for ClaimError {
    fn from(e: sqlx::Error) -> Self {
        ClaimError::Store(e.into())
    }
}

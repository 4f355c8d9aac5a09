//! Request bodies as the server receives them: read within a deadline, and only while the
//! server-wide byte budget has room, so slow or large uploads cannot pile up in memory.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// Request body bytes that may be held at once, across all clients.
#[derive(Clone, Debug)]
pub struct BodyBudget(Arc<Semaphore>);

impl BodyBudget {
    pub fn new(bytes: usize) -> Self {
        Self(Arc::new(Semaphore::new(bytes)))
    }

    /// Bytes not held by any body now.
    #[cfg(test)]
    fn available(&self) -> usize {
        self.0.available_permits()
    }

    fn try_take(&self, bytes: u64) -> Result<Option<OwnedSemaphorePermit>, BodyError> {
        if bytes == 0 {
            return Ok(None);
        }
        let n = u32::try_from(bytes).map_err(|_| BodyError::Busy)?;
        self.0
            .clone()
            .try_acquire_many_owned(n)
            .map(Some)
            .map_err(|_| BodyError::Busy)
    }
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the server is receiving too much data at once; retry later")]
    Busy,
    #[error("the request body was not received in time")]
    Timeout,
    #[error("reading the request body failed: {0}")]
    Transport(#[from] hyper::Error),
}

impl BodyError {
    /// The `BodyError` behind an error from a request body, if it is one.
    pub fn find(error: &axum::Error) -> Option<&BodyError> {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = source {
            if let Some(found) = e.downcast_ref::<BodyError>() {
                return Some(found);
            }
            source = e.source();
        }
        None
    }
}

/// A request body that holds budget for the bytes it has read until it is dropped, and fails
/// once its deadline (counted from the end of the headers) passes. A declared `Content-Length`
/// is reserved in full at the first read, so a body that cannot fit is refused before any byte
/// of it is read.
pub struct GuardedBody {
    inner: Incoming,
    budget: BodyBudget,
    held: Option<OwnedSemaphorePermit>,
    /// `Content-Length`, until it is reserved.
    declared: Option<u64>,
    reserved_declared: bool,
    deadline: Pin<Box<Sleep>>,
    failed: bool,
}

impl GuardedBody {
    pub fn new(inner: Incoming, budget: BodyBudget, timeout: Duration) -> Self {
        let declared = inner.size_hint().exact();
        Self {
            inner,
            budget,
            held: None,
            declared,
            reserved_declared: false,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            failed: false,
        }
    }

    fn hold(&mut self, bytes: u64) -> Result<(), BodyError> {
        if let Some(permit) = self.budget.try_take(bytes)? {
            match &mut self.held {
                Some(held) => held.merge(permit),
                None => self.held = Some(permit),
            }
        }
        Ok(())
    }

    fn fail(&mut self, error: BodyError) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.failed = true;
        // What was read is dropped with the request; give its budget back now.
        self.held = None;
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        if !this.reserved_declared {
            this.reserved_declared = true;
            if let Some(len) = this.declared
                && let Err(e) = this.hold(len)
            {
                return this.fail(e);
            }
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                // Without a declared length, each chunk takes its share as it arrives.
                if this.declared.is_none()
                    && let Some(data) = frame.data_ref()
                    && let Err(e) = this.hold(data.len() as u64)
                {
                    return this.fail(e);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => this.fail(e.into()),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(this.deadline.as_mut().poll(cx));
                this.fail(BodyError::Timeout)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_refuses_what_does_not_fit_and_returns_what_is_dropped() {
        let budget = BodyBudget::new(100);
        let a = budget.try_take(60).unwrap();
        assert!(matches!(budget.try_take(41), Err(BodyError::Busy)));
        assert!(matches!(budget.try_take(u64::MAX), Err(BodyError::Busy)));
        drop(a);
        assert_eq!(budget.available(), 100);
        assert!(budget.try_take(0).unwrap().is_none());
    }
}

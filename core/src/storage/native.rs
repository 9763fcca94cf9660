//! [`Native`]: what a storage answers when asked to run a built-in natively.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::error::StorageError;

/// A boxed, sendable future, as [`Native::Pending`] holds it.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A storage's answer to a native operation ([`Storage::apply`](super::Storage::apply),
/// [`Storage::batch`](super::Storage::batch)).
///
/// One method answers in all three ways, so a storage's immediate and asynchronous
/// paths cannot disagree: there is only one.
#[must_use = "a native answer must be awaited or acted on"]
pub enum Native<'a, T> {
    /// The storage does not run this natively: the limiter takes the generic
    /// compare-and-set path.
    Declined,
    /// Decided already, without waiting: in-process storages answer this way, which
    /// spares the decision a future and its allocation.
    Ready(Result<T, StorageError>),
    /// Decided once the future completes: network storages answer this way.
    Pending(BoxFuture<'a, Result<T, StorageError>>),
}

impl<'a, T> Native<'a, T> {
    /// `Ready` with `result`.
    pub fn ready(result: Result<T, StorageError>) -> Self {
        Native::Ready(result)
    }

    /// `Pending` with `future`, boxed.
    pub fn pending(future: impl Future<Output = Result<T, StorageError>> + Send + 'a) -> Self {
        Native::Pending(Box::pin(future))
    }

    /// Whether the storage declined.
    pub fn is_declined(&self) -> bool {
        matches!(self, Native::Declined)
    }

    /// The result, awaited if pending; `None` when declined.
    ///
    /// # Errors
    ///
    /// The storage's error.
    pub async fn resolve(self) -> Option<Result<T, StorageError>> {
        match self {
            Native::Declined => None,
            Native::Ready(result) => Some(result),
            Native::Pending(future) => Some(future.await),
        }
    }

    /// Maps the result of a `Ready` or `Pending` answer with `f`.
    pub fn map<U: 'a>(self, f: impl FnOnce(T) -> U + Send + 'a) -> Native<'a, U>
    where
        T: 'a,
    {
        match self {
            Native::Declined => Native::Declined,
            Native::Ready(result) => Native::Ready(result.map(f)),
            Native::Pending(future) => Native::pending(async move { future.await.map(f) }),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Native<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Native::Declined => f.write_str("Declined"),
            Native::Ready(result) => f.debug_tuple("Ready").field(result).finish(),
            Native::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

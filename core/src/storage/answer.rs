//! [`Answer`]: what a storage answers when asked to run a built-in strategy itself.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::error::StorageError;

/// A boxed, sendable future, as [`Answer::Pending`] holds it.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A storage's answer to a native operation ([`NativeStrategies::apply`](super::NativeStrategies::apply),
/// [`NativeStrategies::batch`](super::NativeStrategies::batch)).
///
/// One method answers in all three ways, so a storage's immediate and asynchronous
/// paths cannot disagree: there is only one.
#[must_use = "a native answer must be awaited or acted on"]
pub enum Answer<'a, T> {
    /// The storage does not run this natively: the limiter takes the generic
    /// compare-and-set path.
    Declined,
    /// Decided already, without waiting: in-process storages answer this way, which
    /// spares the decision a future and its allocation.
    Ready(Result<T, StorageError>),
    /// Decided once the future completes: network storages answer this way.
    Pending(BoxFuture<'a, Result<T, StorageError>>),
}

impl<'a, T> Answer<'a, T> {
    /// `Ready` with `result`.
    pub fn ready(result: Result<T, StorageError>) -> Self {
        Answer::Ready(result)
    }

    /// `Pending` with `future`, boxed.
    pub fn pending(future: impl Future<Output = Result<T, StorageError>> + Send + 'a) -> Self {
        Answer::Pending(Box::pin(future))
    }

    /// Whether the storage declined.
    pub fn is_declined(&self) -> bool {
        matches!(self, Answer::Declined)
    }

    /// The result, awaited if pending; `None` when declined.
    ///
    /// # Errors
    ///
    /// The storage's error.
    pub async fn resolve(self) -> Option<Result<T, StorageError>> {
        match self {
            Answer::Declined => None,
            Answer::Ready(result) => Some(result),
            Answer::Pending(future) => Some(future.await),
        }
    }

    /// Maps the result of a `Ready` or `Pending` answer with `f`.
    pub fn map<U: 'a>(self, f: impl FnOnce(T) -> U + Send + 'a) -> Answer<'a, U>
    where
        T: 'a,
    {
        match self {
            Answer::Declined => Answer::Declined,
            Answer::Ready(result) => Answer::Ready(result.map(f)),
            Answer::Pending(future) => Answer::pending(async move { future.await.map(f) }),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Answer<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Declined => f.write_str("Declined"),
            Answer::Ready(result) => f.debug_tuple("Ready").field(result).finish(),
            Answer::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

//! Error types.
//!
//! A rejected hit is not an error: it is a [`Decision`](crate::Decision) whose
//! [`is_allowed`](crate::Decision::is_allowed) is `false`. Errors are reserved for bad
//! input and for storages that could not answer.

use std::fmt;

use crate::limit::ParseError;

/// The error type of [`Storage`](crate::Storage) operations.
///
/// It carries a backend-neutral [`StorageErrorKind`], the operation and the key it
/// concerned, and the backend's own error as its [`source`](std::error::Error::source).
///
/// One pointer wide, so that a `Result` carrying it stays small on the hit path.
#[derive(Debug)]
pub struct StorageError {
    inner: Box<Details>,
}

#[derive(Debug)]
struct Details {
    kind: StorageErrorKind,
    operation: &'static str,
    key: Option<String>,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// What kind of failure a [`StorageError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// The storage could not be reached, or the connection broke.
    Unavailable,
    /// The storage did not answer in time.
    Timeout,
    /// The storage answered something the client did not expect.
    Protocol,
    /// Stored state could not be decoded by the strategy.
    Corrupt,
    /// A compare-and-set loop gave up after its maximum number of attempts.
    Contention,
    /// The storage does not support this operation.
    Unsupported,
    /// Anything else.
    Other,
}

impl StorageErrorKind {
    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            StorageErrorKind::Unavailable
                | StorageErrorKind::Timeout
                | StorageErrorKind::Contention
        )
    }
}

impl fmt::Display for StorageErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StorageErrorKind::Unavailable => "storage unavailable",
            StorageErrorKind::Timeout => "storage timed out",
            StorageErrorKind::Protocol => "unexpected reply from storage",
            StorageErrorKind::Corrupt => "corrupt rate-limit state",
            StorageErrorKind::Contention => "too much contention",
            StorageErrorKind::Unsupported => "operation not supported by this storage",
            StorageErrorKind::Other => "storage error",
        })
    }
}

impl StorageError {
    /// A new error of `kind` raised by `operation` (such as `"get"` or `"gcra"`).
    pub fn new(
        kind: StorageErrorKind,
        operation: &'static str,
        message: impl Into<String>,
    ) -> Self {
        StorageError {
            inner: Box::new(Details {
                kind,
                operation,
                key: None,
                message: message.into(),
                source: None,
            }),
        }
    }

    /// An [`Unsupported`](StorageErrorKind::Unsupported) error for `operation`.
    pub fn unsupported(operation: &'static str) -> Self {
        StorageError::new(StorageErrorKind::Unsupported, operation, "")
    }

    /// Records the key the operation concerned.
    #[must_use]
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.inner.key = Some(key.into());
        self
    }

    /// Records the backend's own error as the source.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.inner.source = Some(Box::new(source));
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StorageErrorKind {
        self.inner.kind
    }

    /// The storage operation that failed.
    pub fn operation(&self) -> &'static str {
        self.inner.operation
    }

    /// The key concerned, where there is one.
    pub fn key(&self) -> Option<&str> {
        self.inner.key.as_deref()
    }

    /// A copy for another caller that shared the failed call: the same kind,
    /// operation, key and message, with this error's text in place of its source.
    pub(crate) fn duplicate(&self) -> StorageError {
        let inner = &*self.inner;
        let message = match &inner.source {
            Some(source) if inner.message.is_empty() => source.to_string(),
            Some(source) => format!("{}: {source}", inner.message),
            None => inner.message.clone(),
        };
        StorageError {
            inner: Box::new(Details {
                kind: inner.kind,
                operation: inner.operation,
                key: inner.key.clone(),
                message,
                source: None,
            }),
        }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        write!(f, "{} in {}", inner.kind, inner.operation)?;
        if let Some(key) = &inner.key {
            write!(f, " on key {key:?}")?;
        }
        if !inner.message.is_empty() {
            write!(f, ": {}", inner.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The error type of [`RateLimiter`](crate::RateLimiter) calls.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A rate-limit string did not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The cost of a hit was zero; costs start at 1.
    #[error("invalid cost 0: a hit costs at least 1")]
    ZeroCost,
    /// A multi-limit call was given no limits.
    #[error("no rate limits given")]
    NoLimits,
    /// [`RateLimiter::until_ready`](crate::RateLimiter::until_ready) had to wait, and
    /// neither the limiter nor its storage has a timer
    /// ([`RateLimiterBuilder::timer`](crate::RateLimiterBuilder::timer)).
    #[error("no timer to wait on: set one with RateLimiterBuilder::timer")]
    NoTimer,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_error_message_names_operation_and_key() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = StorageError::new(StorageErrorKind::Unavailable, "get", "connection refused")
            .with_key("LIMITER/a")
            .with_source(io);
        assert_eq!(
            err.to_string(),
            "storage unavailable in get on key \"LIMITER/a\": connection refused"
        );
        assert!(std::error::Error::source(&err).is_some());
        assert!(err.kind().is_transient());
    }

    #[test]
    fn results_stay_small() {
        assert_eq!(std::mem::size_of::<StorageError>(), 8);
        let size = std::mem::size_of::<Result<crate::Decision, Error>>();
        assert!(size <= 96, "{size}");
    }
}

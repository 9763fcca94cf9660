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
    /// A short, stable, lowercase name of the kind, for logs and metrics labels (the
    /// `error.type` field of the `tracing` events): `"unavailable"`, `"timeout"`,
    /// `"protocol"`, `"corrupt"`, `"contention"`, `"unsupported"` or `"other"`.
    ///
    /// ```
    /// use limiter_core::StorageErrorKind;
    ///
    /// assert_eq!(StorageErrorKind::Timeout.as_str(), "timeout");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            StorageErrorKind::Unavailable => "unavailable",
            StorageErrorKind::Timeout => "timeout",
            StorageErrorKind::Protocol => "protocol",
            StorageErrorKind::Corrupt => "corrupt",
            StorageErrorKind::Contention => "contention",
            StorageErrorKind::Unsupported => "unsupported",
            StorageErrorKind::Other => "other",
        }
    }

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

    /// This error as text for logs above `DEBUG`: its [`Display`](fmt::Display) form,
    /// with the key replaced by its [`key_digest`](crate::observe::key_digest), and
    /// the source's text after a colon. See [`observe`](crate::observe).
    ///
    /// ```
    /// use limiter_core::{StorageError, StorageErrorKind};
    ///
    /// let err = StorageError::new(StorageErrorKind::Timeout, "get", "no answer")
    ///     .with_key("LIMITER/203.0.113.9");
    /// let text = err.redacted().to_string();
    /// assert!(text.starts_with("storage timed out in get on key #"));
    /// assert!(text.ends_with(": no answer"));
    /// assert!(!text.contains("203.0.113.9"));
    /// ```
    pub fn redacted(&self) -> Redacted<'_> {
        Redacted(RedactedInner::Storage(self))
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

/// An error as text for logs, its key replaced by a digest: see
/// [`StorageError::redacted`] and [`Error::redacted`].
#[derive(Debug, Clone, Copy)]
pub struct Redacted<'a>(RedactedInner<'a>);

#[derive(Debug, Clone, Copy)]
enum RedactedInner<'a> {
    Storage(&'a StorageError),
    Limiter(&'a Error),
}

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let storage = match self.0 {
            RedactedInner::Storage(e) | RedactedInner::Limiter(Error::Storage(e)) => e,
            RedactedInner::Limiter(other) => return fmt::Display::fmt(other, f),
        };
        let inner = &*storage.inner;
        write!(f, "{} in {}", inner.kind, inner.operation)?;
        if let Some(key) = &inner.key {
            write!(f, " on key #{}", crate::observe::key_digest(key))?;
        }
        if !inner.message.is_empty() {
            write!(f, ": {}", inner.message)?;
        }
        if let Some(source) = &inner.source {
            let source = source.to_string();
            if source != inner.message {
                write!(f, ": {source}")?;
            }
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

impl Error {
    /// This error as text for logs above `DEBUG`: as its
    /// [`Display`](fmt::Display) form, a storage error's key replaced by its digest
    /// (see [`StorageError::redacted`]).
    pub fn redacted(&self) -> Redacted<'_> {
        Redacted(RedactedInner::Limiter(self))
    }

    /// A short, stable name of the error's kind for logs and metrics labels (the
    /// `error.type` field): a storage error's [`StorageErrorKind::as_str`], else
    /// `"parse"`, `"zero_cost"`, `"no_limits"` or `"no_timer"`.
    ///
    /// ```
    /// assert_eq!(limiter_core::Error::ZeroCost.kind_str(), "zero_cost");
    /// ```
    pub fn kind_str(&self) -> &'static str {
        match self {
            Error::Storage(e) => e.kind().as_str(),
            Error::Parse(_) => "parse",
            Error::ZeroCost => "zero_cost",
            Error::NoLimits => "no_limits",
            Error::NoTimer => "no_timer",
        }
    }
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
    fn redacted_errors_carry_a_digest_in_place_of_the_key() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = StorageError::new(StorageErrorKind::Unavailable, "get", "")
            .with_key("LIMITER/a")
            .with_source(io);
        let digest = crate::observe::key_digest("LIMITER/a");
        assert_eq!(
            err.redacted().to_string(),
            format!("storage unavailable in get on key #{digest}: refused")
        );
        let wrapped = Error::Storage(err);
        assert_eq!(
            wrapped.redacted().to_string(),
            format!("storage unavailable in get on key #{digest}: refused")
        );
        assert_eq!(wrapped.kind_str(), "unavailable");
        assert_eq!(
            Error::NoLimits.redacted().to_string(),
            "no rate limits given"
        );
    }

    #[test]
    fn results_stay_small() {
        assert_eq!(std::mem::size_of::<StorageError>(), 8);
        let size = std::mem::size_of::<Result<crate::Decision, Error>>();
        assert!(size <= 96, "{size}");
    }
}

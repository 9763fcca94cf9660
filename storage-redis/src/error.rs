//! Errors: [`RedisError`] for configuration and connecting, and the mapping of the
//! client's errors to [`StorageError`] for everything after.

use limiter_core::{StorageError, StorageErrorKind};

/// A Redis storage that could not be configured or connected.
///
/// Errors of rate-limit operations on a connected [`RedisStorage`](crate::RedisStorage)
/// are [`StorageError`]s instead, like those of every storage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The URI does not have the form of any Redis URI this crate takes.
    #[error("malformed redis uri {uri:?}: {reason}")]
    MalformedUri {
        /// The URI as given (with any password replaced by `***`).
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A query option is unknown, given twice, or has a value that is not valid.
    #[error("invalid option {name:?} in redis uri {uri:?}: {reason}")]
    InvalidOption {
        /// The option's name.
        name: String,
        /// The URI as given (with any password replaced by `***`).
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting is not valid, such as a key prefix with a brace in it.
    #[error("invalid redis storage setting {name}: {reason}")]
    InvalidSetting {
        /// The setting.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS was asked for (`rediss://`) but this build has no TLS support.
    ///
    /// Without it the connection would go out in plain text, so it is refused.
    #[error(
        "redis uri {uri:?} asks for TLS, but limiter-redis was built without its \"tls\" \
         feature (the limiter crate's \"redis-tls\" feature); refusing to connect in plain text"
    )]
    TlsUnavailable {
        /// The URI as given (with any password replaced by `***`).
        uri: String,
    },
    /// The TLS settings could not be used, for example an unreadable CA file.
    #[error("redis tls setup failed: {reason}")]
    Tls {
        /// What went wrong.
        reason: String,
    },
    /// The server could not be reached, refused the connection or the credentials, or
    /// did not answer within the connect timeout.
    #[error("cannot connect to redis at {target}: {kind}: {reason}")]
    Connect {
        /// Where the storage tried to connect.
        target: String,
        /// [`Unavailable`](StorageErrorKind::Unavailable) or
        /// [`Timeout`](StorageErrorKind::Timeout).
        kind: StorageErrorKind,
        /// The client's message.
        reason: String,
    },
}

/// The error that a script raises for state it cannot decode, so that it maps to
/// [`StorageErrorKind::Corrupt`]. Kept in sync with `scripts/*.lua`.
pub(crate) const CORRUPT_PREFIX: &str = "LIMITER_CORRUPT";

/// The storage error kind for a client error.
pub(crate) fn kind_of(error: &fred::error::Error) -> StorageErrorKind {
    use fred::error::ErrorKind as K;
    let details = error.details();
    match error.kind() {
        K::Timeout => StorageErrorKind::Timeout,
        K::IO
        | K::Canceled
        | K::Cluster
        | K::Routing
        | K::Sentinel
        | K::Auth
        | K::Backpressure
        | K::NotFound => StorageErrorKind::Unavailable,
        _ if details.contains(CORRUPT_PREFIX) => StorageErrorKind::Corrupt,
        // The client's own messages for "no usable connection right now".
        _ if [
            "Failed to route command",
            "Failed to send command to router",
            "Client is not initialized",
            "Max attempts exceeded",
            "Max redirections exceeded",
            "Too many failed write attempts",
            "Missing expected connection",
        ]
        .iter()
        .any(|p| details.starts_with(p)) =>
        {
            StorageErrorKind::Unavailable
        }
        // Replies that mean "not now": a server loading its data, busy with a script,
        // a replica promoted or demoted mid-failover.
        _ if [
            "LOADING",
            "BUSY",
            "MASTERDOWN",
            "READONLY",
            "TRYAGAIN",
            "CLUSTERDOWN",
        ]
        .iter()
        .any(|p| details.starts_with(p)) =>
        {
            StorageErrorKind::Unavailable
        }
        _ => StorageErrorKind::Protocol,
    }
}

/// A [`StorageError`] for a client error in `operation` on `key`.
pub(crate) fn storage_error(
    operation: &'static str,
    key: Option<&str>,
    error: fred::error::Error,
) -> StorageError {
    let kind = kind_of(&error);
    let message = if error.details().is_empty() {
        format!("{:?}", error.kind())
    } else {
        error.details().to_owned()
    };
    let out = StorageError::new(kind, operation, message).with_source(error);
    match key {
        Some(key) => out.with_key(key),
        None => out,
    }
}

/// The [`StorageError`] for an operation that did not finish within `limit`.
pub(crate) fn timeout(
    operation: &'static str,
    key: Option<&str>,
    limit: std::time::Duration,
) -> StorageError {
    let out = StorageError::new(
        StorageErrorKind::Timeout,
        operation,
        format!("no answer within the command timeout of {limit:?}"),
    );
    match key {
        Some(key) => out.with_key(key),
        None => out,
    }
}

/// A [`StorageError`] for a reply of the wrong shape.
pub(crate) fn protocol(operation: &'static str, key: &str, message: String) -> StorageError {
    StorageError::new(StorageErrorKind::Protocol, operation, message).with_key(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fred::error::{Error, ErrorKind};

    #[test]
    fn client_errors_map_to_neutral_kinds() {
        let cases = [
            (
                Error::new(ErrorKind::IO, "refused"),
                StorageErrorKind::Unavailable,
            ),
            (
                Error::new(ErrorKind::Canceled, "closed"),
                StorageErrorKind::Unavailable,
            ),
            (
                Error::new(ErrorKind::Timeout, "late"),
                StorageErrorKind::Timeout,
            ),
            (
                Error::new(ErrorKind::Unknown, "LOADING Redis is loading"),
                StorageErrorKind::Unavailable,
            ),
            (
                Error::new(ErrorKind::Unknown, "READONLY You can't write"),
                StorageErrorKind::Unavailable,
            ),
            (
                Error::new(ErrorKind::Unknown, "ERR LIMITER_CORRUPT gcra: wrong length"),
                StorageErrorKind::Corrupt,
            ),
            (
                Error::new(ErrorKind::Unknown, "ERR syntax"),
                StorageErrorKind::Protocol,
            ),
            (
                Error::new(ErrorKind::Parse, "bad"),
                StorageErrorKind::Protocol,
            ),
        ];
        for (error, kind) in cases {
            assert_eq!(kind_of(&error), kind, "{error:?}");
        }
        let e = storage_error("get", Some("k"), Error::new(ErrorKind::IO, "refused"));
        assert_eq!(
            e.to_string(),
            "storage unavailable in get on key \"k\": refused"
        );
    }
}

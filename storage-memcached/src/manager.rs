//! The connection pool's manager: opens connections to one server and tells broken ones.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_memcached::{Client, Error};
use tokio::sync::Notify;

/// Where a server is, for the fields of `tracing` events: `server.address` and
/// `server.port` (a Unix socket's path, and no port).
#[derive(Debug, Clone, Default)]
pub(crate) struct Where {
    pub(crate) address: String,
    pub(crate) port: Option<u16>,
}

/// What the manager, the pool's error sink and the storage share about one server.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Where the server is.
    pub(crate) at: Where,
    /// Connections opened before this generation are stale: a connection of an older
    /// generation failed with an I/O error, so the server may have restarted and
    /// closed them all.
    generation: AtomicU64,
    /// The last error opening a connection, for error messages.
    last_connect_error: Mutex<Option<String>>,
    /// Whether the last attempt to open a connection failed: callers that find no idle
    /// connection then fail at once instead of waiting for the next attempt.
    down: AtomicBool,
    /// Woken when opening a connection fails, so that callers waiting for one give up
    /// at once instead of at the end of the connect timeout.
    connect_failed: Notify,
}

impl Shared {
    pub(crate) fn new(at: Where) -> Shared {
        Shared {
            at,
            ..Shared::default()
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Marks every connection opened up to `generation` as stale.
    pub(crate) fn retire_up_to(&self, generation: u64) {
        self.generation
            .fetch_max(generation.saturating_add(1), Ordering::AcqRel);
    }

    pub(crate) fn last_connect_error(&self) -> Option<String> {
        self.last_connect_error
            .lock()
            .ok()
            .and_then(|last| last.clone())
    }

    /// A failed attempt to open a connection: a `WARN` event for the first of an
    /// outage, `DEBUG` for the next ones (the pool retries in the background).
    fn record_connect_error(&self, error: &Error) {
        if let Ok(mut last) = self.last_connect_error.lock() {
            *last = Some(error.to_string());
        }
        let was_down = self.down.swap(true, Ordering::AcqRel);
        let kind = crate::storage::kind_of(error).as_str();
        if was_down {
            tracing::debug!(
                db.system.name = "memcached",
                server.address = %self.at.address,
                server.port = self.at.port,
                error.type = kind,
                error.message = %error,
                "memcached server still unreachable"
            );
        } else {
            tracing::warn!(
                db.system.name = "memcached",
                server.address = %self.at.address,
                server.port = self.at.port,
                error.type = kind,
                error.message = %error,
                "cannot connect to memcached server; calls to it fail at once until a connection opens"
            );
        }
        self.connect_failed.notify_waiters();
    }

    /// Whether the last attempt to open a connection failed.
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// Completes when an attempt to open a connection fails after this call.
    pub(crate) fn connect_failed(&self) -> tokio::sync::futures::Notified<'_> {
        self.connect_failed.notified()
    }
}

/// A pooled connection: the client and the generation it was opened in.
pub(crate) struct Conn {
    pub(crate) client: Client,
    pub(crate) generation: u64,
    /// Whether a command has completed on it: only a reused connection can be stale.
    pub(crate) used: bool,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager").field("dsn", &self.dsn).finish()
    }
}

/// Opens connections to one server (`tcp://host:port` or `unix:///path`).
pub(crate) struct Manager {
    pub(crate) dsn: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) shared: Arc<Shared>,
}

impl bb8::ManageConnection for Manager {
    type Connection = Conn;
    type Error = Error;

    async fn connect(&self) -> Result<Conn, Error> {
        let generation = self.shared.generation();
        // The client has no timeout of its own, and a connect to an address that drops
        // packets would otherwise wait for the operating system's (minutes).
        let client = match tokio::time::timeout(self.connect_timeout, Client::new(&self.dsn)).await
        {
            Ok(result) => result?,
            Err(_) => {
                return Err(Error::Connect(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {:?}", self.connect_timeout),
                )))
            }
        };
        if self.shared.down.swap(false, Ordering::AcqRel) {
            tracing::info!(
                db.system.name = "memcached",
                server.address = %self.shared.at.address,
                server.port = self.shared.at.port,
                "memcached server reachable again"
            );
        }
        Ok(Conn {
            client,
            generation,
            used: false,
        })
    }

    async fn is_valid(&self, conn: &mut Conn) -> Result<(), Error> {
        // Not called: the pool is built with `test_on_check_out(false)`, since a round
        // trip per checkout would double the cost of a decision.
        conn.client.version().await.map(|_| ())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.client.is_closed() || conn.generation < self.shared.generation()
    }
}

/// Passes the pool's connection errors to [`Shared`].
#[derive(Debug, Clone)]
pub(crate) struct ErrorSink(pub(crate) Arc<Shared>);

impl bb8::ErrorSink<Error> for ErrorSink {
    fn sink(&self, error: Error) {
        self.0.record_connect_error(&error);
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<Error>> {
        Box::new(self.clone())
    }
}

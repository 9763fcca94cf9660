//! `tracing` events for what the client does in the background: connections lost
//! and re-established, a Sentinel failover to another primary, Cluster topology
//! changes, unresponsive servers. See the [crate docs](crate#observability).

use std::sync::{Arc, Mutex, PoisonError};

use fred::prelude::{Client, ClientLike, EventInterface, Pool, Server};
use fred::types::ClusterStateChange;

use crate::error;

/// The event listeners of a pool's clients: two tasks per client, aborted when
/// dropped (the pool's `QUIT` ends them too).
#[derive(Debug, Default)]
pub(crate) struct Listeners(Vec<tokio::task::AbortHandle>);

impl Drop for Listeners {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// What one client's listener remembers between events.
#[derive(Debug, Default)]
struct State {
    /// The server of the last connection, once there was one.
    server: Option<Server>,
    /// Whether an error was reported since the last connection: later errors of the
    /// same outage are `DEBUG` events.
    down: bool,
}

/// Starts listening to every client of `pool`. Call before connecting, so that the
/// first connections are seen (they tell a later failover from a reconnection).
/// `sentinel`: whether a change of server is a failover to a new primary.
pub(crate) fn listen(pool: &Pool, sentinel: bool) -> Listeners {
    Listeners(
        pool.clients()
            .iter()
            .flat_map(|client| listen_to(client, sentinel))
            .collect(),
    )
}

fn listen_to(client: &Client, sentinel: bool) -> [tokio::task::AbortHandle; 2] {
    let id: Arc<str> = Arc::from(client.id());
    let state = Arc::new(Mutex::new(State::default()));
    let (on_error, on_reconnect) = (state.clone(), state);
    let (id_error, id_reconnect, id_cluster, id_unresponsive) =
        (id.clone(), id.clone(), id.clone(), id);
    let any = client.on_any(
        move |(error, server): (fred::error::Error, Option<Server>)| {
            connection_error(&on_error, &id_error, &error, server.as_ref());
            std::future::ready(Ok(()))
        },
        move |server: Server| {
            reconnected(&on_reconnect, &id_reconnect, &server, sentinel);
            std::future::ready(Ok(()))
        },
        move |changes: Vec<ClusterStateChange>| {
            tracing::info!(
                db.system.name = "redis",
                limiter.redis.client = &*id_cluster,
                limiter.redis.changes = ?changes,
                "redis cluster topology changed"
            );
            std::future::ready(Ok(()))
        },
    );
    let unresponsive = client.on_unresponsive(move |server: Server| {
        tracing::warn!(
            db.system.name = "redis",
            server.address = &*server.host,
            server.port = server.port,
            limiter.redis.client = &*id_unresponsive,
            "redis server stopped answering; reconnecting"
        );
        std::future::ready(Ok(()))
    });
    [any.abort_handle(), unresponsive.abort_handle()]
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connection or protocol error outside any command: `WARN` for the first of an
/// outage, `DEBUG` for the next ones (each reconnection attempt).
fn connection_error(
    state: &Mutex<State>,
    id: &str,
    error: &fred::error::Error,
    server: Option<&Server>,
) {
    let first = {
        let mut state = lock(state);
        !std::mem::replace(&mut state.down, true)
    };
    let kind = error::kind_of(error).as_str();
    let (host, port) = match server {
        Some(server) => (Some(&*server.host), Some(server.port)),
        None => (None, None),
    };
    if first {
        tracing::warn!(
            db.system.name = "redis",
            server.address = host,
            server.port = port,
            limiter.redis.client = id,
            error.type = kind,
            error.message = %error,
            "redis connection failed; reconnecting in the background"
        );
    } else {
        tracing::debug!(
            db.system.name = "redis",
            server.address = host,
            server.port = port,
            limiter.redis.client = id,
            error.type = kind,
            error.message = %error,
            "redis connection still failing"
        );
    }
}

/// A connection (re-)established: `DEBUG` the first time, `WARN` when a Sentinel
/// deployment now has another primary, else `INFO`.
fn reconnected(state: &Mutex<State>, id: &str, server: &Server, sentinel: bool) {
    let previous = {
        let mut state = lock(state);
        state.down = false;
        state.server.replace(server.clone())
    };
    let (host, port) = (&*server.host, server.port);
    match previous {
        None => tracing::debug!(
            db.system.name = "redis",
            server.address = host,
            server.port = port,
            limiter.redis.client = id,
            "redis connection established"
        ),
        Some(previous) if sentinel && previous != *server => tracing::warn!(
            db.system.name = "redis",
            server.address = host,
            server.port = port,
            limiter.redis.client = id,
            limiter.redis.previous_address = %previous,
            "redis failover: Sentinel named another primary; connected to it"
        ),
        Some(_) => tracing::info!(
            db.system.name = "redis",
            server.address = host,
            server.port = port,
            limiter.redis.client = id,
            "redis connection re-established"
        ),
    }
}

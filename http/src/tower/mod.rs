//! The tower adapter: [`LimiterLayer`] and [`LimiterService`], usable with axum's
//! `Router::layer` and `route_layer`, hyper (through `hyper-util`'s
//! `TowerToHyperService`) and any tower stack over `http` requests.
//!
//! The service decides in its response future, not in `poll_ready`, which it
//! forwards to the inner service (back-pressure reaches the caller unchanged). A
//! rejected request never reaches the inner service: it is answered with `Ok(429)`
//! (or `Ok(503)` when the storage fails closed), so the error type stays the inner
//! service's. The response body type only needs
//! `From<String>` (axum's `Body` has it).
//!
//! The peer address comes from the request's extensions: axum's
//! `ConnectInfo<SocketAddr>` (feature `axum`) or a plain [`SocketAddr`](std::net::SocketAddr)
//! inserted by your own accept loop. The route comes from axum's `MatchedPath`
//! (feature `axum`), else the URI path. How to give axum routes rules of their own
//! is in the [guide](crate::guide#routes-in-axum).

mod future;
mod layer;
mod service;

pub use self::future::ResponseFuture;
pub use self::layer::LimiterLayer;
pub use self::service::LimiterService;

#[cfg(feature = "reload")]
mod reload;
#[cfg(feature = "reload")]
#[cfg_attr(docsrs, doc(cfg(feature = "reload")))]
pub use self::reload::{ReloadLayer, ReloadService};

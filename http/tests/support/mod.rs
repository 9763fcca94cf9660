//! Real servers on loopback ports, a real HTTP client, and a storage that can be
//! switched off.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use http::StatusCode;
use limiter_core::storage::{
    async_trait, Abilities, Answer, Batch, KeyOp, NativeStrategies, Storage, StorageKey, Version,
    Versioned,
};
use limiter_core::strategy::Verdict;
use limiter_core::{BuiltIn, ManualClock, RateLimiter, StorageError, StorageErrorKind, Timestamp};
use limiter_memory::MemoryStorage;

#[cfg(feature = "actix-web")]
pub mod actix;
#[cfg(feature = "actix-web")]
pub mod table;

/// Serves `app` on `ip:0` with connect info; returns the address. The server lives
/// as long as the test's runtime.
pub async fn serve_on(ip: &str, app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(format!("{ip}:0"))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    addr
}

pub async fn serve(app: Router) -> SocketAddr {
    serve_on("127.0.0.1", app).await
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// A few routes that answer their own name; `/login` answers 401 unless the
/// `x-password` header is `secret`.
pub fn routes() -> Router {
    Router::new()
        .route("/a", get(|| async { "a" }).post(|| async { "a" }))
        .route("/b", get(|| async { "b" }))
        .route("/c", get(|| async { "c" }))
        .route("/ping", get(|| async { "PONG" }))
        .route("/users/{id}", get(|| async { "user" }))
        .route(
            "/info",
            get(|info: limiter_http::RateLimitInfo| async move { remaining_text(&info) }),
        )
        .route(
            "/login",
            post(|headers: http::HeaderMap| async move {
                if headers.get("x-password").is_some_and(|v| v == "secret") {
                    (StatusCode::OK, "welcome")
                } else {
                    (StatusCode::UNAUTHORIZED, "no")
                }
            }),
        )
}

/// What the `/info` handlers answer: the budget left, as the handler sees it.
pub fn remaining_text(info: &limiter_http::RateLimitInfo) -> String {
    match info.decision() {
        Some(decision) => format!("remaining={}", decision.remaining()),
        None => "unlimited".to_owned(),
    }
}

/// A limiter over memory storage with a manual clock.
pub fn memory_limiter() -> (RateLimiter, ManualClock) {
    let clock = ManualClock::new(1_700_000_000_000);
    let limiter = RateLimiter::builder(Arc::new(MemoryStorage::new()))
        .clock(clock.clone())
        .build();
    (limiter, clock)
}

pub async fn status(client: &reqwest::Client, addr: SocketAddr, method: &str, path: &str) -> u16 {
    send(client, addr, method, path, &[])
        .await
        .status()
        .as_u16()
}

pub async fn send(
    client: &reqwest::Client,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client.request(method, format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// Statuses of `n` sequential GETs.
pub async fn statuses(
    client: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    n: usize,
) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(status(client, addr, "GET", path).await);
    }
    out
}

const UP: u8 = 0;
const DOWN: u8 = 1;
const HANG: u8 = 2;

/// `MemoryStorage` behind a switch: up, down (every call fails as unavailable), or
/// hanging (every call waits forever).
#[derive(Debug, Clone, Default)]
pub struct Switch {
    inner: Arc<MemoryStorage>,
    mode: Arc<AtomicU8>,
}

impl Switch {
    pub fn up(&self) {
        self.mode.store(UP, Ordering::SeqCst);
    }
    pub fn down(&self) {
        self.mode.store(DOWN, Ordering::SeqCst);
    }
    pub fn hang(&self) {
        self.mode.store(HANG, Ordering::SeqCst);
    }
    async fn gate(&self, operation: &'static str) -> Result<(), StorageError> {
        match self.mode.load(Ordering::SeqCst) {
            UP => Ok(()),
            DOWN => Err(StorageError::new(
                StorageErrorKind::Unavailable,
                operation,
                "switched off",
            )),
            _ => std::future::pending().await,
        }
    }
}

#[async_trait]
impl Storage for Switch {
    async fn get(
        &self,
        key: &StorageKey,
        now: Timestamp,
    ) -> Result<Option<Versioned>, StorageError> {
        self.gate("get").await?;
        self.inner.get(key, now).await
    }

    async fn compare_and_set(
        &self,
        key: &StorageKey,
        expected: Option<Version>,
        value: &[u8],
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        self.gate("compare_and_set").await?;
        self.inner
            .compare_and_set(key, expected, value, ttl, now)
            .await
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        self.gate("delete").await?;
        self.inner.delete(key).await
    }

    async fn check(&self) -> Result<(), StorageError> {
        self.gate("check").await?;
        self.inner.check().await
    }

    fn abilities(&self) -> Abilities<'_> {
        Abilities::new()
            .native(self)
            .expiry(self.inner.abilities().get_expiry())
    }
}

impl Switch {
    /// The inner storage's native strategies.
    fn inner_native(&self) -> &dyn NativeStrategies {
        self.inner.as_ref()
    }
}

impl NativeStrategies for Switch {
    fn apply<'a>(&'a self, strategy: BuiltIn, op: KeyOp<'a>) -> Answer<'a, Verdict> {
        match self.mode.load(Ordering::SeqCst) {
            UP => self.inner_native().apply(strategy, op),
            _ => Answer::pending(async move {
                self.gate("apply").await?;
                Err(StorageError::new(
                    StorageErrorKind::Other,
                    "apply",
                    "unreachable",
                ))
            }),
        }
    }

    fn batch<'a>(&'a self, strategy: BuiltIn, batch: Batch<'a>) -> Answer<'a, Vec<Verdict>> {
        match self.mode.load(Ordering::SeqCst) {
            UP => self.inner_native().batch(strategy, batch),
            _ => Answer::pending(async move {
                self.gate("batch").await?;
                Err(StorageError::new(
                    StorageErrorKind::Other,
                    "batch",
                    "unreachable",
                ))
            }),
        }
    }
}

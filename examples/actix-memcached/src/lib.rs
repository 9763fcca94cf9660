//! An actix-web service limited on the Memcached storage: the application that
//! `cargo run -p example-actix-memcached` serves.
//!
//! - every route without limits of its own gets `5 per minute`, and a trial limit of
//!   `2 per minute` in shadow mode: it is counted and logged, never enforced;
//! - `/` answers with the budget left, read by the handler from [`RateLimitInfo`];
//! - `/slow` is limited to `1 per day` instead;
//! - `/ping` is exempt.
//!
//! Clients are told apart by their socket address. The counts live in Memcached, so
//! every process on the same server and key prefix shares them.

use limiter::http::{BuildError, HeaderStyle, HttpLimiter, Limits, Metrics, RateLimitInfo, Route};
use limiter::RateLimiter;

use actix_web::web;

/// The Memcached server used when `LIMITER_MEMCACHED_URL` is not set.
pub const DEFAULT_URI: &str = "memcached://127.0.0.1:11211";

/// Why the limiter could not be made.
#[derive(Debug)]
pub enum Error {
    /// The storage URI is malformed, or its scheme unknown.
    Storage(limiter::UriError),
    /// A limit string is malformed (they are not).
    Build(BuildError),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Storage(err) => write!(f, "storage: {err}"),
            Error::Build(err) => write!(f, "limits: {err}"),
        }
    }
}

impl std::error::Error for Error {}

/// Reports the requests that the shadow trial limit would have rejected, on
/// standard error (a metrics library would count them).
#[derive(Debug)]
struct ReportShadow;

impl Metrics for ReportShadow {
    fn shadow_rejected(&self) {
        eprintln!("shadow: a request over the trial limit (2 per minute) went through");
    }
}

/// The example's limiter, on the Memcached storage at `uri` (such as
/// `memcached://127.0.0.1:11211`), every key starting with `key_prefix`.
///
/// # Errors
///
/// [`Error::Storage`] for a malformed URI.
pub async fn limiter(uri: &str, key_prefix: &str) -> Result<HttpLimiter, Error> {
    let storage = limiter::storage_from_uri(uri)
        .await
        .map_err(Error::Storage)?;
    HttpLimiter::builder(RateLimiter::new(storage))
        .key_prefix(key_prefix)
        .default_limits("5 per minute")
        .default_limits(Limits::new("2 per minute").shadow())
        .route("/slow", Route::limits(Limits::new("1 per day")))
        .route("/ping", Route::exempt())
        .headers(HeaderStyle::Both)
        .metrics(ReportShadow)
        .build()
        .map_err(Error::Build)
}

/// The example's routes; wrap the app in the limiter's middleware
/// (`App::new().wrap(limiter.actix_middleware()).configure(routes)`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(hello))
        .route("/slow", web::get().to(|| async { "24" }))
        .route("/ping", web::get().to(|| async { "PONG" }));
}

/// Greets the client with the budget it has left.
async fn hello(info: RateLimitInfo) -> String {
    match info.decision() {
        Some(decision) => format!(
            "hello: {} of {} left\n",
            decision.remaining(),
            decision.limit()
        ),
        None => "hello: not limited\n".to_owned(),
    }
}

//! A shop's API whose rate limits all come from one file, `examples/limiter.toml`:
//! the storage, the strategy, the key source (clients behind one proxy, by
//! `X-Forwarded-For`), the defaults, the routes, the headers, the 429 body and the
//! failure policy. Nothing about limits is in the code; editing the file changes the
//! running service (see [`watch`]).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use axum::routing::get;
use axum::Router;
use limiter::config::Reloader;
use limiter::http::ReloadableLimiter;

/// The file `cargo run -p example-config` reads when given none.
pub fn default_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../limiter.toml")
}

/// The shop's routes behind the limiter that `handle` holds at each request.
pub fn app(handle: &ReloadableLimiter) -> Router {
    Router::new()
        .route("/", get(|| async { "home\n" }))
        .route(
            "/login",
            get(|| async { "login form\n" }).post(|| async { "welcome\n" }),
        )
        .route("/search", get(|| async { "results\n" }))
        .route("/suggest", get(|| async { "suggestions\n" }))
        .route(
            "/api/items",
            get(|| async { "[]\n" }).post(|| async { "created\n" }),
        )
        .route("/health", get(|| async { "ok\n" }))
        .route("/status", get(|| async { "up\n" }))
        .layer(handle.layer())
}

fn modified(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reloads the configuration whenever its file changes (checked every `every`):
/// a valid file becomes the policy of the requests that start from then on, with
/// the counts kept; an invalid one is reported on standard error and the running
/// policy stays.
pub async fn watch(mut reloader: Reloader, path: PathBuf, every: Duration) {
    let mut seen = modified(&path);
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now = modified(&path);
        if now == seen {
            continue;
        }
        seen = now;
        match reloader.reload().await {
            Ok(()) => eprintln!("reloaded {}", path.display()),
            Err(e) => eprintln!("kept the running policy: {e}"),
        }
    }
}

//! One hello-world axum service, served bare, behind limiter's layer, or behind
//! `tower_governor`, for `scripts/bench-http.sh` to drive with `wrk`.
//!
//! Usage: `limiter-bench-http bare|limiter|governor ADDR` (one tokio worker thread, so
//! that the load generator gets the other core).
//!
//! Both limiters key by the peer address and are configured never to reject, so the
//! bench measures the allowed path: a decision per request and nothing else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use limiter::http::HttpLimiter;
use limiter::{MemoryStorage, RateLimiter};
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::GovernorLayer;

fn app(variant: &str) -> Result<Router, Box<dyn std::error::Error>> {
    let hello = Router::new().route("/", get(|| async { "Hello, World!" }));
    Ok(match variant {
        "bare" => hello,
        "limiter" => {
            let limiter = HttpLimiter::builder(RateLimiter::new(Arc::new(MemoryStorage::new())))
                .default_limits("1000000000 per second")
                .build()?;
            hello.layer(limiter.layer())
        }
        "governor" => {
            let config = GovernorConfigBuilder::default()
                .period(Duration::from_nanos(1))
                .burst_size(1_000_000_000)
                .finish()
                .ok_or("invalid governor quota")?;
            hello.layer(GovernorLayer::new(config))
        }
        other => {
            return Err(format!("unknown variant {other:?}: bare, limiter or governor").into())
        }
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let variant = args.next().unwrap_or_else(|| "bare".to_owned());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18080".to_owned());
    let app = app(&variant)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
        Ok(())
    })
}

//! One hello-world service, for `scripts/bench-http.sh` to drive with `wrk`: on axum,
//! served bare, behind limiter's layer, or behind `tower_governor`; on actix-web,
//! served bare, behind limiter's middleware, or behind `actix-governor`.
//!
//! Usage: `limiter-bench-http VARIANT ADDR`, VARIANT one of [`VARIANTS`]. Each server
//! runs on one thread (one tokio worker, or one actix worker), so that the load
//! generator gets the other core.
//!
//! Every limiter keys by the peer address and is configured never to reject, so the
//! bench measures the allowed path: a decision per request and nothing else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use limiter::http::HttpLimiter;
use limiter::{MemoryStorage, RateLimiter};

/// The variants, in the order the bench script runs them.
pub const VARIANTS: [&str; 6] = [
    "bare",
    "limiter",
    "governor",
    "actix-bare",
    "actix-limiter",
    "actix-governor",
];

const HELLO: &str = "Hello, World!";

/// A limiter that never rejects: 10⁹ per second, keyed by the peer (the default).
fn http_limiter() -> Result<HttpLimiter, Box<dyn std::error::Error>> {
    Ok(
        HttpLimiter::builder(RateLimiter::new(Arc::new(MemoryStorage::new())))
            .default_limits("1000000000 per second")
            .build()?,
    )
}

fn axum_app(variant: &str) -> Result<Router, Box<dyn std::error::Error>> {
    let hello = Router::new().route("/", get(|| async { HELLO }));
    Ok(match variant {
        "bare" => hello,
        "limiter" => hello.layer(http_limiter()?.layer()),
        "governor" => {
            let config = tower_governor::governor::GovernorConfigBuilder::default()
                .period(Duration::from_nanos(1))
                .burst_size(1_000_000_000)
                .finish()
                .ok_or("invalid governor quota")?;
            hello.layer(tower_governor::GovernorLayer::new(config))
        }
        other => return Err(unknown(other)),
    })
}

fn unknown(variant: &str) -> Box<dyn std::error::Error> {
    format!(
        "unknown variant {variant:?}: one of {}",
        VARIANTS.join(", ")
    )
    .into()
}

fn serve_axum(variant: &str, addr: &str) -> Result<(), Box<dyn std::error::Error>> {
    let app = axum_app(variant)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
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

fn serve_actix(variant: &str, addr: &str) -> Result<(), Box<dyn std::error::Error>> {
    use actix_web::{web, App, HttpServer};

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // One worker thread; the app differs only by its middleware.
    macro_rules! serve {
        ($app:expr) => {{
            let server = HttpServer::new($app).workers(1).bind(addr)?;
            runtime.block_on(server.run())?;
        }};
    }
    let hello = || web::get().to(|| async { HELLO });
    match variant {
        "actix-bare" => serve!(move || App::new().route("/", hello())),
        "actix-limiter" => {
            let limiter = http_limiter()?;
            serve!(move || App::new()
                .wrap(limiter.actix_middleware())
                .route("/", hello()))
        }
        "actix-governor" => {
            let governor = actix_governor::GovernorConfigBuilder::default()
                .period(Duration::from_nanos(1))
                .burst_size(1_000_000_000)
                .finish()
                .ok_or("invalid governor quota")?;
            serve!(move || App::new()
                .wrap(actix_governor::Governor::new(&governor))
                .route("/", hello()))
        }
        other => return Err(unknown(other)),
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let variant = args.next().unwrap_or_else(|| "bare".to_owned());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18080".to_owned());
    if variant.starts_with("actix-") {
        serve_actix(&variant, &addr)
    } else {
        serve_axum(&variant, &addr)
    }
}

//! A fixed number of requests through the same axum services as the HTTP bench
//! (bare, behind limiter's layer, behind `tower_governor`), called in process with
//! no network, for instruction counts of what each layer adds per request.
//!
//! ```text
//! cargo build --release -p limiter-bench-http --example request_path
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null --collect-atstart=no \
//!     --toggle-collect='request_path::timed' \
//!     target/release/examples/request_path limiter 1 200000
//! ```
//!
//! Arguments: the variant (`bare`, `limiter` or `governor`), the number of distinct
//! client addresses (taken round-robin) and the number of timed requests.
//! `scripts/instructions.sh http:VARIANT:CLIENTS` counts them.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use limiter::http::HttpLimiter;
use limiter::{MemoryStorage, RateLimiter};
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::GovernorLayer;
use tower_service::Service;

/// The bench server's services (`src/main.rs`), with the same quotas: never rejecting.
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
        other => return Err(format!("unknown variant {other:?}").into()),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let variant = args.get(1).map_or("limiter", String::as_str);
    let clients: u32 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1);
    let requests: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(200_000);
    let peers: Vec<SocketAddr> = (0..clients.max(1))
        .map(|i| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + i)), 40_000))
        .collect();
    // As `axum::serve` does (`into_make_service`): the routes' handlers are made into
    // services once, here, rather than on every request (and the layers with them).
    let mut app = app(variant)?.with_state(());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Inside the runtime's context, though every request is answered on its first
    // poll.
    let _context = runtime.enter();
    // Every client once before the timed requests (the clock calibrated there too).
    for peer in &peers {
        let _ = serve(&mut app, *peer);
    }
    let served = timed(&mut app, &peers, requests);
    if served != requests {
        return Err(format!("{served} of {requests} requests served at once").into());
    }
    Ok(())
}

/// One request, polled once: whether it was answered at once with a success.
fn serve(app: &mut Router, peer: SocketAddr) -> bool {
    let request = Request::builder()
        .uri("/")
        .extension(ConnectInfo(peer))
        .body(Body::empty())
        .unwrap_or_default();
    let future = std::pin::pin!(app.call(request));
    let mut cx = Context::from_waker(Waker::noop());
    matches!(future.poll(&mut cx), Poll::Ready(Ok(response)) if response.status().is_success())
}

/// The timed requests, the only code counted (`--toggle-collect=request_path::timed`);
/// how many were answered at once with a success.
#[inline(never)]
fn timed(app: &mut Router, peers: &[SocketAddr], requests: usize) -> usize {
    let mut served = 0;
    for i in 0..requests {
        served += usize::from(serve(app, peers[i % peers.len()]));
    }
    served
}

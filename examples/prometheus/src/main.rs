//! The rate limiter's metrics for Prometheus.
//!
//! Run with: `cargo run -p example-prometheus`, then:
//!
//! ```text
//! curl localhost:5001/hello     # hello (three times a minute, then 429)
//! curl localhost:5001/metrics   # limiter_requests_allowed_total{route="/hello",…} 3
//! ```
//!
//! `PROMETHEUS_EXAMPLE_ADDR` changes the address (default `127.0.0.1:5001`).

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr =
        std::env::var("PROMETHEUS_EXAMPLE_ADDR").unwrap_or_else(|_| "127.0.0.1:5001".to_owned());
    let handle = example_prometheus::install_recorder()?;
    let app = example_prometheus::app(handle)?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

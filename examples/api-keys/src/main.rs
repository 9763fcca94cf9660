//! Per-user API-key limits, per plan, with the IETF headers.
//!
//! Run with: `cargo run -p example-api-keys`, then:
//!
//! ```text
//! curl -i -H 'x-api-key: k-free-1' localhost:5001/data   # RateLimit: "5 per 1 minute";r=4;t=60
//! curl -i -H 'x-api-key: k-pro-1' localhost:5001/data    # RateLimit-Policy lists both pro limits
//! curl -i localhost:5001/data                            # anonymous: 2 per minute per address
//! ```
//!
//! `LISTEN_ADDR` changes the address (default `127.0.0.1:5001`).

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:5001".to_owned());
    let app = example_api_keys::app(&example_api_keys::limiter()?);
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

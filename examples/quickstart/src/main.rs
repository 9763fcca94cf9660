//! Flask-Limiter's quickstart on axum.
//!
//! Run with: `cargo run -p example-quickstart`, then:
//!
//! ```text
//! curl localhost:5000/fast   # 42
//! curl localhost:5000/fast   # 42 (a second later)
//! curl localhost:5000/fast   # 429: Too many requests: 2 per 1 minute
//! curl localhost:5000/slow   # 24
//! curl localhost:5000/slow   # 429: Too many requests: 1 per 1 day
//! curl localhost:5000/ping   # PONG, always
//! ```
//!
//! `QUICKSTART_ADDR` changes the address (default `127.0.0.1:5000`).

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("QUICKSTART_ADDR").unwrap_or_else(|_| "127.0.0.1:5000".to_owned());
    let limiter = example_quickstart::limiter()?;
    let app = example_quickstart::app(&limiter);
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

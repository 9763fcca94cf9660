//! Login brute-force protection with conditional deduction.
//!
//! Run with: `cargo run -p example-login`, then:
//!
//! ```text
//! curl -d hunter2 localhost:5002/login   # welcome (costs nothing)
//! curl -d guess localhost:5002/login     # wrong password (1 of 3)
//! curl -d guess localhost:5002/login     # wrong password (2 of 3)
//! curl -d guess localhost:5002/login     # wrong password (3 of 3)
//! curl -d hunter2 localhost:5002/login   # 429 until the minute is over
//! ```
//!
//! `LISTEN_ADDR` changes the address (default `127.0.0.1:5002`).

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:5002".to_owned());
    let app = example_login::app(&example_login::limiter()?);
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

//! A custom key function behind a trusted proxy.
//!
//! Run with: `cargo run -p example-proxy`, then (curl playing the proxy on loopback):
//!
//! ```text
//! curl -H 'x-forwarded-for: 203.0.113.7' -H 'x-tenant: acme' localhost:5003/report  # 3 per minute
//! curl -H 'x-forwarded-for: 203.0.113.8' -H 'x-tenant: acme' localhost:5003/report  # another client
//! curl -H 'x-forwarded-for: 203.0.113.7' -H 'x-tenant: initech' localhost:5003/report  # another tenant
//! ```
//!
//! `LISTEN_ADDR` changes the address (default `127.0.0.1:5003`).

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:5003".to_owned());
    let app = example_proxy::app(&example_proxy::limiter()?);
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

//! tonic's health service behind the limiter, on `127.0.0.1:50051` (`GRPC_ADDR`
//! changes it). Run with `cargo run -p example-grpc`, then, with `grpcurl`:
//!
//! ```text
//! grpcurl -plaintext -H 'x-api-key: k1' 127.0.0.1:50051 grpc.health.v1.Health/Check   # SERVING
//! grpcurl -plaintext -H 'x-api-key: k1' 127.0.0.1:50051 grpc.health.v1.Health/Check   # SERVING
//! grpcurl -plaintext -H 'x-api-key: k1' 127.0.0.1:50051 grpc.health.v1.Health/Check   # ResourceExhausted
//! ```

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("GRPC_ADDR").unwrap_or_else(|_| "127.0.0.1:50051".to_owned());
    let limiter = example_grpc::limiter()?;
    let app = example_grpc::app(&limiter);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

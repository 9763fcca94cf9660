//! An axum service configured entirely by `examples/limiter.toml`.
//!
//! Run with: `cargo run -p example-config` (or `cargo run -p example-config -- FILE`),
//! then:
//!
//! ```text
//! curl -i localhost:5000/login -d ''                          # 200, RateLimit headers
//! for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{http_code}\n' localhost:5000/login -d ''; done
//!                                                             # … 429 with a problem+json body
//! curl localhost:5000/health                                  # never limited
//! ```
//!
//! Edit the file while it runs: the new policy applies to the next requests, counts
//! kept. `LIMITER_*` variables override fields (`LIMITER_DEFAULT_LIMITS="1/second"`),
//! `CONFIG_ADDR` changes the address (default `127.0.0.1:5000`).

use std::net::SocketAddr;
use std::time::Duration;

use limiter::config::{Loader, Reloader};

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("example-config: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os()
        .nth(1)
        .map_or_else(example_config::default_path, Into::into);
    let loader = Loader::from_env()?;
    for (name, meant) in loader.misspelt() {
        eprintln!("warning: {name} overrides nothing: did you mean {meant}?");
    }
    let reloader = Reloader::start(&path, loader).await?;
    let app = example_config::app(reloader.handle());
    tokio::spawn(example_config::watch(
        reloader,
        path,
        Duration::from_secs(1),
    ));

    let addr = std::env::var("CONFIG_ADDR").unwrap_or_else(|_| "127.0.0.1:5000".to_owned());
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

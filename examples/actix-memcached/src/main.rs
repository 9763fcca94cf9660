//! An actix-web service on the Memcached storage.
//!
//! Run with: `LIMITER_MEMCACHED_URL=memcached://127.0.0.1:11211 cargo run -p example-actix-memcached`
//! (a Memcached must listen there), then:
//!
//! ```text
//! curl -i localhost:5003/      # hello: 4 of 5 per 1 minute left, with the headers
//! curl localhost:5003/         # from the third on, the server reports the shadow limit
//! curl localhost:5003/slow     # 24, then 429 until tomorrow
//! curl localhost:5003/ping     # PONG, never limited
//! ```
//!
//! `LISTEN_ADDR` changes the address (default `127.0.0.1:5003`), `LIMITER_KEY_PREFIX`
//! the key prefix in Memcached (default `example-actix`).

use actix_web::{App, HttpServer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let uri = std::env::var("LIMITER_MEMCACHED_URL")
        .unwrap_or_else(|_| example_actix_memcached::DEFAULT_URI.to_owned());
    let addr = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:5003".to_owned());
    let prefix = std::env::var("LIMITER_KEY_PREFIX").unwrap_or_else(|_| "example-actix".to_owned());
    let limiter = example_actix_memcached::limiter(&uri, &prefix).await?;
    let server = HttpServer::new(move || {
        App::new()
            .wrap(limiter.actix_middleware())
            .configure(example_actix_memcached::routes)
    })
    .workers(2)
    .bind(&addr)?;
    for bound in server.addrs() {
        println!("listening on http://{bound}");
    }
    eprintln!("rate limits stored in {uri}");
    server.run().await?;
    Ok(())
}

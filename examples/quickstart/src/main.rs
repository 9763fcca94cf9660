//! Quickstart: two clients share a service limited to 3 requests per second and 5 per
//! minute, on the in-memory storage.
//!
//! Run with: `cargo run -p example-quickstart`

use std::sync::Arc;
use std::time::Duration;

use limiter::strategy::MovingWindow;
use limiter::{Key, MemoryStorage, RateLimiter};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let limiter = RateLimiter::builder(Arc::new(MemoryStorage::new()))
        .strategy(MovingWindow)
        .build();
    let limits = limiter::parse_many("3 per second; 5 per minute")?;
    println!("limits: {}", join(&limits));

    let clients = [Key::from("203.0.113.9"), Key::from("198.51.100.7")];
    for round in 1..=4 {
        for client in &clients {
            let decision = limiter.hit_all(&limits, client, 1).await?;
            let verdict = if decision.is_allowed() {
                format!(
                    "allowed, {} left of {}",
                    decision.remaining(),
                    decision.limit()
                )
            } else {
                let wait = decision.retry_after().unwrap_or_default();
                format!(
                    "rejected by {}, retry in {} ms",
                    decision.limit(),
                    wait.as_millis()
                )
            };
            println!(
                "round {round} {client:<14} {verdict}",
                client = name(client)
            );
        }
        // The first client is greedy: two more requests each round.
        for _ in 0..2 {
            limiter.hit_all(&limits, &clients[0], 1).await?;
        }
        tokio::time::sleep(Duration::from_millis(350)).await;
    }

    for client in &clients {
        let stats = limiter.stats(&limits[1], client).await?;
        println!(
            "{:<14} {} of {} left, full again in {} s",
            name(client),
            stats.remaining,
            limits[1],
            stats.reset_after().as_secs()
        );
    }
    Ok(())
}

fn name(key: &Key) -> &'static str {
    if *key == Key::from("203.0.113.9") {
        "203.0.113.9"
    } else {
        "198.51.100.7"
    }
}

fn join(limits: &[limiter::RateLimit]) -> String {
    limits
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

//! Console demo: two clients share a service limited to 3 requests per second and 5 per
//! minute, on the in-memory storage.
//!
//! Run with: `cargo run -p example-console`

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

    let clients = ["203.0.113.9", "198.51.100.7"].map(|ip| (ip, Key::from(ip)));
    for round in 1..=4 {
        for (name, client) in &clients {
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
            println!("round {round} {name:<14} {verdict}");
        }
        // The first client is greedy: two more requests each round.
        for _ in 0..2 {
            let _ = limiter.hit_all(&limits, &clients[0].1, 1).await?;
        }
        tokio::time::sleep(Duration::from_millis(350)).await;
    }

    for (name, client) in &clients {
        let stats = limiter.stats(&limits[1], client).await?;
        println!(
            "{name:<14} {} of {} left, full again in {} s",
            stats.remaining,
            limits[1],
            stats.reset_after().unwrap_or_default().as_secs()
        );
    }
    Ok(())
}

fn join(limits: &[limiter::RateLimit]) -> String {
    limits
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

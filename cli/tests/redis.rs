//! The `limiter` binary against a real Redis at `LIMITER_REDIS_URL` (started by
//! `scripts/services/redis.sh`): status sees counts made by a service, clear resets
//! them, ping and bench run on the server.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::process::{Command, Output, Stdio};

use limiter::{Key, RateLimit, RateLimiter};

fn url() -> String {
    std::env::var("LIMITER_REDIS_URL").unwrap_or_else(|_| {
        panic!(
            "LIMITER_REDIS_URL is not set: start Redis with \
             `source scripts/services/redis.sh` and run the tests from that shell"
        )
    })
}

fn limiter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_limiter"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

fn json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn status_and_clear_see_the_counts_a_service_made() {
    let url = url();
    let key_text = format!("cli-test-{}", std::process::id());
    // A service counts 3 hits of 10 per minute.
    let storage = limiter::storage_from_uri(&url).await.unwrap();
    let core = RateLimiter::new(storage);
    let limit: RateLimit = "10/minute".parse().unwrap();
    for _ in 0..3 {
        let decision = core
            .hit(&limit, &Key::from(key_text.as_str()), 1)
            .await
            .unwrap();
        assert!(decision.is_allowed());
    }
    let status = |extra: &[&str]| {
        let mut args = vec![
            "status",
            "--storage",
            &url,
            "--limit",
            "10/minute",
            "--key",
            &key_text,
            "--json",
        ];
        args.extend_from_slice(extra);
        json(&limiter(&args))
    };
    let value = status(&[]);
    assert_eq!(value["remaining"], 7);
    assert!(value["reset_after_ms"].as_u64().unwrap() <= 60_000);
    // Read-only: a second look sees the same.
    assert_eq!(status(&[])["remaining"], 7);
    // Another strategy is another counter.
    assert_eq!(status(&["--strategy", "gcra"])["remaining"], 10);

    let text = String::from_utf8(
        limiter(&[
            "status",
            "--storage",
            &url,
            "--limit",
            "10/minute",
            "--key",
            &key_text,
        ])
        .stdout,
    )
    .unwrap();
    assert!(text.contains("remaining  7 of 10"), "{text}");
    assert!(text.contains("resets     in "), "{text}");

    // clear refuses without --yes, then clears.
    let output = limiter(&[
        "clear",
        "--storage",
        &url,
        "--limit",
        "10/minute",
        "--key",
        &key_text,
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(status(&[])["remaining"], 7);
    let output = limiter(&[
        "clear",
        "--storage",
        &url,
        "--limit",
        "10/minute",
        "--key",
        &key_text,
        "--yes",
    ]);
    assert!(output.status.success());
    assert_eq!(status(&[])["remaining"], 10);

    // A spent key shows when to retry.
    for _ in 0..10 {
        let _ = core
            .hit(&limit, &Key::from(key_text.as_str()), 1)
            .await
            .unwrap();
    }
    let value = status(&[]);
    assert_eq!(value["remaining"], 0);
    assert_eq!(value["allowed"], false);
    assert!(value["retry_after_ms"].as_u64().unwrap() > 0);
    let _ = limiter(&[
        "clear",
        "--storage",
        &url,
        "--limit",
        "10/minute",
        "--key",
        &key_text,
        "--yes",
    ]);
}

#[test]
fn ping_measures_the_round_trip() {
    let url = url();
    let value = json(&limiter(&[
        "ping",
        "--storage",
        &url,
        "--count",
        "10",
        "--json",
    ]));
    assert_eq!(value["healthy"], true);
    assert!(value["p50_ms"].as_f64().unwrap() > 0.0);
    // Nothing listens there: one line, non-zero.
    let output = limiter(&[
        "ping",
        "--storage",
        "redis://127.0.0.1:1?connect_timeout=300ms",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&output.stderr).lines().count(), 1);
}

#[test]
fn bench_runs_on_redis() {
    let url = url();
    let value = json(&limiter(&[
        "bench",
        "--storage",
        &url,
        "--duration",
        "1s",
        "--concurrency",
        "8",
        "--keys",
        "100",
        "--reject-ratio",
        "0.2",
        "--strategy",
        "sliding-window-counter",
        "--json",
    ]));
    assert!(value["decisions"].as_u64().unwrap() > 50, "{value}");
    assert_eq!(value["errors"], 0);
    let ratio = value["reject_ratio"].as_f64().unwrap();
    assert!((0.1..0.3).contains(&ratio), "{value}");
}

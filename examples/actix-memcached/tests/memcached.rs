//! The example's real server, as its own process on a loopback port, limited on a
//! real Memcached (`LIMITER_MEMCACHED_URL`, which `scripts/services/memcached.sh`
//! sets): the counts are shared with a second process on the same server.
#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The example's binary, stopped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn memcached_url() -> String {
    std::env::var("LIMITER_MEMCACHED_URL").unwrap_or_else(|_| {
        panic!(
            "LIMITER_MEMCACHED_URL is not set: this test needs a real Memcached. Start one with \
             `source scripts/lib.sh && source scripts/services/memcached.sh` (or set the variable \
             to memcached://HOST:PORT) and run the test again"
        )
    })
}

/// Starts the example on a free loopback port with `key_prefix`; returns it and its
/// address.
fn start(url: &str, key_prefix: &str) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_example-actix-memcached"))
        .env("LIMITER_MEMCACHED_URL", url)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("LIMITER_KEY_PREFIX", key_prefix)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (server, addr)
}

#[tokio::test]
async fn limits_live_in_memcached_and_are_shared_between_processes() {
    let url = memcached_url();
    // A fresh prefix per run: earlier runs' counts on the same server do not matter.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("example-actix-test-{}-{nanos}", std::process::id());
    let (_first, addr) = start(&url, &prefix);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let get = |addr: String, path: &'static str| {
        let client = client.clone();
        async move {
            client
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .unwrap()
        }
    };

    for left in (0..5).rev() {
        // The shadow trial limit (2 per minute) is over from the third request on, and
        // lets it through all the same.
        let response = get(addr.clone(), "/").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-ratelimit-limit"], "5");
        assert_eq!(
            response.headers()["x-ratelimit-remaining"],
            left.to_string().as_str()
        );
        let body = response.text().await.unwrap();
        assert_eq!(body, format!("hello: {left} of 5 per 1 minute left\n"));
    }
    let limited = get(addr.clone(), "/").await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(get(addr.clone(), "/ping").await.status(), 200);
    assert_eq!(get(addr.clone(), "/slow").await.status(), 200);
    assert_eq!(get(addr.clone(), "/slow").await.status(), 429);

    // A second process on the same Memcached and prefix sees the spent budgets.
    let (_second, other) = start(&url, &prefix);
    assert_eq!(get(other.clone(), "/").await.status(), 429);
    assert_eq!(get(other.clone(), "/slow").await.status(), 429);
    assert_eq!(get(other, "/ping").await.status(), 200);
}

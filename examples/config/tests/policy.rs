//! The example service with its policy from `examples/limiter.toml`, on a loopback
//! port, driven by a real client; then the file changes under it.
#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use limiter::config::{Loader, Reloader};

async fn serve(path: PathBuf) -> SocketAddr {
    let reloader = Reloader::start(&path, Loader::without_env()).await.unwrap();
    let app = example_config::app(reloader.handle());
    tokio::spawn(example_config::watch(
        reloader,
        path,
        Duration::from_millis(50),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// A client behind the trusted proxy, named by its address in `X-Forwarded-For`.
async fn send(addr: SocketAddr, method: &str, path: &str, client: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(method.parse().unwrap(), format!("http://{addr}{path}"))
        .header("x-forwarded-for", client)
        .send()
        .await
        .unwrap()
}

async fn statuses(addr: SocketAddr, method: &str, path: &str, client: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(send(addr, method, path, client).await.status().as_u16());
    }
    out
}

fn copy_of_the_example(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("example-config-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("limiter.toml");
    std::fs::copy(example_config::default_path(), &path).unwrap();
    path
}

#[tokio::test]
async fn the_file_sets_the_whole_policy() {
    let addr = serve(example_config::default_path()).await;

    // /login: 5 POSTs per minute, then a problem document with both header styles.
    assert_eq!(
        statuses(addr, "POST", "/login", "203.0.113.1", 5).await,
        [200; 5]
    );
    let rejected = send(addr, "POST", "/login", "203.0.113.1").await;
    assert_eq!(rejected.status(), 429);
    let headers = rejected.headers().clone();
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(headers["x-ratelimit-limit"], "5");
    assert!(headers.contains_key("ratelimit-policy"));
    assert!(headers.contains_key("retry-after"));
    let body = rejected.text().await.unwrap();
    assert!(
        body.contains("\"detail\":\"rate limit exceeded: 5 per 1 minute\""),
        "{body}"
    );
    // Another client behind the proxy has its own budget; GETs of /login get the
    // defaults (5 per second).
    assert_eq!(
        send(addr, "POST", "/login", "203.0.113.2").await.status(),
        200
    );
    assert_eq!(
        statuses(addr, "GET", "/login", "203.0.113.1", 6).await,
        [200, 200, 200, 200, 200, 429]
    );

    // /search (cost 2) and /suggest share 30 per minute.
    assert_eq!(
        statuses(addr, "GET", "/search", "198.51.100.1", 5).await,
        [200; 5]
    );
    let suggest = statuses(addr, "GET", "/suggest", "198.51.100.1", 21).await;
    assert_eq!(
        suggest.iter().filter(|s| **s == 200).count(),
        20,
        "{suggest:?}"
    );

    // /api/items counts per API key, per method.
    let key = |method, key: &'static str| async move {
        reqwest::Client::new()
            .request(method, format!("http://{addr}/api/items"))
            .header("x-forwarded-for", "192.0.2.1")
            .header("x-api-key", key)
            .send()
            .await
            .unwrap()
            .headers()["x-ratelimit-limit"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(key(reqwest::Method::GET, "k1").await, "100");
    assert_eq!(key(reqwest::Method::POST, "k1").await, "100");

    // /health is never limited.
    assert_eq!(
        statuses(addr, "GET", "/health", "203.0.113.1", 30).await,
        [200; 30]
    );
}

#[tokio::test]
async fn editing_the_file_changes_the_running_service() {
    let path = copy_of_the_example("edit");
    let addr = serve(path.clone()).await;
    assert_eq!(
        statuses(addr, "GET", "/health", "203.0.113.9", 3).await,
        [200; 3]
    );

    // /health loses its exemption: 2 per minute.
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replace(
        "path = \"/health\"\nexempt = true",
        "path = \"/health\"\nlimits = [\"2 per minute\"]",
    );
    assert_ne!(text, edited);
    std::fs::write(&path, edited).unwrap();
    let mut seen = Vec::new();
    for _ in 0..100 {
        let status = send(addr, "GET", "/health", "203.0.113.9")
            .await
            .status()
            .as_u16();
        seen.push(status);
        if status == 429 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.last(), Some(&429), "{seen:?}");

    // A broken file is reported and changes nothing.
    std::fs::write(&path, "default_limits = [\"2 per fortnight\"]\n").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        send(addr, "GET", "/health", "203.0.113.9").await.status(),
        429
    );
    assert_eq!(
        send(addr, "GET", "/health", "203.0.113.10").await.status(),
        200
    );
}

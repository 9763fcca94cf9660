//! The example's plans, on a loopback server.
#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::net::SocketAddr;

async fn serve() -> SocketAddr {
    let app = example_api_keys::app(&example_api_keys::limiter().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    addr
}

#[tokio::test]
async fn free_pro_and_anonymous() {
    let addr = serve().await;
    let c = reqwest::Client::new();
    let get = |key: Option<&'static str>| {
        let c = c.clone();
        async move {
            let mut request = c.get(format!("http://{addr}/data"));
            if let Some(key) = key {
                request = request.header("x-api-key", key);
            }
            request.send().await.unwrap()
        }
    };
    let first = get(Some("k-free-1")).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["ratelimit"], "\"5 per 1 minute\";r=4;t=60");
    assert_eq!(
        first.headers()["ratelimit-policy"],
        "\"5 per 1 minute\";q=5;w=60"
    );
    for _ in 0..4 {
        assert_eq!(get(Some("k-free-1")).await.status(), 200);
    }
    let limited = get(Some("k-free-1")).await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));

    let pro = get(Some("k-pro-1")).await;
    assert_eq!(pro.status(), 200);
    assert_eq!(
        pro.headers()["ratelimit-policy"],
        "\"100 per 1 minute\";q=100;w=60, \"10 per 1 second\";q=10;w=1"
    );
    // Unknown keys have no plan: no limit here, the handler refuses them.
    assert_eq!(get(Some("k-nope")).await.status(), 401);
    assert!(get(Some("k-nope"))
        .await
        .headers()
        .get("ratelimit")
        .is_none());

    assert_eq!(get(None).await.status(), 200);
    assert_eq!(get(None).await.status(), 200);
    assert_eq!(get(None).await.status(), 429);
}

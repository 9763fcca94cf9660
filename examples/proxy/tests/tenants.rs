//! The example's key, on a loopback server playing the proxy's upstream.
#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::net::SocketAddr;

#[tokio::test]
async fn tenant_and_forwarded_client() {
    let app = example_proxy::app(&example_proxy::limiter().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let c = reqwest::Client::new();
    let get = |xff: &'static str, tenant: &'static str| {
        let c = c.clone();
        async move {
            c.get(format!("http://{addr}/report"))
                .header("x-forwarded-for", xff)
                .header("x-tenant", tenant)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    for _ in 0..3 {
        assert_eq!(get("203.0.113.7", "acme").await, 200);
    }
    assert_eq!(get("203.0.113.7", "acme").await, 429);
    // A forged entry to the left changes nothing.
    assert_eq!(get("198.51.100.1, 203.0.113.7", "acme").await, 429);
    assert_eq!(get("203.0.113.8", "acme").await, 200);
    assert_eq!(get("203.0.113.7", "initech").await, 200);
}

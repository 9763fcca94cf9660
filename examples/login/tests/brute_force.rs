//! The example's login limits, on a loopback server.
#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::net::SocketAddr;

#[tokio::test]
async fn only_failed_logins_count() {
    let app = example_login::app(&example_login::limiter().unwrap());
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
    let login = |password: &'static str| {
        let c = c.clone();
        async move {
            c.post(format!("http://{addr}/login"))
                .body(password)
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..5 {
        assert_eq!(login(example_login::PASSWORD).await.status(), 200);
    }
    let first = login("guess").await;
    assert_eq!(first.status(), 401);
    assert_eq!(first.headers()["x-ratelimit-remaining"], "2");
    assert_eq!(login("guess").await.status(), 401);
    assert_eq!(login("guess").await.status(), 401);
    assert_eq!(login("guess").await.status(), 429);
    assert_eq!(login(example_login::PASSWORD).await.status(), 429);
}

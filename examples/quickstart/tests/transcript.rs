//! The README's curl session, against the quickstart's real server on a loopback port.
#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;

async fn serve() -> SocketAddr {
    let limiter = example_quickstart::limiter().expect("the quickstart's limits parse");
    let app = example_quickstart::app(&limiter);
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

async fn get(client: &reqwest::Client, addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let response = client
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn quickstart_curl_session() {
    let addr = serve().await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    assert_eq!(
        get(&client, addr, "/fast").await,
        (StatusCode::OK, "42".into())
    );
    // A second later: the "1 per second" window is over.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        get(&client, addr, "/fast").await,
        (StatusCode::OK, "42".into())
    );
    let (status, body) = get(&client, addr, "/fast").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(body.contains("2 per 1 minute"), "{body}");

    // A header the client sends does not make it someone else.
    let spoofed = client
        .get(format!("http://{addr}/fast"))
        .header("x-forwarded-for", "198.51.100.1")
        .header("forwarded", "for=198.51.100.2")
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status(), StatusCode::TOO_MANY_REQUESTS);

    assert_eq!(
        get(&client, addr, "/slow").await,
        (StatusCode::OK, "24".into())
    );
    let (status, body) = get(&client, addr, "/slow").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(body.contains("1 per 1 day"), "{body}");

    for _ in 0..4 {
        assert_eq!(
            get(&client, addr, "/ping").await,
            (StatusCode::OK, "PONG".into())
        );
    }
}

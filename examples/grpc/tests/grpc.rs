//! The example's gRPC service on a loopback port, called by tonic's own client: a
//! unary and a streaming method share one budget per API key, and a call over it ends
//! with `RESOURCE_EXHAUSTED` and a `RetryInfo` a client can act on.
#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{health_check_response::ServingStatus, HealthCheckRequest};
use tonic_types::StatusExt;

async fn serve() -> Channel {
    let limiter = example_grpc::limiter().unwrap();
    let app = example_grpc::app(&limiter);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap()
}

fn request(key: Option<&'static str>) -> Request<HealthCheckRequest> {
    let mut request = Request::new(HealthCheckRequest {
        service: String::new(),
    });
    if let Some(key) = key {
        request
            .metadata_mut()
            .insert("x-api-key", MetadataValue::from_static(key));
    }
    request
}

#[tokio::test]
async fn calls_over_the_limit_end_with_resource_exhausted_and_retry_info() {
    let mut client = HealthClient::new(serve().await);

    // A unary call, then a streaming one: two of the key's two units.
    let check = client.check(request(Some("k1"))).await.unwrap();
    assert_eq!(check.into_inner().status, ServingStatus::Serving as i32);
    let mut watch = client
        .watch(request(Some("k1")))
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    // The third call of either kind is refused, with when to retry.
    for over in [
        client.check(request(Some("k1"))).await.unwrap_err(),
        client.watch(request(Some("k1"))).await.unwrap_err(),
    ] {
        assert_eq!(over.code(), Code::ResourceExhausted, "{over:?}");
        assert!(over.message().contains("2 per 1 minute"), "{over:?}");
        let retry = over.get_details_retry_info().expect("a RetryInfo detail");
        let delay = retry.retry_delay.expect("a retry delay");
        assert!(
            delay > Duration::from_secs(50) && delay <= Duration::from_secs(60),
            "{delay:?}"
        );
    }

    // Another key has its own budget; calls without a key are not limited here.
    assert!(client.check(request(Some("k2"))).await.is_ok());
    for _ in 0..3 {
        assert!(client.check(request(None)).await.is_ok());
    }
}

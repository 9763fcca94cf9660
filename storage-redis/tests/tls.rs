//! `rediss://`: TLS with the `tls` feature, and a clear refusal without it.

mod common;

#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_connects_and_decides_over_tls() {
    use limiter_core::{Key, RateLimiter, Storage};
    use std::sync::Arc;

    let storage = common::connect("LIMITER_REDIS_TLS_URL", "limiter-tls:").await;
    storage.check().await.expect("PING over TLS");
    let limiter = RateLimiter::builder(Arc::new(storage))
        .namespace(format!("tls-{}", std::process::id()))
        .build();
    let limit = "2 per minute".parse().expect("limit");
    let key = Key::from("tls");
    assert!(limiter
        .hit(&limit, &key, 1)
        .await
        .expect("hit")
        .is_allowed());
    assert!(limiter
        .hit(&limit, &key, 1)
        .await
        .expect("hit")
        .is_allowed());
    assert!(!limiter
        .hit(&limit, &key, 1)
        .await
        .expect("hit")
        .is_allowed());
    limiter.clear(&limit, &key).await.expect("clear");
}

#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_refuses_a_certificate_it_does_not_trust() {
    // The same server, trusting only the system's roots: the test CA is not among them.
    let uri = common::env("LIMITER_REDIS_TLS_URL");
    let without_ca = uri.split('?').next().unwrap_or_default().to_owned();
    let options = without_ca
        .parse::<limiter_redis::RedisOptions>()
        .expect("uri")
        .connect_timeout(std::time::Duration::from_secs(1));
    let result = limiter_redis::RedisStorage::connect(options).await;
    match result {
        Err(limiter_redis::RedisError::Connect { .. } | limiter_redis::RedisError::Tls { .. }) => {}
        other => panic!("expected a refused connection, got {other:?}"),
    }
}

#[cfg(not(feature = "tls"))]
#[tokio::test]
async fn rediss_without_the_tls_feature_is_refused_not_sent_in_plain_text() {
    let _ = common::HOW_TO_START;
    let err = limiter_redis::RedisStorage::from_uri("rediss://127.0.0.1:16390")
        .await
        .expect_err("no TLS in this build");
    assert!(
        matches!(err, limiter_redis::RedisError::TlsUnavailable { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("\"tls\" feature"), "{err}");
}

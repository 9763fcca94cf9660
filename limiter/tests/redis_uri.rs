//! `storage_from_uri` connects every Redis scheme to a real server (those started by
//! `scripts/services/redis.sh`), and the storage it returns decides hits.
#![cfg(feature = "redis")]

use limiter::{storage_from_uri, Key, RateLimiter};

fn env(var: &str) -> String {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{var} is not set: start the test servers first: run `bash scripts/test.sh`, or \
             `source scripts/services/redis.sh` and then `cargo test -p limiter --all-features`"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_redis_scheme_connects_and_decides() {
    let mut vars = vec![
        "LIMITER_REDIS_URL",
        "LIMITER_REDIS_UNIX_URL",
        "LIMITER_REDIS_CLUSTER_URL",
        "LIMITER_REDIS_SENTINEL_URL",
    ];
    if cfg!(feature = "redis-tls") {
        vars.push("LIMITER_REDIS_TLS_URL");
    }
    for var in vars {
        let uri = env(var);
        let sep = if uri.contains('?') { '&' } else { '?' };
        let uri = format!("{uri}{sep}key_prefix=limiter-facade-test:");
        let storage = match storage_from_uri(&uri).await {
            Ok(storage) => storage,
            Err(e) => panic!("{var}: {e}"),
        };
        storage.check().await.expect("check");
        let limiter = RateLimiter::builder(storage)
            .namespace(format!("facade-{}", std::process::id()))
            .build();
        let limit = "2 per minute".parse().expect("limit");
        let key = Key::from(var);
        let _ = limiter.clear(&limit, &key).await;
        assert!(
            limiter
                .hit(&limit, &key, 1)
                .await
                .expect("hit")
                .is_allowed(),
            "{var}"
        );
        assert!(
            limiter
                .hit(&limit, &key, 1)
                .await
                .expect("hit")
                .is_allowed(),
            "{var}"
        );
        assert!(
            !limiter
                .hit(&limit, &key, 1)
                .await
                .expect("hit")
                .is_allowed(),
            "{var}"
        );
        limiter.clear(&limit, &key).await.expect("clear");
    }
}

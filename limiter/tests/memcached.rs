//! `storage_from_uri` with a `memcached://` URI, against the test server of
//! `scripts/services/memcached.sh` (`bash scripts/test.sh` starts it).
#![cfg(feature = "memcached")]

use std::time::{SystemTime, UNIX_EPOCH};

use limiter::{Key, RateLimiter};

#[tokio::test]
async fn memcached_uri_gives_a_working_storage() {
    let Ok(url) = std::env::var("LIMITER_MEMCACHED_URL") else {
        panic!(
            "LIMITER_MEMCACHED_URL is not set: this test needs a Memcached server. Run \
             `bash scripts/test.sh`, or `source scripts/lib.sh && source \
             scripts/services/memcached.sh` first in your shell"
        );
    };
    let storage = limiter::storage_from_uri(&format!("{url}?key_prefix=facade:"))
        .await
        .expect("a memcached storage");
    storage.check().await.expect("the server answers");
    let limiter = RateLimiter::new(storage);
    let limit = "1 per minute".parse().expect("a limit");
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let key = Key::new(["facade-test", &nanos.to_string()]);
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
}

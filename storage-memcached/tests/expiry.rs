//! Expiry as Memcached sees it: time-to-lives beyond 30 days are sent as Unix times,
//! so a `1 per 1 year` limit keeps its state for a year instead of losing it at once.

mod common;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_memcached::{Client, MetaProtocol};
use limiter_core::{Key, RateLimit, RateLimiter};
use limiter_memcached::{MemcachedStorage, ServerAddr};

const DAY: i64 = 24 * 60 * 60;

/// The seconds Memcached says `key` has left, read with `mg <key> t`.
async fn ttl_remaining(storage: &MemcachedStorage, key: &limiter_core::StorageKey) -> i64 {
    let ServerAddr::Tcp { host, port } = &storage.options().get_servers()[0] else {
        panic!("the test server listens on TCP");
    };
    let mut client = Client::new(format!("tcp://{host}:{port}"))
        .await
        .expect("connect");
    let value = client
        .meta_get(storage.memcached_key(key), false, None, Some(&["t"]))
        .await
        .expect("mg")
        .unwrap_or_else(|| panic!("{key} is not stored"));
    value.ttl_remaining.expect("a ttl in the reply")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_windows_keep_their_state_for_the_whole_window() {
    let storage = MemcachedStorage::from_uri(&common::single_url())
        .await
        .expect("a valid uri");
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let limiter = RateLimiter::builder(Arc::new(storage.clone()))
        .namespace(format!("expiry-test-{nanos}"))
        .build();
    // (limit, shortest and longest remaining time-to-live in days)
    for (text, min_days, max_days) in [
        ("1 per 1 year", 364, 366),
        ("1 per 40 days", 40, 41),
        ("1 per 29 days", 29, 30),
        ("1 per 30 days", 30, 31),
    ] {
        let limit: RateLimit = text.parse().expect("a limit");
        let key = Key::from("long-window");
        assert!(limiter
            .hit(&limit, &key, 1)
            .await
            .expect("hit")
            .is_allowed());
        let second = limiter.hit(&limit, &key, 1).await.expect("hit");
        assert!(
            !second.is_allowed(),
            "{text}: state lost right after the hit"
        );
        let stored = limiter.storage_key(&limit, &key);
        let left = ttl_remaining(&storage, &stored).await;
        assert!(
            (min_days * DAY..=max_days * DAY).contains(&left),
            "{text}: {left} s left, expected {min_days} to {max_days} days"
        );
    }
}

//! Keys a client chooses can neither inject a command nor collide: identifiers with
//! line breaks, spaces, NUL, 10 KiB of text or unicode each get their own state, and
//! the other keys on the server survive.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use limiter_core::{Key, RateLimit, RateLimiter, Storage, StorageKey, Timestamp};
use limiter_memcached::MemcachedStorage;

async fn storage() -> MemcachedStorage {
    let uri = common::with_options(&common::pair_url(), "key_prefix=inj:");
    MemcachedStorage::from_uri(&uri).await.expect("a valid uri")
}

/// A namespace of its own for each run.
fn namespace() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("keys-test-{nanos}")
}

fn assert_valid_memcached_key(key: &str) {
    assert!(key.len() <= 250, "{} bytes: {key}", key.len());
    assert!(key.bytes().all(|b| b.is_ascii_graphic()), "{key:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifiers_cannot_inject_commands_or_collide() {
    let storage = storage().await;
    let limiter = RateLimiter::builder(Arc::new(storage.clone()))
        .namespace(namespace())
        .build();
    let limit: RateLimit = "1 per minute".parse().expect("a limit");

    // Keys that must survive everything below.
    let bystanders: Vec<Key> = (0..8)
        .map(|i| Key::from(format!("bystander-{i}")))
        .collect();
    for key in &bystanders {
        assert!(limiter.hit(&limit, key, 1).await.expect("hit").is_allowed());
    }

    let ten_kib = "x".repeat(10 * 1024);
    let ten_kib_variant = format!("{}y", "x".repeat(10 * 1024 - 1));
    let identifiers: Vec<&str> = vec![
        "a\r\nflush_all\r\n",
        "a\r\nflush_all\r\nmg x",
        "a\r\nset bystander 0 0 1\r\n1\r\n",
        "\r\nflush_all",
        "flush_all",
        "a b",
        "a\tb",
        "a_b",
        " ",
        "",
        "\0",
        "a\0b",
        "a\u{7f}",
        &ten_kib,
        &ten_kib_variant,
        "ключ 🔑 键",
        "e\u{301}",
        "\u{e9}",
        "#",
        "a#0000000000000000000000000000000000000000000000000000000000000000",
    ];
    for id in &identifiers {
        let key = Key::from(*id);
        let stored = limiter.storage_key(&limit, &key);
        assert_valid_memcached_key(&storage.memcached_key(&stored));
        let first = limiter.hit(&limit, &key, 1).await.expect("hit");
        assert!(
            first.is_allowed(),
            "{id:?}: first hit rejected (collision?)"
        );
    }
    for id in &identifiers {
        let d = limiter.hit(&limit, &Key::from(*id), 1).await.expect("hit");
        assert!(!d.is_allowed(), "{id:?}: second hit allowed");
    }
    // Nothing was flushed or overwritten: the bystanders are still full, and the
    // server still answers.
    storage.check().await.expect("the servers answer");
    for key in &bystanders {
        let stats = limiter.stats(&limit, key).await.expect("stats");
        assert_eq!(stats.remaining, 0, "{key:?} lost its state");
    }
    // Clearing one identifier clears only it.
    limiter
        .clear(&limit, &Key::from(identifiers[0]))
        .await
        .expect("clear");
    for (i, id) in identifiers.iter().enumerate() {
        let stats = limiter.stats(&limit, &Key::from(*id)).await.expect("stats");
        assert_eq!(stats.remaining, u64::from(i == 0), "{id:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_spelled_like_a_digest_form_stays_apart_from_it() {
    let storage = storage().await;
    let ns = namespace();
    let now = Timestamp::from_millis(0);
    let ttl = Duration::from_secs(60);
    let digested = StorageKey::new(&ns, "with space");
    let encoded = storage.memcached_key(&digested);
    let body = encoded
        .strip_prefix(&format!("inj:{ns}/"))
        .expect("the readable part keeps the key's start");
    assert!(body.contains('#'), "{encoded}");
    // A second key whose text is exactly the first one's Memcached key (less prefix).
    let look_alike = StorageKey::new(&ns, body);
    assert_eq!(format!("inj:{}", look_alike.as_str()), encoded);
    assert_ne!(storage.memcached_key(&look_alike), encoded);

    for (key, value) in [(&digested, b"one"), (&look_alike, b"two")] {
        assert!(storage
            .compare_and_set(key, None, value, ttl, now)
            .await
            .expect("write"));
    }
    let read = |key: StorageKey| {
        let storage = storage.clone();
        async move { storage.get(&key, now).await.expect("get").map(|v| v.value) }
    };
    assert_eq!(read(digested.clone()).await, Some(b"one".to_vec()));
    assert_eq!(read(look_alike.clone()).await, Some(b"two".to_vec()));
}

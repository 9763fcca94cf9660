//! The required storage core: `get`, `compare_and_set`, `delete`, `check`, `clear_all`.
//!
//! These cases call the storage directly, on raw keys inside the case's namespace.
//!
//! **Empty values.** Every built-in strategy reads an empty state as "no state", and
//! never writes one. So a storage may either keep an empty value as present (the
//! [`ReferenceStorage`](crate::ReferenceStorage) does) or treat writing it as making the
//! key absent (for stores that cannot hold empty values), as long as `get` and
//! `compare_and_set` agree: if `get` returns `None`, the key is absent for
//! `compare_and_set` too.

use std::sync::Arc;
use std::time::Duration;

use limiter_core::storage::Version;
use limiter_core::strategy::BuiltIn;
use limiter_core::{Key, StorageKey};

use crate::Ctx;

/// The time-to-live of raw keys written by these cases.
const TTL: Duration = Duration::from_secs(60);

async fn cas(ctx: &Ctx, key: &StorageKey, expected: Option<Version>, value: &[u8]) -> bool {
    let result = ctx
        .storage()
        .compare_and_set(key, expected, value, TTL, ctx.now())
        .await;
    ctx.ok(
        result,
        format_args!(
            "compare_and_set({key:?}, {expected:?}, {} bytes)",
            value.len()
        ),
    )
}

/// Writes `value` to the absent `key` and returns its version.
async fn create(ctx: &Ctx, key: &StorageKey, value: &[u8]) -> Version {
    ensure!(
        ctx,
        cas(ctx, key, None, value).await,
        "compare_and_set({key:?}, None, …) on an absent key did not write"
    );
    match ctx.get(key).await {
        Some(stored) => stored.version,
        None => ctx.fail(format_args!("get({key:?}) is None right after a write")),
    }
}

async fn delete(ctx: &Ctx, key: &StorageKey) {
    let result = ctx.storage().delete(key).await;
    ctx.ok(result, format_args!("delete({key:?})"));
}

/// `check` succeeds (twice in a row).
pub async fn check_succeeds(ctx: &Ctx) {
    for i in 1..=2 {
        let result = ctx.storage().check().await;
        ctx.ok(result, format_args!("check() #{i}"));
    }
}

/// `get` of a key never written is `None`.
pub async fn get_of_an_absent_key_is_none(ctx: &Ctx) {
    ensure_eq!(
        ctx,
        ctx.get(&ctx.raw_key("absent")).await,
        None,
        "get of an absent key"
    );
}

/// `compare_and_set(key, None, …)` writes an absent key (then `get` returns the bytes),
/// and refuses once the key is present, leaving the value as it was.
pub async fn create_writes_only_when_absent(ctx: &Ctx) {
    let key = ctx.raw_key("create");
    create(ctx, &key, b"first").await;
    ensure!(
        ctx,
        !cas(ctx, &key, None, b"second").await,
        "compare_and_set(None) on a present key wrote"
    );
    let stored = ctx.get(&key).await.map(|v| v.value);
    ensure_eq!(
        ctx,
        stored,
        Some(b"first".to_vec()),
        "value after a refused create"
    );
}

/// `compare_and_set` with a version that is no longer current is refused and changes
/// nothing; so is a version that never existed, and a version on an absent key.
pub async fn stale_version_is_refused(ctx: &Ctx) {
    let key = ctx.raw_key("stale");
    let v1 = create(ctx, &key, b"one").await;
    ensure!(
        ctx,
        cas(ctx, &key, Some(v1), b"two").await,
        "write at the current version"
    );
    ensure!(
        ctx,
        !cas(ctx, &key, Some(v1), b"three").await,
        "compare_and_set with a stale version wrote"
    );
    let current = ctx.get(&key).await;
    ensure_eq!(
        ctx,
        current.as_ref().map(|v| v.value.clone()),
        Some(b"two".to_vec()),
        "value after a refused stale write"
    );
    let bogus = Version(current.map_or(0, |v| v.version.0).wrapping_add(987_654_321));
    ensure!(
        ctx,
        !cas(ctx, &key, Some(bogus), b"four").await,
        "bogus version wrote"
    );
    let absent = ctx.raw_key("stale-absent");
    ensure!(
        ctx,
        !cas(ctx, &absent, Some(v1), b"x").await,
        "compare_and_set with a version on an absent key wrote"
    );
    ensure_eq!(
        ctx,
        ctx.get(&absent).await,
        None,
        "absent key after a refused write"
    );
}

/// `compare_and_set` with the current version writes, and the value then carries a
/// new version: the old one is refused.
pub async fn current_version_writes_a_new_version(ctx: &Ctx) {
    let key = ctx.raw_key("current");
    let mut version = create(ctx, &key, b"0").await;
    for i in 1..=5u8 {
        let value = [b'0' + i];
        ensure!(
            ctx,
            cas(ctx, &key, Some(version), &value).await,
            "write #{i}"
        );
        let Some(stored) = ctx.get(&key).await else {
            ctx.fail(format_args!("get after write #{i} is None"))
        };
        ensure_eq!(ctx, stored.value, value.to_vec(), "value after write #{i}");
        ensure!(
            ctx,
            stored.version != version,
            "write #{i} kept the version {version:?}"
        );
        version = stored.version;
    }
}

/// Writing the same bytes again still issues a new version.
pub async fn rewriting_the_same_bytes_changes_the_version(ctx: &Ctx) {
    let key = ctx.raw_key("same-bytes");
    let v1 = create(ctx, &key, b"same").await;
    ensure!(
        ctx,
        cas(ctx, &key, Some(v1), b"same").await,
        "rewrite of the same bytes"
    );
    let v2 = ctx.get(&key).await.map(|v| v.version);
    ensure!(
        ctx,
        v2 != Some(v1),
        "rewriting the same bytes kept version {v1:?}"
    );
    ensure!(
        ctx,
        !cas(ctx, &key, Some(v1), b"same").await,
        "old version accepted"
    );
}

/// ABA: a key deleted and created again never gets back a version issued before,
/// so a writer holding the old version is refused (before and after the re-creation).
pub async fn recreated_key_never_reuses_a_version(ctx: &Ctx) {
    let key = ctx.raw_key("aba");
    let mut seen = vec![create(ctx, &key, b"A").await];
    for round in 1..=5 {
        delete(ctx, &key).await;
        ensure_eq!(
            ctx,
            ctx.get(&key).await,
            None,
            "get after delete (round {round})"
        );
        for old in &seen {
            ensure!(
                ctx,
                !cas(ctx, &key, Some(*old), b"B").await,
                "round {round}: old version {old:?} accepted on the deleted key"
            );
        }
        let version = create(ctx, &key, b"A").await;
        ensure!(
            ctx,
            !seen.contains(&version),
            "round {round}: re-created key reused version {version:?} (ABA)"
        );
        for old in &seen {
            ensure!(
                ctx,
                !cas(ctx, &key, Some(*old), b"B").await,
                "round {round}: old version {old:?} accepted on the re-created key"
            );
        }
        seen.push(version);
    }
}

/// Deleting an absent key is not an error, and deleting twice is fine.
pub async fn delete_of_an_absent_key_is_ok(ctx: &Ctx) {
    let key = ctx.raw_key("delete");
    delete(ctx, &key).await;
    create(ctx, &key, b"x").await;
    delete(ctx, &key).await;
    delete(ctx, &key).await;
    ensure_eq!(ctx, ctx.get(&key).await, None, "get after deletes");
}

/// Values are opaque bytes, returned exactly: every byte value, NULs, invalid UTF-8,
/// 64 KiB of pseudo-random bytes, and a short value replacing a long one (no stale
/// tail). Empty values: see the [module docs](self).
pub async fn values_round_trip_exactly(ctx: &Ctx) {
    let mut rng = crate::rng::Rng::new(0x5EED_B17E);
    let big: Vec<u8> = (0..65_536)
        .map(|_| rng.next_u64().to_le_bytes()[0])
        .collect();
    let every_byte: Vec<u8> = (0..=255u8).collect();
    let values: Vec<(&str, Vec<u8>)> = vec![
        ("every byte value", every_byte),
        ("a single NUL", vec![0]),
        ("invalid UTF-8", vec![0xff, 0xfe, 0xc3, 0x28, 0x80]),
        ("CR LF NUL", b"\r\n\0".to_vec()),
        ("64 KiB", big),
        ("a built-in state", [[2u8].as_slice(), &[0xab; 32]].concat()),
    ];
    for (i, (what, value)) in values.iter().enumerate() {
        let key = ctx.raw_key(&format!("value-{i}"));
        let version = create(ctx, &key, value).await;
        let stored = ctx.get(&key).await.map(|v| v.value);
        ensure!(
            ctx,
            stored.as_ref() == Some(value),
            "{what}: read back {:?} bytes that differ from the {} written",
            stored.as_ref().map(Vec::len),
            value.len()
        );
        ensure!(
            ctx,
            cas(ctx, &key, Some(version), b"tiny").await,
            "{what}: replace"
        );
        let replaced = ctx.get(&key).await.map(|v| v.value);
        ensure_eq!(
            ctx,
            replaced,
            Some(b"tiny".to_vec()),
            "{what} replaced by 4 bytes"
        );
    }

    let key = ctx.raw_key("empty");
    ensure!(
        ctx,
        cas(ctx, &key, None, b"").await,
        "writing an empty value to an absent key"
    );
    match ctx.get(&key).await {
        Some(stored) => {
            ensure_eq!(ctx, stored.value, Vec::<u8>::new(), "empty value read back");
            ensure!(
                ctx,
                !cas(ctx, &key, None, b"x").await,
                "empty value is present for get but absent for compare_and_set"
            );
            ensure!(
                ctx,
                cas(ctx, &key, Some(stored.version), b"x").await,
                "write over an empty value at its version"
            );
        }
        None => ensure!(
            ctx,
            cas(ctx, &key, None, b"x").await,
            "empty value is absent for get but present for compare_and_set"
        ),
    }
    let stored = ctx.get(&key).await.map(|v| v.value);
    ensure_eq!(
        ctx,
        stored,
        Some(b"x".to_vec()),
        "value written over an empty one"
    );
}

/// Keys are compared as exact strings: keys differing only in case, in unicode
/// normalisation, by a trailing space or NUL, or in the last byte of 1 KiB each hold
/// their own value.
pub async fn keys_are_compared_exactly(ctx: &Ctx) {
    let long = "k".repeat(1_024);
    let suffixes: Vec<String> = vec![
        "k".into(),
        "K".into(),
        "k ".into(),
        "k\0".into(),
        "\u{e9}".into(),
        "e\u{301}".into(),
        "k\n".into(),
        "k/".into(),
        "k%2F".into(),
        "ключ 🔑".into(),
        long.clone(),
        format!("{long}x"),
    ];
    for (i, suffix) in suffixes.iter().enumerate() {
        let key = ctx.raw_key(suffix);
        ensure!(
            ctx,
            cas(ctx, &key, None, &i.to_le_bytes()).await,
            "key {key:?} was not absent: it collides with an earlier one"
        );
    }
    for (i, suffix) in suffixes.iter().enumerate() {
        let key = ctx.raw_key(suffix);
        let stored = ctx.get(&key).await.map(|v| v.value);
        ensure_eq!(
            ctx,
            stored,
            Some(i.to_le_bytes().to_vec()),
            "value of {key:?}"
        );
    }
}

/// 64 concurrent creates of one key: exactly one writes, and its value is the one
/// stored. Then 64 concurrent writes at the same current version: exactly one wins.
pub async fn concurrent_writers_have_one_winner(ctx: &Ctx) {
    let key = ctx.raw_key("race");
    for round in ["create", "update"] {
        let expected = match round {
            "create" => None,
            _ => ctx.get(&key).await.map(|v| v.version),
        };
        let handles: Vec<_> = (0..64u32)
            .map(|i| {
                let (storage, key, now) = (Arc::clone(ctx.storage()), key.clone(), ctx.now());
                tokio::spawn(async move {
                    let value = format!("{round}-{i}").into_bytes();
                    storage
                        .compare_and_set(&key, expected, &value, TTL, now)
                        .await
                        .map(|won| won.then_some(value))
                })
            })
            .collect();
        let mut winners = Vec::new();
        for (i, joined) in futures::future::join_all(handles)
            .await
            .into_iter()
            .enumerate()
        {
            let result = ctx.ok(joined, format_args!("joining {round} task {i}"));
            if let Some(value) = ctx.ok(result, format_args!("{round} task {i}")) {
                winners.push(value);
            }
        }
        ensure_eq!(ctx, winners.len(), 1, "{round}: writers that won out of 64");
        let stored = ctx.get(&key).await.map(|v| v.value);
        ensure_eq!(
            ctx,
            stored,
            winners.pop(),
            "{round}: stored value vs the winner's"
        );
    }
}

/// `clear_all` removes every key: the state of a limiter of each strategy and a raw
/// key. The storage works normally afterwards. Needs the storage's
/// [`ClearAll`](limiter_core::storage::ClearAll) ability and capability `clear_all`;
/// runs alone.
pub async fn clear_all_removes_every_key(ctx: &Ctx) {
    if !ctx.capabilities().clear_all {
        ctx.not_run("clear_all");
        return;
    }
    let Some(clear_all) = ctx.storage().abilities().get_clear_all() else {
        ctx.not_run("the storage's ClearAll ability");
        return;
    };
    let limit = ctx.limit("1 per hour");
    let key = Key::from("cleared");
    let raw = ctx.raw_key("cleared");
    let limiters: Vec<_> = BuiltIn::ALL
        .into_iter()
        .map(|s| {
            let limiter = ctx.builder_on(Arc::clone(ctx.storage()), s, "").build();
            ctx.checked(limiter, s.name())
        })
        .collect();
    for l in &limiters {
        ensure!(
            ctx,
            l.hit(&limit, &key, 1).await.is_allowed(),
            "hit before clear_all"
        );
    }
    create(ctx, &raw, b"raw").await;
    let result = clear_all.clear_all().await;
    ctx.ok(result, "clear_all()");
    ensure_eq!(ctx, ctx.get(&raw).await, None, "raw key after clear_all");
    for l in &limiters {
        ensure_eq!(
            ctx,
            l.stored(&limit, &key).await,
            None,
            "limiter state after clear_all"
        );
        ensure_eq!(
            ctx,
            l.stats(&limit, &key).await.remaining,
            1,
            "stats after clear_all"
        );
        ensure!(
            ctx,
            l.hit(&limit, &key, 1).await.is_allowed(),
            "hit after clear_all"
        );
    }
    create(ctx, &raw, b"again").await;
}

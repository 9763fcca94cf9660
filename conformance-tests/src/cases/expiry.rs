//! Expiry in real time: state lives at least its time-to-live, and is gone soon after.
//!
//! The time-to-live the strategies ask for is the time until the state stops
//! mattering plus a grace of one second (`TTL_GRACE_MS` in `limiter-core`): for a
//! 200 ms window, 1.2 s (fixed window, moving window, GCRA) or 1.4 s (sliding window,
//! whose state matters for two windows).

use std::sync::Arc;
use std::time::Duration;

use limiter_core::strategy::BuiltIn;
use limiter_core::{Clock, Key, StorageKey, SystemClock, Versioned};
use tokio::time::{sleep_until, Instant};

use crate::Ctx;

/// With a [`SystemClock`] limiter of each strategy, a hit on `1 per 200 milliseconds`
/// stores the limiter's key (`storage_key`), and so does a raw write with a 1 s
/// time-to-live. 600 ms later, long after the window but before any time-to-live, all
/// are still readable; 1.4 s plus the capability's `expiry_margin` after the writes,
/// `get` returns `None` for all. Capability `real_time_expiry`; sleeps about 2 s.
pub async fn state_expires_after_its_ttl(ctx: &Ctx) {
    let caps = ctx.capabilities();
    if !caps.real_time_expiry {
        ctx.not_run("real_time_expiry");
        return;
    }
    let limit = ctx.limit("1 per 200 milliseconds");
    let key = Key::from("expiring");
    let start = Instant::now();
    let mut keys = Vec::new();
    for strategy in BuiltIn::ALL {
        let limiter = ctx
            .builder_on(Arc::clone(ctx.storage()), strategy, "")
            .clock(SystemClock)
            .build();
        let l = ctx.checked(limiter, strategy.name());
        let d = l.hit(&limit, &key, 1).await;
        ensure!(ctx, d.is_allowed(), "{strategy}: first hit rejected: {d:?}");
        keys.push((strategy.name(), l.storage_key(&limit, &key)));
    }
    let raw = ctx.raw_key("expiring");
    let written = ctx
        .storage()
        .compare_and_set(
            &raw,
            None,
            b"raw",
            Duration::from_secs(1),
            SystemClock.now(),
        )
        .await;
    ensure!(
        ctx,
        ctx.ok(written, "raw write with a 1 s TTL"),
        "raw write refused"
    );
    keys.push(("raw key (TTL 1 s)", raw));
    let written = Instant::now();

    for (what, stored) in &keys {
        ensure!(
            ctx,
            get_now(ctx, stored).await.is_some(),
            "{what}: {stored:?} absent right after the write"
        );
    }
    sleep_until(start + Duration::from_millis(600)).await;
    for (what, stored) in &keys {
        ensure!(
            ctx,
            get_now(ctx, stored).await.is_some(),
            "{what}: {stored:?} gone 600 ms after the write, before its time-to-live"
        );
    }
    sleep_until(written + Duration::from_millis(1_400) + caps.expiry_margin).await;
    for (what, stored) in &keys {
        ensure!(
            ctx,
            get_now(ctx, stored).await.is_none(),
            "{what}: {stored:?} still present {:?} after its write, past its time-to-live \
             plus the expiry margin",
            written.elapsed()
        );
    }
}

/// Reads `key` at the system clock's time, as the real-time limiters of this case do.
async fn get_now(ctx: &Ctx, key: &StorageKey) -> Option<Versioned> {
    let result = ctx.storage().get(key, SystemClock.now()).await;
    ctx.ok(result, format_args!("get({key:?})"))
}

//! Expiry: state lives at least its time-to-live, and is gone soon after, on the clock
//! the storage declares ([`Expiry`]).
//!
//! The time-to-live the strategies ask for is the time until the state stops
//! mattering plus a grace of one second (`TTL_GRACE_MS` in `limiter-core`): for a
//! 200 ms window, 1.2 s (fixed window, moving window, GCRA) or 1.4 s (sliding window,
//! whose state matters for two windows).

use std::sync::Arc;
use std::time::Duration;

use limiter_core::storage::{Expiry, StorageKey, Versioned};
use limiter_core::strategy::BuiltIn;
use limiter_core::{Clock, Key, SystemClock, Timestamp};
use tokio::time::{sleep_until, Instant};

use crate::Ctx;

/// Each strategy's state after a hit on `1 per 200 milliseconds`, and a raw write with
/// a 1 s time-to-live, are readable 600 ms after the writes (long after the window,
/// before any time-to-live) and gone 1.4 s after them (past every time-to-live).
///
/// A storage that expires on the limiter's time ([`Expiry::LimiterTime`]) is checked
/// on the case's manual clock, exactly. One that expires in real time
/// ([`Expiry::RealTime`]) is checked with [`SystemClock`] limiters, allowing its
/// declared lateness plus 300 ms of scheduling slack; that sleeps about two seconds.
/// Capability `expiry`.
pub async fn state_expires_after_its_ttl(ctx: &Ctx) {
    if !ctx.capabilities().expiry {
        ctx.not_run("expiry");
        return;
    }
    match ctx.storage().abilities().get_expiry() {
        Expiry::LimiterTime => on_the_limiters_time(ctx).await,
        Expiry::RealTime { late } => in_real_time(ctx, late).await,
    }
}

/// The case on the manual clock of `ctx`.
async fn on_the_limiters_time(ctx: &Ctx) {
    let keys = write_keys(ctx, None).await;
    let start = ctx.now();
    // Every time-to-live is at least 1 s; the sliding window's is 1.4 s (its state
    // matters for two windows), the others' 1.2 s.
    /// When to look (ms after the writes), which keys, and whether they are there.
    type Check = (u64, fn(&str) -> bool, bool);
    let checks: [Check; 3] = [
        (600, |_| true, true),
        (1_350, |what| what.contains("sliding"), true),
        (1_450, |_| true, false),
    ];
    for (at, applies, present) in checks {
        let now = start.add_millis(at);
        for (what, stored) in keys.iter().filter(|(what, _)| applies(what)) {
            let found = get_at(ctx, stored, now).await.is_some();
            ensure!(
                ctx,
                found == present,
                "{what}: {stored:?} {} {at} ms after the write on the limiter's clock",
                if found { "present" } else { "absent" }
            );
        }
    }
}

/// The case with [`SystemClock`] limiters, in real time.
async fn in_real_time(ctx: &Ctx, late: Duration) {
    let start = Instant::now();
    let keys = write_keys(ctx, Some(SystemClock)).await;
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
    sleep_until(written + Duration::from_millis(1_700) + late).await;
    for (what, stored) in &keys {
        ensure!(
            ctx,
            get_now(ctx, stored).await.is_none(),
            "{what}: {stored:?} still present {:?} after its write, past its time-to-live \
             plus the storage's declared lateness ({late:?}) and 300 ms",
            written.elapsed()
        );
    }
}

/// Hits `1 per 200 milliseconds` with a limiter of each strategy (on `clock`, else the
/// case's manual clock) and writes a raw key with a 1 s time-to-live; the keys, named.
async fn write_keys(ctx: &Ctx, clock: Option<SystemClock>) -> Vec<(&'static str, StorageKey)> {
    let limit = ctx.limit("1 per 200 milliseconds");
    let key = Key::from("expiring");
    let mut keys = Vec::new();
    for strategy in BuiltIn::ALL {
        let builder = ctx.builder_on(Arc::clone(ctx.storage()), strategy, "");
        let limiter = match clock {
            Some(clock) => builder.clock(clock).build(),
            None => builder.build(),
        };
        let l = ctx.checked(limiter, strategy.name());
        let d = l.hit(&limit, &key, 1).await;
        ensure!(ctx, d.is_allowed(), "{strategy}: first hit rejected: {d:?}");
        keys.push((strategy.name(), l.storage_key(&limit, &key)));
    }
    let raw = ctx.raw_key("expiring");
    let now = match clock {
        Some(clock) => clock.now(),
        None => ctx.now(),
    };
    let ttl = Duration::from_secs(1);
    let written = ctx
        .storage()
        .compare_and_set(&raw, None, b"raw", ttl, now)
        .await;
    ensure!(
        ctx,
        ctx.ok(written, "raw write with a 1 s TTL"),
        "raw write refused"
    );
    keys.push(("raw key (TTL 1 s)", raw));
    keys
}

/// Reads `key` at the system clock's time, as the real-time limiters of this case do.
async fn get_now(ctx: &Ctx, key: &StorageKey) -> Option<Versioned> {
    get_at(ctx, key, SystemClock.now()).await
}

/// Reads `key` at `now`.
async fn get_at(ctx: &Ctx, key: &StorageKey, now: Timestamp) -> Option<Versioned> {
    let result = ctx.storage().get(key, now).await;
    ctx.ok(result, format_args!("get({key:?})"))
}

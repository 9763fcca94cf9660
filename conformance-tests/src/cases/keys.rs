//! Key isolation: namespaces, limits, strategies and identifiers never share state, and
//! any identifier works, however awkward.

use std::sync::Arc;

use limiter_core::strategy::BuiltIn;
use limiter_core::Key;

use crate::Ctx;

/// Two limiters on the same storage with different namespaces count apart: filling
/// `2 per minute` for a key in one leaves it full in the other.
pub async fn namespaces_are_isolated(ctx: &Ctx) {
    let a = ctx.limiter();
    let b = ctx.checked(
        ctx.builder_on(Arc::clone(ctx.storage()), ctx.strategy(), "-other")
            .build(),
        "other-namespace limiter",
    );
    let limit = ctx.limit("2 per minute");
    let key = Key::new(["10.0.0.1", "/login"]);
    let _ = a.hit(&limit, &key, 2).await;
    ensure_eq!(
        ctx,
        b.stats(&limit, &key).await.remaining,
        2,
        "other namespace"
    );
    ensure!(
        ctx,
        b.hit(&limit, &key, 2).await.is_allowed(),
        "hit in the other namespace"
    );
    ensure!(
        ctx,
        !a.hit(&limit, &key, 1).await.is_allowed(),
        "first namespace full"
    );
}

/// Different limits for the same identifiers count apart, including limits with the
/// same window written differently (`2 per minute` and `2 per 60 seconds`).
pub async fn limits_are_isolated(ctx: &Ctx) {
    let l = ctx.limiter();
    let key = Key::from("shared-identifiers");
    let full = ctx.limit("2 per minute");
    let _ = l.hit(&full, &key, 2).await;
    for text in [
        "2 per 60 seconds",
        "3 per minute",
        "2 per hour",
        "2 per 2 minutes",
    ] {
        let other = ctx.limit(text);
        let stats = l.stats(&other, &key).await;
        ensure_eq!(
            ctx,
            stats.remaining,
            other.amount(),
            "{text} after filling 2/minute"
        );
        let d = l.hit(&other, &key, 2).await;
        ensure!(ctx, d.is_allowed(), "hit of 2 on {text} rejected: {d:?}");
    }
    ensure_eq!(
        ctx,
        l.stats(&full, &key).await.remaining,
        0,
        "2 per minute at the end"
    );
}

/// Every built-in strategy has its own state for the same namespace, key and limit.
pub async fn strategies_are_isolated(ctx: &Ctx) {
    let l = ctx.limiter();
    let limit = ctx.limit("3 per minute");
    let key = Key::from("strategy-isolation");
    let _ = l.hit(&limit, &key, 3).await;
    for other in BuiltIn::ALL {
        if other == ctx.strategy() {
            continue;
        }
        let o = ctx.checked(
            ctx.builder_on(Arc::clone(ctx.storage()), other, "").build(),
            other.name(),
        );
        ensure_eq!(
            ctx,
            o.stats(&limit, &key).await.remaining,
            3,
            "{other} stats"
        );
        ensure!(
            ctx,
            o.hit(&limit, &key, 1).await.is_allowed(),
            "{other} hit"
        );
    }
    ensure_eq!(
        ctx,
        l.stats(&limit, &key).await.remaining,
        0,
        "own state at the end"
    );
}

/// Identifier lists that would collide without escaping stay apart: `["a/b", "c"]`,
/// `["a", "b/c"]`, `["a%2Fb", "c"]`, `["a", "b", "c"]`, `["a/b/c"]`, `["", "a/b/c"]`,
/// `["a%", "2Fb/c"]`, the global key and `[""]`.
pub async fn escaped_identifiers_are_isolated(ctx: &Ctx) {
    let lists: [&[&str]; 9] = [
        &["a/b", "c"],
        &["a", "b/c"],
        &["a%2Fb", "c"],
        &["a", "b", "c"],
        &["a/b/c"],
        &["", "a/b/c"],
        &["a%", "2Fb/c"],
        &[],
        &[""],
    ];
    let keys: Vec<Key> = lists.iter().map(|ids| Key::new(ids.iter())).collect();
    check_isolated(ctx, &keys).await;
}

/// Awkward identifiers each work and are isolated from each other: empty, 1 KiB,
/// unicode (and its decomposed form), spaces, `/`, `%`, `%2F`, `\n`, `\r\n`, `\0`,
/// `\t`, case and trailing-space variants, and a 1 KiB identifier differing only in
/// its last byte.
pub async fn awkward_identifiers_work_and_are_isolated(ctx: &Ctx) {
    let long = "x".repeat(1_024);
    let long_variant = format!("{}y", "x".repeat(1_023));
    let identifiers: Vec<&str> = vec![
        "",
        &long,
        &long_variant,
        "ключ 🔑 键",
        "\u{e9}",
        "e\u{301}",
        "with space",
        " ",
        "/",
        "%",
        "%2F",
        "%25",
        "\n",
        "\r\n",
        "\0",
        "a\0b",
        "\t",
        "A",
        "a",
        "a ",
        "*",
        "{tag}",
        ":",
        "\\",
        "\u{7f}",
    ];
    let keys: Vec<Key> = identifiers.iter().map(|id| Key::from(*id)).collect();
    check_isolated(ctx, &keys).await;
}

/// Hits each key once on `1 per minute`: each passes, so no earlier key shares its
/// state; then each is rejected and stored under its own key.
async fn check_isolated(ctx: &Ctx, keys: &[Key]) {
    let l = ctx.limiter();
    let limit = ctx.limit("1 per minute");
    for key in keys {
        let d = l.hit(&limit, key, 1).await;
        ensure!(
            ctx,
            d.is_allowed(),
            "first hit on {key:?} rejected (collision?): {d:?}"
        );
    }
    for key in keys {
        let d = l.test(&limit, key, 1).await;
        ensure!(ctx, !d.is_allowed(), "second hit on {key:?} allowed: {d:?}");
        ensure!(
            ctx,
            l.stored(&limit, key).await.is_some(),
            "nothing stored under the key of {key:?}"
        );
    }
    l.clear(&limit, &keys[0]).await;
    for (i, key) in keys.iter().enumerate() {
        let remaining = l.stats(&limit, key).await.remaining;
        ensure_eq!(
            ctx,
            remaining,
            u64::from(i == 0),
            "after clearing only {:?}: {key:?}",
            keys[0]
        );
    }
}

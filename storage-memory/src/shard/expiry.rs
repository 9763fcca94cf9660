//! Expiry on the limiter's clock: when an entry expires, and how expired entries are
//! reclaimed without a background thread: a few at a sweep cursor on every insertion
//! and on one update in [`SWEEP_EVERY`], all at once on
//! [`purge`](Shard::purge); a read of an expired key removes it too. Each costs O(1) per
//! operation.

use std::time::Duration;

use super::Shard;

/// How many entries the insertion of a key examines for expiry, at the sweep cursor.
/// Stored keys only grow by insertions, so sweeping faster than keys arrive bounds the
/// expired keys to about as many as the live ones.
pub(super) const SWEEP_ON_INSERT: usize = 4;
/// How many entries every [`SWEEP_EVERY`]th update examines, so that expired keys are
/// also reclaimed in a shard that only updates existing keys.
pub(super) const SWEEP_ON_UPDATE: usize = 2;
/// See [`SWEEP_ON_UPDATE`]. A sweep step is a likely cache miss in a large shard, so
/// updates only sweep occasionally.
pub(super) const SWEEP_EVERY: u64 = 32;
/// The expiry for a write at `now` (ms since the epoch) kept at least `ttl`.
pub(crate) fn deadline(now: u64, ttl: Duration) -> u64 {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    // `now` is truncated to the millisecond, so one more keeps the TTL a lower bound.
    let extra = u64::from(ttl.subsec_nanos() % 1_000_000 != 0) + 1;
    now.saturating_add(ttl_ms).saturating_add(extra)
}

impl Shard {
    /// The occasional sweep of an update.
    pub(super) fn after_update(&mut self, now: u64) {
        if self.version % SWEEP_EVERY == 0 {
            self.sweep(now, SWEEP_ON_UPDATE, None);
        }
    }

    /// Examines up to `budget` entries at the sweep cursor and removes the expired
    /// ones other than the one at `keep`; how many.
    pub(super) fn sweep(&mut self, now: u64, budget: usize, keep: Option<usize>) -> usize {
        let mut removed = 0;
        for _ in 0..budget {
            if self.entries.is_empty() {
                break;
            }
            if self.cursor >= self.entries.len() {
                self.cursor = 0;
            }
            let expired = self.entries.get(self.cursor).is_some_and(|e| !e.live(now));
            if expired && keep != Some(self.cursor) {
                // The last entry moved into the cursor's place: look at it next.
                self.remove_at(self.cursor);
                removed += 1;
                if keep == Some(self.entries.len()) {
                    // The kept entry was the last: it moved too, and is found again by
                    // its key; stop here.
                    break;
                }
            } else {
                self.cursor += 1;
            }
        }
        removed
    }

    /// Removes every expired entry; how many.
    pub(crate) fn purge(&mut self, now: u64) -> usize {
        let mut removed = 0;
        let mut at = 0;
        while let Some(entry) = self.entries.get(at) {
            if entry.live(now) {
                at += 1;
            } else {
                self.remove_at(at);
                removed += 1;
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{has, put};
    use super::*;

    #[test]
    fn sweep_and_purge_remove_only_expired() {
        let mut shard = Shard::new(usize::MAX, None, 1);
        for i in 0..100u64 {
            put(
                &mut shard,
                &format!("k{i}"),
                i,
                if i % 2 == 0 { 10 } else { 1_000 },
            );
        }
        let swept = shard.sweep(50, 4, None);
        assert!((1..=4).contains(&swept), "{swept}");
        shard.check_invariants();
        assert_eq!(shard.purge(50), 50 - swept);
        shard.check_invariants();
        assert_eq!(shard.len(), 50);
        assert!(has(&mut shard, "k1", 1, 50));
        assert!(!has(&mut shard, "k2", 2, 50));
    }

    #[test]
    fn deadline_never_shortens_the_ttl() {
        assert_eq!(deadline(10, Duration::from_millis(50)), 61);
        assert_eq!(deadline(10, Duration::from_micros(50_500)), 62);
        assert_eq!(deadline(10, Duration::MAX), u64::MAX);
    }
}

//! Time as the strategies see it.
//!
//! Every decision is computed from the limiter's [`Clock`], and the timestamp is passed
//! down to the storage. Storages never read their own time for a decision; their
//! time-to-live only reclaims state that is already stale. So a [`ManualClock`] makes
//! every strategy deterministic on every storage. In-process storages also expire
//! state on the limiter's time; a network storage's server expires it in real time,
//! which changes no decision while less real time has passed since a write than the
//! write's time-to-live (the state's relevance plus a second of grace).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time: whole milliseconds since the Unix epoch, from zero to
/// [`Timestamp::MAX`].
///
/// # Time domain
///
/// Timestamps stop at [`Timestamp::MAX`], 2⁵³ − 1 ms (about 285,000 years after 1970):
/// every timestamp, and every stored time a strategy writes, is then exact in a
/// double-precision float, which is what script engines such as Lua use for numbers.
/// Every constructor and every clock clamps to it; arithmetic saturates at it. At
/// `MAX` time stands still: a window that has not ended by then never ends, so a limit
/// admits nothing more than its amount there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The epoch, 0 ms.
    pub const ZERO: Timestamp = Timestamp(0);

    /// The last representable instant: 2⁵³ − 1 milliseconds after the Unix epoch.
    pub const MAX: Timestamp = Timestamp((1 << 53) - 1);

    /// The timestamp `millis` milliseconds after the Unix epoch, clamped to
    /// [`Timestamp::MAX`].
    ///
    /// ```
    /// use limiter_core::Timestamp;
    /// assert_eq!(Timestamp::from_millis(7).as_millis(), 7);
    /// assert_eq!(Timestamp::from_millis(u64::MAX), Timestamp::MAX);
    /// ```
    pub const fn from_millis(millis: u64) -> Timestamp {
        if millis > Timestamp::MAX.0 {
            Timestamp::MAX
        } else {
            Timestamp(millis)
        }
    }

    /// The timestamp `millis` milliseconds after the Unix epoch, or `None` past
    /// [`Timestamp::MAX`].
    pub const fn checked_from_millis(millis: u64) -> Option<Timestamp> {
        if millis > Timestamp::MAX.0 {
            None
        } else {
            Some(Timestamp(millis))
        }
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// This timestamp as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0)
    }

    /// The time from `earlier` to `self`, or zero when `earlier` is later.
    pub const fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// `self` moved `millis` milliseconds forward, saturating at [`Timestamp::MAX`].
    pub const fn add_millis(self, millis: u64) -> Timestamp {
        Timestamp::from_millis(self.0.saturating_add(millis))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// A source of the current time for rate-limit decisions.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock ([`SystemTime::now`]), read cheaply.
///
/// Wall time, not a monotonic clock, because several processes that share a remote
/// storage must agree on what "now" is. A clock set before 1970 reads as the epoch,
/// one set past [`Timestamp::MAX`] reads as `MAX`.
///
/// Reading the operating system's clock costs a call into the kernel's time page on
/// every decision, so this clock reads the CPU's time-stamp counter instead (through
/// `quanta`, where the processor has an invariant counter; elsewhere the monotonic
/// clock), anchored to [`SystemTime::now`] and re-anchored to it at least once a second,
/// so that it follows the system clock, adjustments included, within about a
/// millisecond. Like any wall clock it can step back (when the system clock does, or by
/// a fraction of a millisecond at a re-anchoring); every strategy handles that (see
/// [per-key monotonic time](crate::strategy#per-key-monotonic-time)). The first
/// reading in a process calibrates the counter, which can take up to a few hundred
/// milliseconds once.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(wall::now_nanos() / 1_000_000)
    }
}

/// The operating system's clock in milliseconds, read directly.
fn system_millis() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    since_epoch
        .as_secs()
        .saturating_mul(1_000)
        .saturating_add(u64::from(since_epoch.subsec_millis()))
}

/// A wall clock from the CPU's counter, re-anchored to the system clock.
mod wall {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// How often (in counter nanoseconds) the wall time is read again.
    const REANCHOR_NS: u64 = 1_000_000_000;

    struct Anchor {
        clock: quanta::Clock,
        /// The counter's reading at start: counter time is measured from it.
        base: u64,
        /// Wall nanoseconds minus counter nanoseconds at the last anchoring (wrapping).
        offset: AtomicU64,
        /// Counter nanoseconds at which to anchor again.
        next: AtomicU64,
    }

    impl Anchor {
        fn elapsed(&self) -> u64 {
            self.clock.delta_as_nanos(self.base, self.clock.raw())
        }

        fn anchor(&self) {
            let wall = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO);
            let wall = u64::try_from(wall.as_nanos()).unwrap_or(u64::MAX);
            let counter = self.elapsed();
            self.offset
                .store(wall.wrapping_sub(counter), Ordering::Relaxed);
            self.next
                .store(counter.saturating_add(REANCHOR_NS), Ordering::Relaxed);
        }
    }

    static ANCHOR: OnceLock<Anchor> = OnceLock::new();

    fn anchor() -> &'static Anchor {
        ANCHOR.get_or_init(|| {
            let clock = quanta::Clock::new();
            let base = clock.raw();
            let anchor = Anchor {
                clock,
                base,
                offset: AtomicU64::new(0),
                next: AtomicU64::new(0),
            };
            anchor.anchor();
            anchor
        })
    }

    /// Nanoseconds since the Unix epoch (0 before it).
    pub(super) fn now_nanos() -> u64 {
        let anchor = anchor();
        let counter = anchor.elapsed();
        if counter >= anchor.next.load(Ordering::Relaxed) {
            anchor.anchor();
            return super::system_millis().saturating_mul(1_000_000);
        }
        let wall = counter.wrapping_add(anchor.offset.load(Ordering::Relaxed));
        // An offset from a clock set before 1970 wraps: read that as the epoch.
        if wall >= 1 << 63 {
            0
        } else {
            wall
        }
    }
}

/// A clock that only moves when told to, for tests. Clones share one time.
///
/// Its readings are clamped to [`Timestamp::MAX`], like every timestamp.
///
/// # Examples
///
/// ```
/// use limiter_core::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new(1_000);
/// let shared = clock.clone();
/// clock.advance(Duration::from_millis(500));
/// assert_eq!(shared.now().as_millis(), 1_500);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    millis: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock reading `millis` milliseconds after the Unix epoch (clamped to
    /// [`Timestamp::MAX`]).
    pub fn new(millis: u64) -> ManualClock {
        ManualClock {
            millis: Arc::new(AtomicU64::new(Timestamp::from_millis(millis).as_millis())),
        }
    }

    /// Moves the clock forward by `by` (whole milliseconds), saturating at
    /// [`Timestamp::MAX`]: `advance(Duration::MAX)` lands on `MAX`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let _ = self
            .millis
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |m| {
                Some(Timestamp::from_millis(m.saturating_add(by)).as_millis())
            });
    }

    /// Sets the clock to `millis` milliseconds after the Unix epoch (clamped to
    /// [`Timestamp::MAX`]).
    pub fn set(&self, millis: u64) {
        self.millis
            .store(Timestamp::from_millis(millis).as_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_near_system_time() {
        for _ in 0..1_000 {
            let ours = SystemClock.now().as_millis();
            let system = system_millis();
            assert!(ours.abs_diff(system) <= 50, "{ours} vs {system}");
        }
    }

    #[test]
    fn manual_clock_saturates_at_max() {
        let clock = ManualClock::new(Timestamp::MAX.as_millis() - 1);
        clock.advance(Duration::from_secs(10));
        assert_eq!(clock.now(), Timestamp::MAX);
        clock.set(0);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), Timestamp::MAX);
        assert_eq!(ManualClock::new(u64::MAX).now(), Timestamp::MAX);
        clock.set(u64::MAX);
        assert_eq!(clock.now(), Timestamp::MAX);
    }

    #[test]
    fn timestamps_clamp_to_the_time_domain() {
        assert_eq!(Timestamp::MAX.as_millis(), (1u64 << 53) - 1);
        assert_eq!(Timestamp::from_millis(1 << 53), Timestamp::MAX);
        assert_eq!(Timestamp::MAX.add_millis(1), Timestamp::MAX);
        assert_eq!(Timestamp::ZERO.add_millis(u64::MAX), Timestamp::MAX);
        assert_eq!(Timestamp::checked_from_millis(1 << 53), None);
        assert_eq!(
            Timestamp::checked_from_millis(5),
            Some(Timestamp::from_millis(5))
        );
    }
}

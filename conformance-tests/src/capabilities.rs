//! [`Capabilities`]: what a storage under test can do.

use std::time::Duration;

/// What the storage under test supports. The default, [`Capabilities::ALL`], turns every
/// case on; switch a capability off only when the storage genuinely cannot provide it.
///
/// A case whose capability is off does not pass silently: it prints
/// `NOT RUN: <case> needs capability <name>` to the test's output (visible with
/// `--nocapture`, and always on failure) and checks nothing. Which cases each flag turns
/// off is listed on the flag.
///
/// Build it with the constants and `const` methods, or with a struct literal:
///
/// ```
/// use limiter_conformance::Capabilities;
/// use std::time::Duration;
///
/// let caps = Capabilities::ALL
///     .without_clear_all()
///     .with_expiry_margin(Duration::from_millis(1_500));
/// assert!(!caps.clear_all && caps.real_time_expiry);
///
/// let same = Capabilities { clear_all: false, expiry_margin: Duration::from_millis(1_500), ..Capabilities::ALL };
/// assert_eq!(caps, same);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// [`Storage::clear_all`](limiter_core::Storage::clear_all) works and the suite may
    /// call it. Turns off `storage::clear_all_removes_every_key` (in both `native` and
    /// `cas_only`).
    ///
    /// Switch it off for a storage that cannot flush (its `clear_all` returns
    /// `Unsupported`), **and** when the storage instances the suite creates share their
    /// data with anything else (one server used by other programs or other test
    /// binaries running at the same time): `clear_all` would wipe their keys. Within one
    /// test binary the suite already serialises that case against all others.
    pub clear_all: bool,
    /// The storage drops a key once its time-to-live has passed, in real time. Turns off
    /// `storage::state_expires_after_its_ttl`, which hits with a
    /// [`SystemClock`](limiter_core::SystemClock) limiter on a 200 ms window and then
    /// sleeps about two seconds in total.
    ///
    /// Switch it off for stores whose expiry is coarse (whole seconds) or lazy beyond
    /// [`expiry_margin`](Self::expiry_margin). Decisions never depend on expiry, so every
    /// other case still runs.
    pub real_time_expiry: bool,
    /// How long after a key's time-to-live the expiry case still accepts the key being
    /// readable. Default 300 ms.
    pub expiry_margin: Duration,
}

impl Capabilities {
    /// Everything on, with a 300 ms expiry margin.
    pub const ALL: Capabilities = Capabilities {
        clear_all: true,
        real_time_expiry: true,
        expiry_margin: Duration::from_millis(300),
    };

    /// [`ALL`](Self::ALL).
    pub const fn all() -> Capabilities {
        Capabilities::ALL
    }

    /// These capabilities with [`clear_all`](Self::clear_all) off.
    #[must_use]
    pub const fn without_clear_all(mut self) -> Capabilities {
        self.clear_all = false;
        self
    }

    /// These capabilities with [`real_time_expiry`](Self::real_time_expiry) off.
    #[must_use]
    pub const fn without_real_time_expiry(mut self) -> Capabilities {
        self.real_time_expiry = false;
        self
    }

    /// These capabilities with another [`expiry_margin`](Self::expiry_margin).
    #[must_use]
    pub const fn with_expiry_margin(mut self, margin: Duration) -> Capabilities {
        self.expiry_margin = margin;
        self
    }
}

impl Default for Capabilities {
    fn default() -> Capabilities {
        Capabilities::ALL
    }
}

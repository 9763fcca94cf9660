//! [`Capabilities`]: which cases the suite may run against a storage.

/// Which cases the suite may run. What a storage *can* do, it declares itself
/// ([`Storage::abilities`](limiter_core::Storage::abilities): its flush, how its keys
/// expire); these flags say what the suite must *not* do to it. The default,
/// [`Capabilities::ALL`], runs every case.
///
/// A case that does not run does not pass silently: it prints
/// `NOT RUN: <case> needs capability <name>` to the test's output (visible with
/// `--nocapture`, and always on failure) and checks nothing.
///
/// ```
/// use limiter_conformance::Capabilities;
///
/// let caps = Capabilities::ALL.without_clear_all();
/// assert!(!caps.clear_all && caps.expiry);
/// assert_eq!(caps, Capabilities { clear_all: false, ..Capabilities::ALL });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The suite may flush the storage with its
    /// [`ClearAll`](limiter_core::storage::ClearAll) ability
    /// (`storage::clear_all_removes_every_key`, in both `native` and `cas_only`; a
    /// storage without the ability reports it `NOT RUN`).
    ///
    /// Switch it off when the storage instances the suite creates share their data
    /// with anything else (one server used by other programs or other test binaries
    /// running at the same time): the flush would wipe their keys. Within one test
    /// binary the suite already serialises that case against all others.
    pub clear_all: bool,
    /// The suite may check that keys expire (`storage::state_expires_after_its_ttl`):
    /// on the limiter's clock for a storage that declares
    /// [`Expiry::LimiterTime`](limiter_core::storage::Expiry::LimiterTime), in real
    /// time, about two seconds of it, for one that declares
    /// [`Expiry::RealTime`](limiter_core::storage::Expiry::RealTime). Switch it off
    /// only for a store that never drops keys by itself.
    pub expiry: bool,
}

impl Capabilities {
    /// Every case runs.
    pub const ALL: Capabilities = Capabilities {
        clear_all: true,
        expiry: true,
    };

    /// These capabilities with [`clear_all`](Self::clear_all) off.
    #[must_use]
    pub const fn without_clear_all(mut self) -> Capabilities {
        self.clear_all = false;
        self
    }

    /// These capabilities with [`expiry`](Self::expiry) off.
    #[must_use]
    pub const fn without_expiry(mut self) -> Capabilities {
        self.expiry = false;
        self
    }
}

impl Default for Capabilities {
    fn default() -> Capabilities {
        Capabilities::ALL
    }
}

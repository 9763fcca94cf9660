//! The conformance suite for **limiter** storages: run it against your own storage with
//! one macro call.
//!
//! It checks everything the [`Storage`](limiter_core::Storage) contract promises, through
//! the real [`RateLimiter`](limiter_core::RateLimiter): the compare-and-set core, every
//! built-in strategy's exact semantics (limits, costs, boundaries to the millisecond,
//! retry and reset times), multi-limit all-or-nothing hits, key isolation and escaping,
//! awkward keys, concurrency (exact admission counts under 500 concurrent hits), expiry,
//! and that the storage's native operations give the same decisions, and leave the same
//! bytes, as the generic compare-and-set path and as a reference model.
//!
//! Every case runs twice: on the storage as given (`native::…`) and wrapped in
//! [`CasOnly`] (`cas_only::…`), which hides the native operations so that the generic
//! path is tested too. A storage with no native operations simply passes both.
//!
//! # Running it against your storage
//!
//! 1. Add the suite and `tokio` as dev-dependencies:
//!
//!    ```toml
//!    [dev-dependencies]
//!    limiter-conformance = "0.1"
//!    tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//!    ```
//!
//! 2. Write `tests/conformance.rs`:
//!
//!    ```ignore
//!    use my_storage::MyStorage;
//!
//!    limiter_conformance::suite!(MyStorage::new());
//!    ```
//!
//!    The argument is an expression, evaluated afresh (inside an `async` block) every
//!    time the suite needs a storage, so an async constructor works too:
//!
//!    ```ignore
//!    use limiter_conformance::Capabilities;
//!    use my_storage::MyStorage;
//!
//!    fn url() -> String {
//!        std::env::var("MY_STORE_URL").unwrap_or_else(|_| "localhost:6379".into())
//!    }
//!
//!    limiter_conformance::suite!(
//!        MyStorage::connect(&url()).await.expect("connect to the test server"),
//!        Capabilities::ALL.without_clear_all(),
//!    );
//!    ```
//!
//!    A factory that already returns an `Arc<dyn Storage>` uses the `arc:` form:
//!    `limiter_conformance::suite!(arc: make_shared_storage().await);`.
//!
//! 3. Run it:
//!
//!    ```text
//!    cargo test -p my-storage --test conformance
//!    cargo test -p my-storage --test conformance gcra          # one strategy
//!    cargo test -p my-storage --test conformance native::      # native paths only
//!    cargo test -p my-storage --test conformance boundary      # cases by name
//!    ```
//!
//! A failure names its test (`cas_only::moving_window::moving_window_boundary_is_half_open`)
//! and its message names the mode, strategy, case, the clock's offset from [`T0_MS`],
//! the step and the expected and actual values.
//!
//! # Across processes
//!
//! A storage that shares a server can also check exactness across operating-system
//! processes: two processes of 64 callers each on one key of `1000 per minute`, every
//! strategy, coalescing and the rejection cache on, admit exactly 1,000 hits on a
//! frozen clock and never more than the strategy allows on the system clock. One
//! macro call, at the top level of a test file of its own
//! (`tests/processes.rs`), writes the two tests it needs; see [`processes`](mod@processes):
//!
//! ```ignore
//! limiter_conformance::processes!(MyStorage::connect(&url()).await.expect("connect"));
//! ```
//!
//! # Capabilities
//!
//! What a storage can do, it declares itself in
//! [`Storage::abilities`](limiter_core::Storage::abilities): its flush
//! ([`ClearAll`](limiter_core::storage::ClearAll)) and how its keys expire
//! ([`Expiry`](limiter_core::storage::Expiry)); the suite reads them. The optional second
//! argument of [`suite!`], a [`Capabilities`] value (default [`Capabilities::ALL`]),
//! only says what the suite must not do: [`clear_all`](Capabilities::clear_all) off when
//! the storages the factory makes share data with anything else that runs meanwhile
//! (the case would wipe it).

//! # What the suite assumes
//!
//! - Each case uses a fresh storage from the factory and a fresh random namespace, so
//!   storages that share one server never see each other's keys. Keys get the
//!   time-to-live the strategies ask for; the suite deletes nothing else.
//! - Each case has its own [`ManualClock`](limiter_core::ManualClock) starting at
//!   [`T0_MS`], so decisions are deterministic; only the expiry case uses real time.
//! - The random sequences of the model cases are seeded. Set
//!   `LIMITER_CONFORMANCE_SEED=<u64>` to run them with another seed; a failure prints
//!   the seed and the step.
//!
//! # Contents
//!
//! - [`suite!`]: the macro.
//! - [`cases`]: every case, as a plain `async fn(&Ctx)`, and [`cases::LIST`].
//! - [`Ctx`]: what a case runs with.
//! - [`CasOnly`]: the wrapper that hides native operations.
//! - [`ReferenceStorage`]: the smallest complete storage (only the required core), run
//!   through the suite by this crate's own tests, and the template to copy for a new
//!   storage.
#![forbid(unsafe_code)]

/// Fails the case unless `cond` holds.
macro_rules! ensure {
    ($ctx:expr, $cond:expr, $($msg:tt)+) => {
        if !$cond {
            $ctx.fail(format_args!($($msg)+))
        }
    };
}

/// Fails the case unless `actual == expected`, printing both.
macro_rules! ensure_eq {
    ($ctx:expr, $actual:expr, $expected:expr, $($msg:tt)+) => {{
        let (actual, expected) = (&$actual, &$expected);
        if actual != expected {
            $ctx.fail(format_args!(
                "{}\n  expected: {:?}\n  actual:   {:?}",
                format_args!($($msg)+),
                expected,
                actual
            ))
        }
    }};
}

mod capabilities;
mod cas_only;
pub mod cases;
mod ctx;
pub mod events;
mod macros;
pub mod processes;
mod reference;
mod rng;

pub use capabilities::Capabilities;
pub use cas_only::CasOnly;
pub use ctx::{Checked, Ctx, Factory, Mode, Setup, StorageFuture, T0_MS};
pub use reference::ReferenceStorage;

/// Items the macros use. Not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use limiter_core::strategy::BuiltIn;
    pub use limiter_core::Storage;
}

/// A case flag of the list in [`cases`]: `true` for `exclusive`, the only flag. Any
/// other word (a typo) matches no rule and fails to compile.
///
/// ```
/// assert!(limiter_conformance::__limiter_conformance_flag!(exclusive));
/// ```
///
/// ```compile_fail
/// let _ = limiter_conformance::__limiter_conformance_flag!(exclusiv);
/// ```
#[doc(hidden)]
#[macro_export]
macro_rules! __limiter_conformance_flag {
    (exclusive) => {
        true
    };
}

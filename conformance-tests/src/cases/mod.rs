//! Every case of the suite, as a plain `pub async fn case(ctx: &Ctx)`.
//!
//! The list below ([`__limiter_conformance_cases!`](crate::__limiter_conformance_cases),
//! also available at run time as [`LIST`]) is the single registry: the
//! [`suite!`](crate::suite) macro generates one test per entry, per strategy, per mode.
//!
//! - `every_strategy` cases run once per built-in strategy (`ctx.strategy()`);
//! - `fixed_window`, `moving_window`, `sliding_window` and `gcra` cases pin the exact
//!   semantics of one strategy;
//! - `storage` cases test the storage itself (the compare-and-set core, `clear_all`,
//!   expiry) and have no strategy.
//!
//! An entry marked `#[exclusive]` runs alone within the test process.
//!
//! The cases can also be called one by one, with a [`Ctx`](crate::Ctx) from
//! [`Ctx::start`](crate::Ctx::start).

pub mod basics;
pub mod cas;
pub mod concurrency;
pub mod expiry;
pub mod fixed_window;
pub mod gcra;
pub mod keys;
pub mod model;
pub mod moving_window;
pub mod multi_limit;
pub mod sliding_window;
pub mod time;

/// The case list. Invokes the macro named by its input with every case, grouped.
#[doc(hidden)]
#[macro_export]
macro_rules! __limiter_conformance_cases {
    ($($callback:tt)*) => {
        $($callback)*! {
            every_strategy: [
                basics::up_to_limit_then_one_over,
                basics::retry_and_reset_are_exact,
                basics::cost_above_one_consumes_that_many,
                basics::cost_above_limit_is_rejected,
                basics::zero_cost_is_an_error,
                basics::test_never_mutates,
                basics::stats_on_empty_and_full_windows,
                basics::rejected_hits_consume_nothing,
                basics::clear_forgets_only_that_key_and_limit,
                multi_limit::hit_all_is_all_or_nothing,
                multi_limit::hit_all_names_the_tightest_limit,
                multi_limit::hit_all_counts_duplicate_limits_once,
                multi_limit::hit_all_cost_above_an_amount_never_passes,
                multi_limit::empty_limits_are_an_error,
                concurrency::concurrent_hits_admit_exactly_the_limit,
                concurrency::concurrent_hits_on_many_keys_stay_apart,
                concurrency::concurrent_mixed_costs_never_overshoot,
                concurrency::concurrent_hit_all_admits_exactly_the_tightest_limit,
                concurrency::concurrent_hit_all_refunds_exactly,
                concurrency::coalesced_calls_equal_a_serial_order,
                keys::namespaces_are_isolated,
                keys::limits_are_isolated,
                keys::strategies_are_isolated,
                keys::escaped_identifiers_are_isolated,
                keys::awkward_identifiers_work_and_are_isolated,
                model::native_and_generic_paths_agree,
                model::matches_the_reference_model,
                model::several_operations_equal_one_at_a_time,
                model::several_batches_equal_one_at_a_time,
                time::a_clock_stepping_back_counts_at_the_keys_time,
                time::clocks_thirty_seconds_apart_stay_within_the_bound,
                time::a_clock_fifteen_windows_ahead_stays_within_twice_the_bound,
                time::limits_hold_at_the_end_of_time,
                time::the_largest_amount_is_exact,
                time::a_late_undo_never_leaves_more_room_than_no_hit,
            ],
            fixed_window: [
                fixed_window::fixed_window_starts_at_the_first_hit,
                fixed_window::fixed_window_rolls_over_at_the_exact_reset,
                fixed_window::fixed_window_allows_twice_the_amount_across_an_edge,
            ],
            moving_window: [
                moving_window::moving_window_boundary_is_half_open,
                moving_window::moving_window_frees_units_record_by_record,
            ],
            sliding_window: [
                sliding_window::sliding_window_weights_the_previous_window,
                sliding_window::sliding_window_counts_both_windows,
                sliding_window::sliding_window_is_fresh_after_two_idle_windows,
            ],
            gcra: [
                gcra::gcra_bursts_then_refills_one_unit_per_interval,
                gcra::gcra_rounds_awkward_intervals_up,
                gcra::gcra_burst_apart_from_the_rate,
            ],
            storage: [
                cas::check_succeeds,
                cas::get_of_an_absent_key_is_none,
                cas::create_writes_only_when_absent,
                cas::stale_version_is_refused,
                cas::current_version_writes_a_new_version,
                cas::rewriting_the_same_bytes_changes_the_version,
                cas::recreated_key_never_reuses_a_version,
                cas::delete_of_an_absent_key_is_ok,
                cas::values_round_trip_exactly,
                cas::keys_are_compared_exactly,
                cas::concurrent_writers_have_one_winner,
                #[exclusive] cas::clear_all_removes_every_key,
                expiry::state_expires_after_its_ttl,
            ],
        }
    };
}

/// One entry of [`LIST`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseInfo {
    /// `every_strategy`, a strategy module name (`gcra`), or `storage`.
    pub group: &'static str,
    /// The file (module of [`cases`](self)) that holds the case.
    pub file: &'static str,
    /// The case's function and test name.
    pub name: &'static str,
    /// Whether the case runs alone within the test process.
    pub exclusive: bool,
}

macro_rules! case_table {
    ($( $group:ident: [ $( $(#[$flag:ident])? $file:ident :: $case:ident, )* ], )*) => {
        /// Every case, in the order of the list. The suite runs each `every_strategy`
        /// case four times (once per strategy) and every case in two modes.
        pub const LIST: &[CaseInfo] = &[
            $($(
                CaseInfo {
                    group: stringify!($group),
                    file: stringify!($file),
                    name: stringify!($case),
                    exclusive: false $(|| crate::__limiter_conformance_flag!($flag))?,
                },
            )*)*
        ];
    };
}

crate::__limiter_conformance_cases! { case_table }

/// How many tests [`suite!`](crate::suite) generates for one storage.
pub fn tests_per_storage() -> usize {
    let per_mode: usize = LIST
        .iter()
        .map(|case| if case.group == "every_strategy" { 4 } else { 1 })
        .sum();
    per_mode * 2
}

/// `ms` milliseconds.
pub(crate) const fn ms(ms: u64) -> std::time::Duration {
    std::time::Duration::from_millis(ms)
}

/// One expected value per built-in strategy, for cases whose expectation depends on it.
pub(crate) struct PerStrategy<T> {
    pub(crate) fixed: T,
    pub(crate) moving: T,
    pub(crate) sliding: T,
    pub(crate) gcra: T,
}

impl<T> PerStrategy<T> {
    /// The value for the strategy under test.
    pub(crate) fn get(self, ctx: &crate::Ctx) -> T {
        use limiter_core::strategy::BuiltIn;
        match ctx.strategy() {
            BuiltIn::FixedWindow => self.fixed,
            BuiltIn::MovingWindow => self.moving,
            BuiltIn::SlidingWindow => self.sliding,
            BuiltIn::Gcra => self.gcra,
            other => ctx.fail(format_args!("no expectation for strategy {other}")),
        }
    }
}

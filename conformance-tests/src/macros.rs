//! The `suite!` macro and its helpers.

/// Generates the whole conformance suite for a storage: one
/// `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` per case, per strategy,
/// per mode. See the [crate docs](crate) for a walk-through.
///
/// # Forms
///
/// ```text
/// suite!(STORAGE);                 // STORAGE: an expression of any type S: Storage
/// suite!(STORAGE, CAPABILITIES);   // CAPABILITIES: a limiter_conformance::Capabilities
/// suite!(arc: SHARED);             // SHARED: an expression of type Arc<dyn Storage>
/// suite!(arc: SHARED, CAPABILITIES);
/// ```
///
/// `STORAGE` (or `SHARED`) is evaluated afresh, inside an `async` block, every time the
/// suite needs a storage: once per test, and once more in the cases that compare two
/// storages. So it may be a plain constructor (`MemoryStorage::new()`) or contain
/// `.await` (`MyStorage::connect(&url()).await.expect("connect")`). Paths in it resolve
/// where the macro is called, so `use` what it needs at the top of the test file.
///
/// # What it generates
///
/// At the place of the call: a hidden function `__limiter_conformance_setup`, and two
/// modules, `native` (the storage as given) and `cas_only` (the storage wrapped in
/// [`CasOnly`](crate::CasOnly)), each with a module per strategy (`fixed_window`,
/// `moving_window`, `sliding_window`, `gcra`) and `storage` for the storage-level
/// cases. A test is named like `native::gcra::retry_and_reset_are_exact`. To run the
/// suite twice in one file (two configurations), call it in two modules.
///
/// The generated tests use `tokio`'s test macro, so the calling crate needs `tokio`
/// with the `macros` and `rt-multi-thread` features (as a dev-dependency).
#[macro_export]
macro_rules! suite {
    (@setup { $make:expr } { $caps:expr }) => {
        #[doc(hidden)]
        fn __limiter_conformance_setup() -> $crate::Setup {
            $crate::Setup {
                factory: || {
                    ::std::boxed::Box::pin(async {
                        let storage: ::std::sync::Arc<dyn $crate::__private::Storage> = $make;
                        storage
                    })
                },
                capabilities: $caps,
            }
        }
        $crate::__limiter_conformance_cases! { $crate::__limiter_conformance_tests }
    };
    (arc: $storage:expr, $caps:expr $(,)?) => {
        $crate::suite!(@setup { $storage } { $caps });
    };
    (arc: $storage:expr $(,)?) => {
        $crate::suite!(@setup { $storage } { $crate::Capabilities::ALL });
    };
    ($storage:expr, $caps:expr $(,)?) => {
        $crate::suite!(@setup { ::std::sync::Arc::new($storage) } { $caps });
    };
    ($storage:expr $(,)?) => {
        $crate::suite!(@setup { ::std::sync::Arc::new($storage) } { $crate::Capabilities::ALL });
    };
}

/// Receives the case list and emits both modes.
#[doc(hidden)]
#[macro_export]
macro_rules! __limiter_conformance_tests {
    (
        every_strategy: $all:tt,
        fixed_window: $fw:tt,
        moving_window: $mw:tt,
        sliding_window: $sw:tt,
        gcra: $gc:tt,
        storage: $st:tt,
    ) => {
        /// The suite on the storage as given.
        mod native {
            $crate::__limiter_conformance_mode! { Native $all $fw $mw $sw $gc $st }
        }
        /// The suite on the storage wrapped in `CasOnly`: the generic path.
        mod cas_only {
            $crate::__limiter_conformance_mode! { CasOnly $all $fw $mw $sw $gc $st }
        }
    };
}

/// Emits one mode: a module per strategy and the storage-level module.
#[doc(hidden)]
#[macro_export]
macro_rules! __limiter_conformance_mode {
    (
        $mode:ident [$($all:tt)*] [$($fw:tt)*] [$($mw:tt)*] [$($sw:tt)*] [$($gc:tt)*] [$($st:tt)*]
    ) => {
        mod fixed_window {
            $crate::__limiter_conformance_group! {
                $mode (::core::option::Option::Some($crate::__private::BuiltIn::FixedWindow))
                $($all)* $($fw)*
            }
        }
        mod moving_window {
            $crate::__limiter_conformance_group! {
                $mode (::core::option::Option::Some($crate::__private::BuiltIn::MovingWindow))
                $($all)* $($mw)*
            }
        }
        mod sliding_window {
            $crate::__limiter_conformance_group! {
                $mode (::core::option::Option::Some($crate::__private::BuiltIn::SlidingWindow))
                $($all)* $($sw)*
            }
        }
        mod gcra {
            $crate::__limiter_conformance_group! {
                $mode (::core::option::Option::Some($crate::__private::BuiltIn::Gcra))
                $($all)* $($gc)*
            }
        }
        mod storage {
            $crate::__limiter_conformance_group! {
                $mode (::core::option::Option::None)
                $($st)*
            }
        }
    };
}

/// Emits one test per case of a group.
#[doc(hidden)]
#[macro_export]
macro_rules! __limiter_conformance_group {
    (
        $mode:ident $strategy:tt
        $( $(#[$flag:ident])? $file:ident :: $case:ident, )*
    ) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let ctx = $crate::Ctx::start(
                    super::super::__limiter_conformance_setup(),
                    $crate::Mode::$mode,
                    $strategy,
                    ::core::stringify!($case),
                    false $(|| $crate::__limiter_conformance_flag!($flag))?,
                )
                .await;
                $crate::cases::$file::$case(&ctx).await;
            }
        )*
    };
}

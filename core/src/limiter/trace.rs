//! One `TRACE` span per decision (`limiter.decision`), with the strategy, the limit,
//! the operation, the outcome and the time the storage took: with the `tracing`
//! feature. Without it, [`Traced`] is empty and compiles away (the check below costs
//! about 36 instructions per in-memory hit, some 2.5 %).
//!
//! With no subscriber interested (the usual case in production), starting one costs
//! a check of the level filter and reads no clock: the fields are filled in only for
//! an enabled span. The key is not recorded: keys can be personal data, and a span's
//! fields outlive the `DEBUG` level rule of the crate's events (see
//! [`observe`](crate::observe)).

#[cfg(feature = "tracing")]
pub(super) use enabled::Traced;

#[cfg(feature = "tracing")]
mod enabled {
    use std::time::Instant;

    use tracing::field::Empty;
    use tracing::Span;

    use crate::error::StorageError;
    use crate::limit::RateLimit;
    use crate::strategy::{Op, Verdict};

    use super::super::Inner;

    /// A decision's span and when it started, when a subscriber wants it: boxed, so that
    /// a decision's future carries one word for it.
    pub(in crate::limiter) struct Traced(Option<Box<(Span, Instant)>>);

    /// Whether any subscriber may want `TRACE`: one atomic load, so that a limiter with no
    /// subscriber, or one at a coarser level, pays nothing more.
    #[inline(always)]
    fn trace_wanted() -> bool {
        tracing::level_filters::LevelFilter::current() >= tracing::Level::TRACE
            && tracing::enabled!(tracing::Level::TRACE)
    }

    impl Traced {
        /// The span of a decision of `op` on `limit`, if enabled.
        #[inline(always)]
        pub(in crate::limiter) fn start(inner: &Inner, limit: &RateLimit, op: Op) -> Traced {
            if !trace_wanted() {
                return Traced(None);
            }
            Traced::start_enabled(inner, std::slice::from_ref(limit), op)
        }

        /// The span of a multi-limit decision of `op` on `limits`, if enabled.
        #[inline]
        pub(in crate::limiter) fn start_all(inner: &Inner, limits: &[RateLimit], op: Op) -> Traced {
            if !trace_wanted() {
                return Traced(None);
            }
            Traced::start_enabled(inner, limits, op)
        }

        #[cold]
        fn start_enabled(inner: &Inner, limits: &[RateLimit], op: Op) -> Traced {
            let limit = limits
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            let operation = match op {
                Op::Hit { .. } => "hit",
                Op::Test { .. } => "test",
                Op::Refund { .. } => "refund",
            };
            let span = tracing::trace_span!(

                "limiter.decision",
                limiter.strategy = inner.strategy.name(),
                limiter.limit = limit,
                limiter.operation = operation,
                limiter.cost = op.cost(),
                limiter.outcome = Empty,
                limiter.storage.duration_us = Empty,
                error.type = Empty,
            );
            Traced(Some(Box::new((span, Instant::now()))))
        }

        /// Records the outcome (of a verdict, or of several: allowed when all are) and the
        /// storage's time on the span.
        #[inline(always)]
        pub(in crate::limiter) fn finish<V: AsVerdicts>(self, verdict: &Result<V, StorageError>) {
            if let Some(traced) = self.0 {
                let (span, started) = *traced;
                let outcome = verdict.as_ref().map(|v| v.allowed());
                let error = verdict.as_ref().err();
                finish_enabled(&span, started, outcome.ok(), error);
            }
        }
    }

    /// One verdict or several.
    pub(in crate::limiter) trait AsVerdicts {
        /// Whether every verdict allows.
        fn allowed(&self) -> bool;
    }

    impl AsVerdicts for Verdict {
        fn allowed(&self) -> bool {
            self.allowed
        }
    }

    impl AsVerdicts for Vec<Verdict> {
        fn allowed(&self) -> bool {
            self.iter().all(|v| v.allowed)
        }
    }

    #[cold]
    fn finish_enabled(
        span: &Span,
        started: Instant,
        allowed: Option<bool>,
        error: Option<&StorageError>,
    ) {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        span.record("limiter.storage.duration_us", micros);
        let outcome = match allowed {
            Some(true) => "allowed",
            Some(false) => "rejected",
            None => "error",
        };
        span.record("limiter.outcome", outcome);
        if let Some(e) = error {
            span.record("error.type", e.kind().as_str());
        }
    }
}

#[cfg(not(feature = "tracing"))]
pub(super) use disabled::Traced;

#[cfg(not(feature = "tracing"))]
mod disabled {
    use crate::error::StorageError;
    use crate::limit::RateLimit;
    use crate::strategy::Op;

    use super::super::Inner;

    /// No span: the `tracing` feature is off.
    pub(in crate::limiter) struct Traced;

    impl Traced {
        #[inline(always)]
        pub(in crate::limiter) fn start(_: &Inner, _: &RateLimit, _: Op) -> Traced {
            Traced
        }

        #[inline(always)]
        pub(in crate::limiter) fn start_all(_: &Inner, _: &[RateLimit], _: Op) -> Traced {
            Traced
        }

        #[inline(always)]
        pub(in crate::limiter) fn finish<V>(self, _: &Result<V, StorageError>) {}
    }
}

//! A per-request deadline on storage calls, and the error of a call that failed or
//! missed it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use limiter_core::Error;
use pin_project_lite::pin_project;

pin_project! {
    /// A future with an optional deadline. The timer is armed only if the future does
    /// not finish on its first poll, so an in-process storage pays nothing for it. It
    /// needs a tokio runtime with the time driver; without one no deadline applies.
    pub(crate) struct Deadline<F> {
        #[pin]
        future: F,
        limit: Option<Duration>,
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<F> Deadline<F> {
    pub(crate) fn new(future: F, limit: Option<Duration>) -> Self {
        Deadline {
            future,
            limit,
            sleep: None,
        }
    }
}

impl<F, T, E> Future for Deadline<F>
where
    F: Future<Output = Result<T, E>>,
    Failed: From<E>,
{
    type Output = Result<T, Failed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.future.poll(cx) {
            return Poll::Ready(result.map_err(Failed::from));
        }
        let Some(limit) = *this.limit else {
            return Poll::Pending;
        };
        if this.sleep.is_none() {
            // Outside a tokio runtime, or in one built without its timer (where tokio
            // panics on a new timer), there is no deadline.
            let timer = tokio::runtime::Handle::try_current()
                .ok()
                .and_then(|_| std::panic::catch_unwind(|| tokio::time::sleep(limit)).ok());
            match timer {
                Some(sleep) => *this.sleep = Some(Box::pin(sleep)),
                None => {
                    warn_no_timer();
                    *this.limit = None;
                    return Poll::Pending;
                }
            }
        }
        match this.sleep.as_mut().map(|s| s.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(Failed::Deadline(limit))),
            _ => Poll::Pending,
        }
    }
}

fn warn_no_timer() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "rate limiter: no tokio timer here (enable_time on the runtime builder), \
             so storage calls have no deadline"
        );
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Failed {
    #[error(transparent)]
    Limiter(#[from] Error),
    #[error("storage missed the deadline of {0:?}")]
    Deadline(Duration),
}

impl Failed {
    /// The `error.type` of logs: the error's kind, `"timeout"` for a missed deadline.
    pub(crate) fn kind_str(&self) -> &'static str {
        match self {
            Failed::Limiter(e) => e.kind_str(),
            Failed::Deadline(_) => "timeout",
        }
    }

    /// The error as text for logs above `DEBUG`: any key replaced by its digest.
    pub(crate) fn redacted(&self) -> impl std::fmt::Display + '_ {
        Redacted(self)
    }
}

struct Redacted<'a>(&'a Failed);

impl std::fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Failed::Limiter(e) => e.redacted().fmt(f),
            deadline @ Failed::Deadline(_) => deadline.fmt(f),
        }
    }
}

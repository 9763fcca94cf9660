//! Swapping the policy of a running service: [`ReloadableLimiter`] (feature
//! `reload`).

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::limiter::{HttpLimiter, Inner};

/// A handle on the current [`HttpLimiter`] that can be replaced while the service
/// runs, atomically: each request reads the limiter current when it arrives and keeps
/// it to the end (its deduction and refunds included), so requests in flight finish
/// under the policy they started with. Counts live in the storage, so a new limiter
/// built over the same storage (with the same namespace and strategy) keeps the
/// counts of every limit it still has; a limit that changed (its amount or window)
/// is stored under another key and starts afresh.
///
/// Clones share the handle. The tower layer that reads it per request is
/// [`ReloadableLimiter::layer`] (feature `tower`).
///
/// # Examples
///
/// ```
/// use limiter_http::{HeaderStyle, HttpLimiter, ReloadableLimiter, RequestInfo};
/// use limiter_core::RateLimiter;
/// use limiter_memory::MemoryStorage;
/// use std::sync::Arc;
/// use http::HeaderMap;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let core = RateLimiter::new(Arc::new(MemoryStorage::new()));
/// let quiet = HttpLimiter::builder(core.clone()).default_limits("1 per minute").build()?;
/// let handle = ReloadableLimiter::new(quiet);
///
/// let headers = HeaderMap::new();
/// let request = RequestInfo::new("GET", "/", &headers).with_route("/").with_peer("192.0.2.1:1".parse()?);
/// assert!(handle.current().check(&request).await.is_ok());
///
/// // The same limit with headers, over the same storage: the request already
/// // counted still counts (a changed limit would count afresh: it has its own key).
/// let loud = HttpLimiter::builder(core)
///     .default_limits("1 per minute")
///     .headers(HeaderStyle::XRateLimit)
///     .build()?;
/// handle.replace(loud);
/// let rejected = handle.current().check(&request).await.unwrap_err();
/// assert_eq!(rejected.headers()["x-ratelimit-limit"], "1");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ReloadableLimiter {
    current: Arc<ArcSwap<Inner>>,
}

impl fmt::Debug for ReloadableLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableLimiter")
            .field("current", &self.current())
            .finish()
    }
}

impl ReloadableLimiter {
    /// A handle whose current limiter is `limiter`.
    pub fn new(limiter: HttpLimiter) -> ReloadableLimiter {
        ReloadableLimiter {
            current: Arc::new(ArcSwap::new(limiter.inner)),
        }
    }

    /// The current limiter: requests should read it once and keep it.
    pub fn current(&self) -> HttpLimiter {
        HttpLimiter {
            inner: self.current.load_full(),
        }
    }

    /// Makes `limiter` the current one for every request that starts from now on, and
    /// returns the previous one.
    pub fn replace(&self, limiter: HttpLimiter) -> HttpLimiter {
        HttpLimiter {
            inner: self.current.swap(limiter.inner),
        }
    }
}

//! [`RateLimitInfo`]: what the limiter decided for a request, for its handler.

use limiter_core::Decision;

use crate::admission::Admission;

/// What the limiter decided for a request, handed to its handler: the adapters put
/// it in the request's extensions before calling the handler, and it is an
/// extractor in axum (feature `axum`) and in actix-web (feature `actix-web`).
///
/// A request that no limit applied to (an exempt route, an `OPTIONS` preflight, an
/// unmatched path, a limiter switched off, a route without the middleware) carries
/// none; the extractors then give the default value, whose
/// [`decision`](Self::decision) is `None`.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "axum")]
/// # {
/// use axum::{routing::get, Router};
/// use limiter_http::RateLimitInfo;
///
/// async fn handler(info: RateLimitInfo) -> String {
///     match info.decision() {
///         Some(decision) => format!("{} left", decision.remaining()),
///         None => "not limited".to_owned(),
///     }
/// }
/// let app: Router = Router::new().route("/", get(handler));
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitInfo {
    decision: Option<Decision>,
    shadow_rejected: Option<Decision>,
}

impl RateLimitInfo {
    /// The decision the rate-limit headers come from (the limit with the fewest units
    /// left); `None` when no limit applied or the storage failed open. For limits
    /// deducted after the response ([`Limits::deduct_when`](crate::Limits::deduct_when)),
    /// what the check before the handler found.
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// The decision that would have rejected the request, when limits in shadow mode
    /// let it through (see [`Admission::shadow_rejected`]).
    pub fn shadow_rejected(&self) -> Option<&Decision> {
        self.shadow_rejected.as_ref()
    }
}

impl Admission {
    /// What this admission tells the handler.
    pub fn info(&self) -> RateLimitInfo {
        RateLimitInfo {
            decision: self.decision().copied(),
            shadow_rejected: self.shadow_rejected().copied(),
        }
    }
}

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RateLimitInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RateLimitInfo>()
            .copied()
            .unwrap_or_default())
    }
}

//! A rejected request and the response the limiter answers it with: 429 (with the
//! configured body and headers) or 503.

use std::fmt;
use std::sync::Arc;

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use limiter_core::Decision;

use crate::grpc;
use crate::headers;
use crate::limiter::HttpLimiter;
use crate::plan::{applied_limits, Groups};
use crate::request::RequestInfo;

/// A request that must not reach its handler, from [`HttpLimiter::decide`]: over a
/// limit (answered `429 Too Many Requests`), or the storage failed and the policy is
/// to fail closed ([`FailurePolicy::FailClosed`](crate::FailurePolicy::FailClosed),
/// answered `503 Service Unavailable`). A rejection counted nothing, except against
/// the [meta limits](crate::HttpLimiterBuilder::meta_limits).
///
/// Answer it with [`HttpLimiter::rejection_response`].
///
/// # Examples
///
/// ```
/// use limiter_http::{HttpLimiter, RequestInfo};
/// use limiter_core::RateLimiter;
/// use limiter_memory::MemoryStorage;
/// use std::sync::Arc;
/// use http::{HeaderMap, StatusCode};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = HttpLimiter::builder(RateLimiter::new(Arc::new(MemoryStorage::new())))
///     .default_limits("1 per minute")
///     .build()?;
/// let headers = HeaderMap::new();
/// let request = RequestInfo::new("GET", "/", &headers)
///     .with_route("/")
///     .with_peer("192.0.2.1:1".parse()?);
/// assert!(limiter.decide(limiter.plan(&request)).await.is_ok());
/// let Err(rejected) = limiter.decide(limiter.plan(&request)).await else {
///     unreachable!("1 per minute");
/// };
/// assert_eq!(rejected.status(), StatusCode::TOO_MANY_REQUESTS);
/// assert!(rejected.decision().is_some_and(|d| d.retry_after().is_some()));
/// let response = limiter.rejection_response(&rejected, &request);
/// assert_eq!(response.body(), "Too many requests: 1 per 1 minute\n");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use]
pub struct Rejected {
    /// The rejecting decision; `None` when the storage is unavailable.
    decision: Option<Decision>,
    /// Every group that applied, for `RateLimit-Policy`.
    applied: Groups,
}

impl Rejected {
    /// Rejected by a limit: its `decision`; `applied` are the request's groups.
    pub(crate) fn limited(decision: Decision, applied: Groups) -> Rejected {
        Rejected {
            decision: Some(decision),
            applied,
        }
    }

    /// Rejected because the storage is unavailable and the policy is to fail closed.
    pub(crate) fn unavailable() -> Rejected {
        Rejected {
            decision: None,
            applied: Groups::new(),
        }
    }

    /// The decision of the limit that rejected the request (the one with the longest
    /// wait); `None` when the storage was unavailable.
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// The status to answer with: `429 Too Many Requests`, or `503 Service
    /// Unavailable` when the storage was unavailable.
    pub fn status(&self) -> StatusCode {
        match self.decision {
            Some(_) => StatusCode::TOO_MANY_REQUESTS,
            None => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.decision {
            Some(decision) => write!(f, "rate limit exceeded: {}", decision.limit()),
            None => f.write_str("rate limiter storage unavailable"),
        }
    }
}

impl std::error::Error for Rejected {}

impl HttpLimiter {
    /// The response for a rejected request: for one over a limit, the configured
    /// [`RejectionBody`] with status 429, the configured rate-limit headers and
    /// `Retry-After`, after calling the [`on_breach`](crate::HttpLimiterBuilder::on_breach)
    /// callback; when the storage was unavailable, a plain-text 503.
    pub fn rejection_response(
        &self,
        rejected: &Rejected,
        request: &RequestInfo<'_>,
    ) -> Response<String> {
        let inner = &*self.inner;
        let Some(decision) = &rejected.decision else {
            const UNAVAILABLE: &str = "the rate limiter's storage is not answering";
            if matches!(inner.rejection, RejectionBody::Grpc) {
                return grpc::status(grpc::UNAVAILABLE, UNAVAILABLE, None);
            }
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Service unavailable: {UNAVAILABLE}\n"),
            );
        };
        tracing::info!(
            http.request.method = request.method(),
            http.route = request.route(),
            limit = %decision.limit(),
            retry_after_ms = decision.retry_after().map(|d| d.as_millis()),
            "rate limit exceeded"
        );
        if let Some(on_breach) = &inner.on_breach {
            on_breach(decision, request);
        }
        let mut response = inner.rejection.build(decision, request);
        let applied = applied_limits(&rejected.applied);
        headers::write(
            response.headers_mut(),
            inner.header_style,
            inner.retry_after,
            decision,
            &applied,
            true,
        );
        response
    }
}

pub(crate) type BuildResponse =
    dyn Fn(&Decision, &RequestInfo<'_>) -> Response<String> + Send + Sync;

/// The body of 429 responses ([`HttpLimiterBuilder::rejection_body`](crate::HttpLimiterBuilder::rejection_body)).
/// Rate-limit headers are added to whichever is chosen.
///
/// # Examples
///
/// ```
/// use limiter_http::RejectionBody;
/// use http::{Response, StatusCode};
///
/// let custom = RejectionBody::custom(|decision, _request| {
///     Response::builder()
///         .status(StatusCode::TOO_MANY_REQUESTS)
///         .body(format!("slow down: {}", decision.limit()))
///         .unwrap_or_default()
/// });
/// # let _ = custom;
/// ```
#[derive(Clone, Default)]
pub enum RejectionBody {
    /// `text/plain`: `Too many requests: 2 per 1 minute` (the default).
    #[default]
    PlainText,
    /// An RFC 9457 problem document (`application/problem+json`) whose `detail` names
    /// the limit.
    Problem,
    /// A gRPC status, for gRPC services on tower (tonic): `RESOURCE_EXHAUSTED` naming
    /// the limit, with a `google.rpc.RetryInfo` detail saying when to retry, in a
    /// trailers-only response (HTTP 200, the status in the headers, as gRPC clients
    /// read it); `UNAVAILABLE` when the storage fails closed.
    Grpc,
    /// A response of your own.
    Custom(Arc<BuildResponse>),
}

impl RejectionBody {
    /// A response of your own, built from the decision and the request.
    pub fn custom<F>(f: F) -> RejectionBody
    where
        F: Fn(&Decision, &RequestInfo<'_>) -> Response<String> + Send + Sync + 'static,
    {
        RejectionBody::Custom(Arc::new(f))
    }

    pub(crate) fn build(&self, decision: &Decision, request: &RequestInfo<'_>) -> Response<String> {
        match self {
            RejectionBody::PlainText => text(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many requests: {}\n", decision.limit()),
            ),
            RejectionBody::Problem => {
                let limit = decision.limit().to_string();
                let mut body = format!(
                    "{{\"type\":\"about:blank\",\"title\":\"Too Many Requests\",\"status\":429,\
                     \"detail\":\"rate limit exceeded: {limit}\",\"limit\":\"{limit}\""
                );
                if let Some(wait) = decision.retry_after() {
                    let secs = headers::ceil_secs(wait).max(1);
                    body.push_str(&format!(",\"retry_after\":{secs}"));
                }
                body.push('}');
                let mut response = Response::new(body);
                *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/problem+json"),
                );
                response
            }
            RejectionBody::Grpc => grpc::status(
                grpc::RESOURCE_EXHAUSTED,
                &format!("rate limit exceeded: {}", decision.limit()),
                decision.retry_after(),
            ),
            RejectionBody::Custom(f) => f(decision, request),
        }
    }
}

impl fmt::Debug for RejectionBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RejectionBody::PlainText => "PlainText",
            RejectionBody::Problem => "Problem",
            RejectionBody::Grpc => "Grpc",
            RejectionBody::Custom(_) => "Custom(..)",
        })
    }
}

/// A `text/plain` response.
fn text(status: StatusCode, body: String) -> Response<String> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

//! The responses the limiter sends itself: 429 and 503.

use std::fmt;
use std::sync::Arc;

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use limiter_core::Decision;

use crate::request::RequestInfo;

pub(crate) type BuildResponse =
    dyn Fn(&Decision, &RequestInfo<'_>) -> Response<String> + Send + Sync;

/// The body of 429 responses. Rate-limit headers are added to whichever is chosen.
///
/// # Examples
///
/// ```
/// use limiter_http::Rejection;
/// use http::{Response, StatusCode};
///
/// let custom = Rejection::custom(|decision, _request| {
///     Response::builder()
///         .status(StatusCode::TOO_MANY_REQUESTS)
///         .body(format!("slow down: {}", decision.limit()))
///         .unwrap_or_default()
/// });
/// # let _ = custom;
/// ```
#[derive(Clone, Default)]
pub enum Rejection {
    /// `text/plain`: `Too many requests: 2 per 1 minute` (the default).
    #[default]
    PlainText,
    /// An RFC 9457 problem document (`application/problem+json`) whose `detail` names
    /// the limit.
    Problem,
    /// A response of your own.
    Custom(Arc<BuildResponse>),
}

impl Rejection {
    /// A response of your own, built from the decision and the request.
    pub fn custom<F>(f: F) -> Rejection
    where
        F: Fn(&Decision, &RequestInfo<'_>) -> Response<String> + Send + Sync + 'static,
    {
        Rejection::Custom(Arc::new(f))
    }

    pub(crate) fn build(&self, decision: &Decision, request: &RequestInfo<'_>) -> Response<String> {
        match self {
            Rejection::PlainText => text(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many requests: {}\n", decision.limit()),
            ),
            Rejection::Problem => {
                let limit = decision.limit().to_string();
                let mut body = format!(
                    "{{\"type\":\"about:blank\",\"title\":\"Too Many Requests\",\"status\":429,\
                     \"detail\":\"rate limit exceeded: {limit}\",\"limit\":\"{limit}\""
                );
                if let Some(wait) = decision.retry_after() {
                    let secs = wait.as_millis().div_ceil(1000).max(1);
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
            Rejection::Custom(f) => f(decision, request),
        }
    }
}

impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rejection::PlainText => "PlainText",
            Rejection::Problem => "Problem",
            Rejection::Custom(_) => "Custom(..)",
        })
    }
}

/// A `text/plain` response.
pub(crate) fn text(status: StatusCode, body: String) -> Response<String> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

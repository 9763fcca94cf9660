//! What the engine sees of a request and of a response: framework-neutral views that
//! borrow from the framework's own types.

use std::net::SocketAddr;

use http::{Extensions, HeaderMap, StatusCode};

/// A borrowed view of one request, built by an adapter (or by hand) and handed to key
/// functions, dynamic limits, costs, filters and response builders.
///
/// # Examples
///
/// ```
/// use limiter_http::RequestInfo;
/// use http::HeaderMap;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("x-api-key", "k-123".parse()?);
/// let request = RequestInfo::new("GET", "/users/7", &headers)
///     .with_route("/users/{id}")
///     .with_peer("203.0.113.9:4711".parse()?);
/// assert_eq!(request.header("x-api-key"), Some("k-123"));
/// assert_eq!(request.route(), Some("/users/{id}"));
/// assert_eq!(request.peer_addr().map(|a| a.port()), Some(4711));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    method: &'a str,
    path: &'a str,
    route: Option<&'a str>,
    headers: &'a HeaderMap,
    extensions: Option<&'a Extensions>,
    peer: Option<SocketAddr>,
}

impl<'a> RequestInfo<'a> {
    /// A request with `method` (such as `"GET"`), URI `path` and `headers`, and no peer
    /// address, route pattern or extensions yet.
    pub fn new(method: &'a str, path: &'a str, headers: &'a HeaderMap) -> RequestInfo<'a> {
        RequestInfo {
            method,
            path,
            route: None,
            headers,
            extensions: None,
            peer: None,
        }
    }

    /// Sets the route pattern that matched (axum's `MatchedPath`, such as
    /// `/users/{id}`). Route rules and per-route budgets go by it. Without one, a
    /// request whose path is exactly a pattern of the route table counts as that
    /// route, and any other request as unmatched (see
    /// [`charge_unmatched`](crate::HttpLimiterBuilder::charge_unmatched)): the raw path
    /// never becomes part of a stored key, since a client can send any number of them.
    #[must_use]
    pub fn with_route(mut self, route: &'a str) -> Self {
        self.route = Some(route);
        self
    }

    /// Sets the socket address of the connection's peer.
    #[must_use]
    pub fn with_peer(mut self, peer: SocketAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    /// Sets the request's extensions, for key functions that read what earlier
    /// middleware stored (an authenticated user, say).
    #[must_use]
    pub fn with_extensions(mut self, extensions: &'a Extensions) -> Self {
        self.extensions = Some(extensions);
        self
    }

    /// The method, as sent (`"GET"`).
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The URI path.
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The route pattern that matched, when the adapter knows it.
    pub fn route(&self) -> Option<&'a str> {
        self.route
    }

    /// All headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The first value of header `name`, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The request's extensions, when the adapter provides them.
    pub fn extensions(&self) -> Option<&'a Extensions> {
        self.extensions
    }

    /// The extension of type `T`, when the adapter provides extensions and one is set.
    pub fn extension<T: Send + Sync + 'static>(&self) -> Option<&'a T> {
        self.extensions.and_then(Extensions::get::<T>)
    }

    /// The socket address of the connection's peer, when the adapter knows it.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }
}

/// A borrowed view of a response, for conditional deduction
/// ([`Limits::deduct_when`](crate::Limits::deduct_when)).
///
/// # Examples
///
/// ```
/// use limiter_http::ResponseInfo;
/// use http::{HeaderMap, StatusCode};
///
/// let headers = HeaderMap::new();
/// let response = ResponseInfo::new(StatusCode::UNAUTHORIZED, &headers);
/// assert!(response.status().is_client_error());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ResponseInfo<'a> {
    status: StatusCode,
    headers: &'a HeaderMap,
}

impl<'a> ResponseInfo<'a> {
    /// A response with `status` and `headers`.
    pub fn new(status: StatusCode, headers: &'a HeaderMap) -> ResponseInfo<'a> {
        ResponseInfo { status, headers }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }
}

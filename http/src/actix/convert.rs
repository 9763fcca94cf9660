//! Between actix-web's `http` 0.2 types and the engine's `http` 1 types. Both
//! crates check names, values and status codes against the same grammar, so a
//! conversion only fails on what neither would have accepted; such an entry is
//! skipped.

use actix_web::http::header as actix_header;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::HeadersRead;

/// The headers of an actix request or response as an `http` 1 map, every value
/// kept in order.
pub(super) fn headers_from_actix(headers: &actix_header::HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        append(&mut out, name.as_str(), value);
    }
    out
}

/// The headers of an actix request that deciding can look at (`read`), as an
/// `http` 1 map: none, a few by name, or all of them.
pub(super) fn request_headers_from_actix(
    headers: &actix_header::HeaderMap,
    read: &HeadersRead,
) -> HeaderMap {
    match read {
        HeadersRead::Nothing => HeaderMap::new(),
        HeadersRead::All => headers_from_actix(headers),
        HeadersRead::Named(names) => {
            let mut out = HeaderMap::new();
            for name in names {
                for value in headers.get_all(name.as_str()) {
                    append(&mut out, name.as_str(), value);
                }
            }
            out
        }
    }
}

fn append(out: &mut HeaderMap, name: &str, value: &actix_header::HeaderValue) {
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_bytes(value.as_bytes()),
    ) {
        out.append(name, value);
    }
}

/// Writes `headers` into an actix map: each name's values replace what it had.
pub(super) fn headers_into_actix(headers: &HeaderMap, target: &mut actix_header::HeaderMap) {
    for name in headers.keys() {
        let Ok(actix_name) = actix_header::HeaderName::from_bytes(name.as_str().as_bytes()) else {
            continue;
        };
        target.remove(&actix_name);
        for value in headers.get_all(name) {
            if let Ok(value) = actix_header::HeaderValue::from_bytes(value.as_bytes()) {
                target.append(actix_name.clone(), value);
            }
        }
    }
}

/// An actix status code as an `http` 1 one.
pub(super) fn status_from_actix(status: actix_web::http::StatusCode) -> StatusCode {
    StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The engine's response (a rejection) as an actix response.
pub(super) fn response_into_actix(response: http::Response<String>) -> actix_web::HttpResponse {
    let (parts, body) = response.into_parts();
    let status = actix_web::http::StatusCode::from_u16(parts.status.as_u16())
        .unwrap_or(actix_web::http::StatusCode::TOO_MANY_REQUESTS);
    let mut out = actix_web::HttpResponse::with_body(status, body).map_into_boxed_body();
    headers_into_actix(&parts.headers, out.headers_mut());
    out
}

//! Rejections as gRPC statuses ([`RejectionBody::Grpc`](crate::RejectionBody::Grpc)):
//! a "trailers-only" response, HTTP 200 with the status in its headers, as every gRPC
//! client reads it.
//!
//! The status details follow `google.rpc.Status` with one `google.rpc.RetryInfo`, the
//! message gRPC clients (tonic's `tonic-types`, grpc-go's `errdetails`, …) decode to
//! tell a caller when to retry. Both are a few protobuf fields, encoded here by hand
//! rather than through a protobuf crate.

use std::time::Duration;

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};

/// `RESOURCE_EXHAUSTED`: what gRPC says for a rate limit.
pub(crate) const RESOURCE_EXHAUSTED: u32 = 8;

/// `UNAVAILABLE`: the storage is not answering and the policy is to fail closed.
pub(crate) const UNAVAILABLE: u32 = 14;

/// A trailers-only gRPC response with `code`, `message` and, when given, a
/// `RetryInfo` detail of `retry`.
pub(crate) fn status(code: u32, message: &str, retry: Option<Duration>) -> Response<String> {
    let mut response = Response::new(String::new());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from(code));
    if let Ok(value) = HeaderValue::from_str(&percent_encode(message)) {
        headers.insert("grpc-message", value);
    }
    let details = base64(&status_proto(code, message, retry));
    if let Ok(value) = HeaderValue::from_str(&details) {
        headers.insert("grpc-status-details-bin", value);
    }
    response
}

/// `grpc-message` is percent-encoded: every byte outside printable ASCII, and `%`.
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `google.rpc.Status { code = 1, message = 2, details = 3 (Any) }`, with one
/// `google.protobuf.Any { type_url = 1, value = 2 }` holding
/// `google.rpc.RetryInfo { retry_delay = 1 (google.protobuf.Duration { seconds = 1,
/// nanos = 2 }) }`.
fn status_proto(code: u32, message: &str, retry: Option<Duration>) -> Vec<u8> {
    let mut status = Vec::new();
    varint_field(&mut status, 1, u64::from(code));
    bytes_field(&mut status, 2, message.as_bytes());
    if let Some(wait) = retry {
        let mut duration = Vec::new();
        varint_field(&mut duration, 1, wait.as_secs());
        varint_field(&mut duration, 2, u64::from(wait.subsec_nanos()));
        let mut retry_info = Vec::new();
        bytes_field(&mut retry_info, 1, &duration);
        let mut any = Vec::new();
        bytes_field(&mut any, 1, b"type.googleapis.com/google.rpc.RetryInfo");
        bytes_field(&mut any, 2, &retry_info);
        bytes_field(&mut status, 3, &any);
    }
    status
}

/// A varint field; zero is left out, as proto3 does.
fn varint_field(out: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        varint(out, u64::from(field) << 3);
        varint(out, value);
    }
}

/// A length-delimited field.
fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    varint(out, (u64::from(field) << 3) | 2);
    varint(out, u64::try_from(bytes.len()).unwrap_or(u64::MAX));
    out.extend_from_slice(bytes);
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    // Each byte carries the low seven bits, the high bit saying more follow.
    let low = |v: u64| v.to_le_bytes()[0] & 0x7f;
    while value >= 0x80 {
        out.push(low(value) | 0x80);
        value >>= 7;
    }
    out.push(low(value));
}

/// Standard base64 with padding, as gRPC's `-bin` headers take it.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                let index = usize::try_from(n >> shift & 63).unwrap_or_default();
                out.push(char::from(ALPHABET[index]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
    }

    #[test]
    fn varints_and_fields_are_protobuf() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xAC, 0x02]);
        // Status { code: 8, message: "x" }, no details.
        assert_eq!(status_proto(8, "x", None), [0x08, 0x08, 0x12, 0x01, b'x']);
        // With 1.5 s to wait: Any { type_url, RetryInfo { Duration { 1 s, 5e8 ns } } }.
        let with = status_proto(8, "", Some(Duration::from_millis(1_500)));
        let duration = [0x08, 0x01, 0x10, 0x80, 0xCA, 0xB5, 0xEE, 0x01];
        assert!(
            with.windows(duration.len()).any(|w| w == duration),
            "{with:?}"
        );
        assert!(with
            .windows(b"google.rpc.RetryInfo".len())
            .any(|w| w == b"google.rpc.RetryInfo"));
    }

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(
            percent_encode("rate limit: 2 per 1 minute"),
            "rate limit: 2 per 1 minute"
        );
        assert_eq!(percent_encode("100% é"), "100%25 %C3%A9");
    }
}

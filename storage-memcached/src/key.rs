//! How a [`StorageKey`](limiter_core::StorageKey) becomes a Memcached key.
//!
//! Memcached keys are at most 250 bytes, and the text protocol ends a key at the first
//! space or control character. Keys come from clients (identifiers such as addresses or
//! user names), so a key is sent as it is only when that is safe, and otherwise as a
//! readable prefix plus a digest of the whole key:
//!
//! - **Plain form**: `prefix + key`, when every byte of the key is printable ASCII
//!   (`!` to `~`) other than `#`, and the whole fits in 250 bytes.
//! - **Digest form**: `prefix + readable + "#" + hex(SHA-256(key))`, for every other key.
//!   `readable` is the start of the key with each byte outside `!`..=`~` and each `#`
//!   replaced by `_`, cut so that the whole is at most 250 bytes; the digest is 64 lower-case
//!   hex digits of the SHA-256 of the whole key's UTF-8 bytes.
//!
//! No two keys share a Memcached key:
//!
//! - a plain form never contains `#` (the prefix may not either), and a digest form
//!   always does, so a plain key never meets a digested one, even one written to look
//!   like a digest form (`a#<64 hex digits>` is itself digested);
//! - two plain forms are equal only for equal keys;
//! - a digest form ends with its fixed-length digest, so two digest forms are equal only
//!   if the SHA-256 digests of the two keys are: a collision of SHA-256.
//!
//! So nothing a client chooses can reach the wire as a space, a line break or any other
//! byte that would end the key, and no client can make its key collide with another.

use sha2::{Digest, Sha256};

/// Memcached's longest key.
pub(crate) const MAX_KEY_LEN: usize = 250;
/// Marks a digest form; never part of a plain form or a prefix.
pub(crate) const MARKER: u8 = b'#';
/// Hex digits of a SHA-256 digest.
const DIGEST_HEX_LEN: usize = 64;

/// Whether `b` may appear in a plain form.
fn plain_byte(b: u8) -> bool {
    b.is_ascii_graphic() && b != MARKER
}

/// The Memcached key for `key` under `prefix`. `prefix` must be printable ASCII without
/// `#`, at most [`MAX_PREFIX_LEN`](crate::options::MAX_PREFIX_LEN) bytes (the options ensure
/// it).
pub(crate) fn encode(prefix: &str, key: &str) -> String {
    let bytes = key.as_bytes();
    if prefix.len() + bytes.len() <= MAX_KEY_LEN && bytes.iter().all(|&b| plain_byte(b)) {
        let mut out = String::with_capacity(prefix.len() + key.len());
        out.push_str(prefix);
        out.push_str(key);
        return out;
    }
    let room = MAX_KEY_LEN.saturating_sub(prefix.len() + 1 + DIGEST_HEX_LEN);
    let mut out = String::with_capacity(MAX_KEY_LEN);
    out.push_str(prefix);
    out.extend(
        bytes
            .iter()
            .take(room)
            .map(|&b| if plain_byte(b) { char::from(b) } else { '_' }),
    );
    out.push(char::from(MARKER));
    let digest = Sha256::digest(bytes);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn valid(k: &str) -> bool {
        k.len() <= MAX_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic())
    }

    #[test]
    fn safe_keys_are_sent_as_they_are() {
        let key = "LIMITER/fixed-window/10.0.0.1/%2Flogin/10/1/minute";
        assert_eq!(encode("", key), key);
        assert_eq!(encode("app:", key), format!("app:{key}"));
        let longest = "k".repeat(250 - 4);
        assert_eq!(encode("app:", &longest), format!("app:{longest}"));
    }

    #[test]
    fn unsafe_keys_are_digested_into_valid_keys() {
        let cases = [
            "a\r\nflush_all\r\n".to_owned(),
            "with space".to_owned(),
            "nul\0byte".to_owned(),
            "tab\t".to_owned(),
            "del\u{7f}".to_owned(),
            "ключ 🔑".to_owned(),
            "x".repeat(10 * 1024),
            "k".repeat(251),
            "has#marker".to_owned(),
            String::new() + "#",
        ];
        for key in &cases {
            for prefix in ["", "app:", &"p".repeat(64)] {
                let encoded = encode(prefix, key);
                assert!(valid(&encoded), "{key:?} → {encoded:?}");
                assert!(encoded.starts_with(prefix));
                assert_eq!(encoded.bytes().filter(|&b| b == MARKER).count(), 1);
                let digest = &encoded[encoded.len() - 64..];
                assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()));
            }
        }
        let e = encode("", "a\r\nflush_all\r\n");
        assert!(e.starts_with("a__flush_all__#"), "{e}");
        // The known digest, so that other clients can reproduce the layout.
        assert_eq!(
            encode("", "with space"),
            "with_space#b8b8f25a5fc711caea1cfebfe02359e3ce2b9a8f9ce02d18fdcb1ba47ff095f1"
        );
    }

    #[test]
    fn digest_covers_the_whole_key() {
        let a = format!("{}a", "x".repeat(10_000));
        let b = format!("{}b", "x".repeat(10_000));
        assert_ne!(encode("", &a), encode("", &b));
        assert_eq!(encode("", &a), encode("", &a));
    }

    #[test]
    fn look_alikes_never_collide() {
        let digested = encode("", "with space");
        // A key spelled exactly like the digest form is digested itself.
        assert_ne!(encode("", &digested), digested);
        // A key that sanitises to the same readable part differs in its digest.
        assert_ne!(encode("", "with_space "), encode("", "with space"));
        let keys = [
            "a b", "a_b", "a\tb", "a\nb", "a#b", "a_b#", "é", "e\u{301}", "_", "#", "",
        ];
        let encoded: HashSet<String> = keys.iter().map(|k| encode("", k)).collect();
        assert_eq!(encoded.len(), keys.len());
    }
}

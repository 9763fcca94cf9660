//! The byte layout of built-in states: one tag byte, then little-endian `u64` words.
//!
//! The layout is part of the storage contract (a storage running an algorithm natively
//! must read and write the same bytes), so it is kept deliberately plain. The helpers
//! are public so that custom strategies can use the same layout without
//! re-implementing it: pick a tag byte of your own, and read and write whole words.
//!
//! # Examples
//!
//! A state of two words, `[start, count]`, under tag `9`:
//!
//! ```
//! use limiter_core::strategy::state::{read_words, write_words};
//!
//! let mut state = Vec::new();
//! assert_eq!(read_words::<2>(&state, 9, "mine")?, None, "no state yet");
//! write_words(&mut state, 9, &[1_000, 3]);
//! assert_eq!(state.len(), 1 + 2 * 8);
//! assert_eq!(read_words::<2>(&state, 9, "mine")?, Some([1_000, 3]));
//! // A state of another shape is an error, never a panic.
//! assert!(read_words::<3>(&state, 9, "mine").is_err());
//! assert!(read_words::<2>(&state, 8, "mine").is_err());
//! # Ok::<(), limiter_core::strategy::StateError>(())
//! ```

use super::StateError;

/// Reads a state of exactly `N` words tagged `tag`; `None` for an empty state.
///
/// # Errors
///
/// A [`StateError`] naming `strategy` when the first byte is not `tag` ("unknown tag")
/// or the rest is not exactly `8 × N` bytes ("wrong length").
pub fn read_words<const N: usize>(
    state: &[u8],
    tag: u8,
    strategy: &'static str,
) -> Result<Option<[u64; N]>, StateError> {
    if state.is_empty() {
        return Ok(None);
    }
    let body = check_tag(state, tag, strategy)?;
    if body.len() != N * 8 {
        return Err(StateError {
            strategy,
            reason: "wrong length",
        });
    }
    let mut words = [0u64; N];
    for (word, chunk) in words.iter_mut().zip(body.chunks_exact(8)) {
        *word = word_at(chunk);
    }
    Ok(Some(words))
}

/// Checks the tag byte and returns the bytes after it.
///
/// # Errors
///
/// A [`StateError`] naming `strategy` ("unknown tag") when `state` is empty or starts
/// with another byte.
pub fn check_tag<'a>(
    state: &'a [u8],
    tag: u8,
    strategy: &'static str,
) -> Result<&'a [u8], StateError> {
    match state.split_first() {
        Some((&found, body)) if found == tag => Ok(body),
        _ => Err(StateError {
            strategy,
            reason: "unknown tag",
        }),
    }
}

/// Replaces `state` with `tag` followed by `words` (little-endian, 8 bytes each),
/// reusing its allocation.
pub fn write_words(state: &mut Vec<u8>, tag: u8, words: &[u64]) {
    state.clear();
    state.push(tag);
    for word in words {
        state.extend_from_slice(&word.to_le_bytes());
    }
}

/// The little-endian `u64` in the first 8 bytes of `chunk` (zero-padded if shorter,
/// so it never panics).
pub fn word_at(chunk: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    for (b, c) in bytes.iter_mut().zip(chunk) {
        *b = *c;
    }
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_reject_garbage() {
        let mut buf = Vec::new();
        write_words(&mut buf, 7, &[1, u64::MAX]);
        assert_eq!(read_words::<2>(&buf, 7, "t"), Ok(Some([1, u64::MAX])));
        assert_eq!(read_words::<2>(&[], 7, "t"), Ok(None));
        assert!(read_words::<2>(&buf, 8, "t").is_err());
        assert!(read_words::<3>(&buf, 7, "t").is_err());
        assert!(read_words::<2>(&buf[..5], 7, "t").is_err());
    }
}

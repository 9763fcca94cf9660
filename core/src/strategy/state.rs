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

/// A state of at most [`InlineState::CAPACITY`] bytes, held by value.
///
/// Every fixed-window (17 bytes), sliding-window (25 bytes) and GCRA (17 bytes) state
/// fits, so an in-process storage can keep those states without a heap buffer and run
/// the built-ins on them in place with
/// [`BuiltIn::apply_inline`](super::BuiltIn::apply_inline), which decides exactly as
/// [`Strategy::apply`](super::Strategy::apply) on the same bytes, without copying them
/// into a `Vec` first.
///
/// ```
/// use limiter_core::strategy::state::InlineState;
///
/// let state = InlineState::new(&[1, 2, 3]).expect("short enough");
/// assert_eq!(state.as_slice(), &[1, 2, 3]);
/// assert!(InlineState::new(&[0; 26]).is_none());
/// assert!(InlineState::default().is_empty());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct InlineState {
    len: u8,
    bytes: [u8; InlineState::CAPACITY],
}

impl InlineState {
    /// The most bytes an inline state holds.
    pub const CAPACITY: usize = 25;

    /// A state holding `bytes`, or `None` when they are more than
    /// [`CAPACITY`](Self::CAPACITY).
    pub fn new(bytes: &[u8]) -> Option<InlineState> {
        let mut state = InlineState::default();
        state.set(bytes).then_some(state)
    }

    /// Replaces the bytes; `false` (and no change) when they are more than
    /// [`CAPACITY`](Self::CAPACITY).
    pub fn set(&mut self, bytes: &[u8]) -> bool {
        match (u8::try_from(bytes.len()), self.bytes.get_mut(..bytes.len())) {
            (Ok(len), Some(prefix)) => {
                prefix.copy_from_slice(bytes);
                self.len = len;
                true
            }
            _ => false,
        }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// Whether the state is empty (no state).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the state.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// Where a built-in reads and writes its words: a `Vec` (the [`Strategy`] interface)
/// or an [`InlineState`].
///
/// [`Strategy`]: super::Strategy
pub(crate) trait Words {
    /// As [`read_words`].
    fn read<const N: usize>(
        &self,
        tag: u8,
        strategy: &'static str,
    ) -> Result<Option<[u64; N]>, StateError>;

    /// As [`write_words`].
    fn write<const N: usize>(&mut self, tag: u8, words: &[u64; N]);
}

impl Words for Vec<u8> {
    fn read<const N: usize>(
        &self,
        tag: u8,
        strategy: &'static str,
    ) -> Result<Option<[u64; N]>, StateError> {
        read_words(self, tag, strategy)
    }

    fn write<const N: usize>(&mut self, tag: u8, words: &[u64; N]) {
        write_words(self, tag, words);
    }
}

impl Words for InlineState {
    fn read<const N: usize>(
        &self,
        tag: u8,
        strategy: &'static str,
    ) -> Result<Option<[u64; N]>, StateError> {
        if self.len == 0 {
            return Ok(None);
        }
        if self.bytes[0] != tag {
            return Err(StateError {
                strategy,
                reason: "unknown tag",
            });
        }
        if usize::from(self.len) != 1 + 8 * N || N > 3 {
            return Err(StateError {
                strategy,
                reason: "wrong length",
            });
        }
        // Fixed offsets within the 25 bytes: plain loads, no length checks at run time.
        let mut words = [0u64; N];
        for (i, word) in words.iter_mut().enumerate() {
            let bytes = self.bytes.get(1 + 8 * i..9 + 8 * i).unwrap_or_default();
            *word = u64::from_le_bytes(bytes.try_into().unwrap_or_default());
        }
        Ok(Some(words))
    }

    fn write<const N: usize>(&mut self, tag: u8, words: &[u64; N]) {
        // Callers write at most three words: 1 + 24 bytes fit.
        let len = 1 + 8 * N;
        let Ok(len8) = u8::try_from(len) else {
            return;
        };
        if len > InlineState::CAPACITY {
            return;
        }
        self.bytes[0] = tag;
        for (i, word) in words.iter().enumerate() {
            if let Some(chunk) = self.bytes.get_mut(1 + 8 * i..9 + 8 * i) {
                chunk.copy_from_slice(&word.to_le_bytes());
            }
        }
        self.len = len8;
    }
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

    #[test]
    fn inline_states_read_and_write_like_vectors() {
        let mut vec = Vec::new();
        let mut inline = InlineState::default();
        for words in [[1u64, 2, 3], [u64::MAX, 0, 7]] {
            Words::write(&mut vec, 3, &words);
            Words::write(&mut inline, 3, &words);
            assert_eq!(inline.as_slice(), vec.as_slice());
            assert_eq!(inline.read::<3>(3, "t"), Ok(Some(words)));
            assert!(inline.read::<2>(3, "t").is_err());
        }
        Words::write(&mut inline, 1, &[9, 8]);
        assert_eq!(inline.as_slice().len(), 17);
        assert_eq!(inline.read::<2>(1, "t"), Ok(Some([9, 8])));
        inline.clear();
        assert_eq!(inline.read::<2>(1, "t"), Ok(None));
    }
}

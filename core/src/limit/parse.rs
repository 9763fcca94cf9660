//! The rate-limit text grammar.
//!
//! A rate limit is written the way Python's `limits` (and so Flask-Limiter) writes it:
//! an amount, `per` or `/`, an optional number of units, and a unit. Several limits may
//! share one string, separated by `,`, `;` or `|`. The parser is stricter than Python's
//! where Python silently accepts nonsense (a zero window, trailing text) and every error
//! says what is wrong and at which byte.
//!
//! # Grammar
//!
//! ```text
//! limits   := item (SEP item)*
//! item     := WS* AMOUNT WS* PER WS* [MULTIPLES WS*] UNIT WS* [BURST WS* NUMBER WS*]
//! SEP      := "," | ";" | "|"
//! PER      := "/" | "per"            ("per" in any case; it may touch the numbers)
//! AMOUNT   := DIGIT+                 (1 ..= 18446744073709551615)
//! MULTIPLES:= DIGIT+                 (at least 1; 1 when left out)
//! UNIT     := millisecond | second | minute | hour | day | month | year
//!             (any case, singular or plural, no abbreviations)
//! BURST    := "burst"                (any case; the number after it is at least 1:
//!                                     see RateLimit::with_burst)
//! DIGIT    := "0" ..= "9"            (ASCII digits only; leading zeros are fine)
//! WS       := white space            (allowed around every token, never a separator)
//! ```
//!
//! The window, multiples × unit, may not exceed [`MAX_WINDOW_MS`](super::MAX_WINDOW_MS)
//! (1,000 years of 365 days).
//!
//! | Form | Example | Result |
//! |------|---------|--------|
//! | amount `per` unit | `"10 per minute"` | 10 hits per 1 minute |
//! | amount `/` unit | `"10/minute"` | 10 hits per 1 minute |
//! | with multiples | `"10/2 hours"`, `"10 per 2 hours"` | 10 hits per 2 hours |
//! | `per` touching the numbers | `"10per2minutes"`, `"10 per 2minutes"` | 10 hits per 2 minutes |
//! | any case, plural or singular | `"10 PER MINUTE"`, `"10/MINUTES"` | 10 hits per 1 minute |
//! | white space around tokens | `" 10 / 2 minute "` | 10 hits per 2 minutes |
//! | leading zeros | `"010/minute"` | 10 hits per 1 minute |
//! | milliseconds | `"100 per 500 milliseconds"` | 100 hits per 500 ms |
//! | several limits | `"1/second; 10/minute, 100/hour \| 1000/day"` | 4 limits, in order |
//! | a GCRA burst | `"10 per second burst 50"`, `"10/second BURST 50"` | 10 hits per second, bursts of 50 |
//!
//! | Rejected | Example | Error ([`ParseErrorKind`]) |
//! |----------|---------|----------------------------|
//! | empty or blank string | `""`, `"   "` | `Empty` |
//! | separator with nothing before or after | `"10/minute;"`, `";10/minute"`, `"1/second;;2/hour"` | `EmptyItem` |
//! | no amount | `"per minute"`, `"ten/minute"` | `ExpectedAmount` |
//! | no `per` or `/` | `"10 minute"`, `"10 perminute"` | `ExpectedPer` |
//! | no unit | `"10 per"`, `"10/2"` | `ExpectedUnit` |
//! | unknown unit or abbreviation | `"10 per fortnight"`, `"10/min"`, `"10/s"` | `UnknownUnit` |
//! | zero amount | `"0/second"` | `ZeroAmount` |
//! | zero multiples | `"10/0 minutes"` (Python accepts it) | `ZeroMultiples` |
//! | negative number | `"-1/second"`, `"10/-2 minutes"` | `Negative` |
//! | fractional number | `"1.5/second"`, `"10/1.5 hours"` | `Fractional` |
//! | number over 18446744073709551615 | `"18446744073709551616/second"` | `NumberOverflow` |
//! | window over 1,000 years | `"1 per 1001 years"` | `WindowOverflow` |
//! | white space instead of a separator | `"1/second 5/minute"` | `MissingSeparator` |
//! | any other character | `"10/minute:"`, `"１０/minute"` | `Unexpected` (or `ExpectedAmount` where an amount belongs) |
//! | several limits where one is expected | `"1/second; 5/minute".parse::<RateLimit>()` | `MultipleLimits` |
//! | `burst` without a number | `"10/second burst"`, `"10/second burst x"` | `ExpectedBurst` |
//! | a burst of zero | `"10/second burst 0"` | `ZeroBurst` |
//! | a burst over 1,000 years of refill | `"1 per year burst 2000"` | `BurstOverflow` |
//!
//! # Examples
//!
//! ```
//! use limiter_core::{parse_many, ParseErrorKind, RateLimit, Unit};
//!
//! let limits = parse_many("1/second; 10 per 2 minutes")?;
//! assert_eq!(limits, [RateLimit::new(1, 1, Unit::Second)?, RateLimit::new(10, 2, Unit::Minute)?]);
//!
//! let err = "10 per min".parse::<RateLimit>().unwrap_err();
//! assert_eq!(err.kind(), &ParseErrorKind::UnknownUnit("min".to_owned()));
//! assert_eq!(err.position(), 7);
//! assert_eq!(
//!     err.to_string(),
//!     "invalid rate limit \"10 per min\": unknown unit \"min\" at byte 7 \
//!      (expected millisecond, second, minute, hour, day, month or year)",
//! );
//! # Ok::<(), limiter_core::ParseError>(())
//! ```

use std::fmt;
use std::num::NonZeroU64;

use super::{RateLimit, Unit, MAX_WINDOW_MS};

/// What is wrong with a rate-limit string.
///
/// [`ParseError::position`] says where; each variant documents which byte that is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The string is empty or only white space (`""`, `"  "`). Position 0.
    Empty,
    /// A separator with nothing before or after it (`"10/minute;"`, `";10/minute"`,
    /// `"1/second;;2/hour"`). Position: the separator that has no limit next to it (the
    /// second of two doubled separators).
    EmptyItem,
    /// No amount where one was expected (`"per minute"`, `"ten/minute"`). Position: the
    /// character found instead.
    ExpectedAmount,
    /// No `per` or `/` after the amount (`"10 minute"`, `"10 perminute"`). Position: the
    /// text found instead, or the end of the item.
    ExpectedPer,
    /// No unit after `per` and the optional multiples (`"10 per"`, `"10/2"`). Position:
    /// the text found instead, or the end of the item.
    ExpectedUnit,
    /// A word in the place of the unit that is not a unit (`"10 per fortnight"`,
    /// `"10/min"`); it holds the word as written. Position: the word.
    UnknownUnit(String),
    /// An amount of zero (`"0/second"`). Position: the amount.
    ZeroAmount,
    /// A window of zero units (`"10/0 minutes"`). Position: the multiples.
    ZeroMultiples,
    /// A negative number (`"-1/second"`, `"10/-2 minutes"`). Position: the minus sign.
    Negative,
    /// A number with a fractional part (`"1.5/second"`, `"10/1.5 hours"`). Position: the
    /// number.
    Fractional,
    /// A number larger than `u64::MAX` (18446744073709551615). Position: the number.
    NumberOverflow,
    /// A window longer than [`MAX_WINDOW_MS`](super::MAX_WINDOW_MS), 1,000 years
    /// (`"1 per 1001 years"`). Position: the multiples.
    WindowOverflow,
    /// A character that does not belong to the grammar where it stands (`"10/minute:"`).
    /// Position: the character.
    Unexpected(char),
    /// Several limits where exactly one was expected (parsing `"1/second; 5/minute"` as
    /// one [`RateLimit`]). Position: the start of the second limit.
    MultipleLimits,
    /// A complete limit followed by another number without a separator between them
    /// (`"1/second 5/minute"`): white space does not separate limits. Position: the
    /// number.
    MissingSeparator,
    /// `burst` without a whole number after it (`"10/second burst"`). Position: the text
    /// found instead, or the end of the item.
    ExpectedBurst,
    /// A burst of zero (`"10/second burst 0"`). Position: the number.
    ZeroBurst,
    /// A burst that would take longer than [`MAX_WINDOW_MS`](super::MAX_WINDOW_MS) to
    /// refill at the limit's rate (`"1 per year burst 2000"`). Position: the number.
    BurstOverflow,
}

/// A rate-limit string that could not be parsed: what is wrong, and where.
///
/// Its [`Display`](fmt::Display) quotes the input and names the offending text and its
/// byte offset:
///
/// ```text
/// invalid rate limit "10 per min": unknown unit "min" at byte 7 (expected millisecond, second, minute, hour, day, month or year)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    kind: ParseErrorKind,
    input: String,
    position: usize,
}

impl ParseError {
    pub(crate) fn new(kind: ParseErrorKind, input: String, position: usize) -> ParseError {
        ParseError {
            kind,
            input,
            position,
        }
    }

    /// What is wrong.
    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }

    /// The whole text that was parsed.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// The byte offset in [`input`](Self::input) where the problem starts.
    pub fn position(&self) -> usize {
        self.position
    }

    /// The token of the input at the error position, for messages: a word, a number, or
    /// one character; `None` at the end of the input.
    fn token(&self) -> Option<&str> {
        let rest = self.input.get(self.position..)?;
        let first = rest.chars().next()?;
        let len = if first.is_alphabetic() {
            prefix_len(rest, char::is_alphabetic)
        } else if first.is_ascii_digit() {
            prefix_len(rest, |c| c.is_ascii_digit())
        } else {
            first.len_utf8()
        };
        rest.get(..len)
    }

    /// `found "word"` or `found end of input`, for the `Expected*` kinds.
    fn found(&self) -> String {
        match self.token() {
            Some(sep) if sep.len() == 1 && is_separator_str(sep) => {
                format!("found separator {sep:?}")
            }
            Some(token) => format!("found {token:?}"),
            None => "found end of input".to_owned(),
        }
    }
}

const UNIT_LIST: &str = "millisecond, second, minute, hour, day, month or year";

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid rate limit {:?}: ", self.input)?;
        let at = self.position;
        match &self.kind {
            ParseErrorKind::Empty if self.input.is_empty() => {
                write!(f, "empty string at byte {at} (expected a limit such as \"10 per minute\")")
            }
            ParseErrorKind::Empty => {
                write!(f, "blank string at byte {at} (expected a limit such as \"10 per minute\")")
            }
            ParseErrorKind::EmptyItem => {
                let sep = self.token().unwrap_or_default();
                write!(f, "empty limit next to separator {sep:?} at byte {at}")
            }
            ParseErrorKind::ExpectedAmount => write!(
                f,
                "expected an amount (a whole number), {} at byte {at}",
                self.found()
            ),
            ParseErrorKind::ExpectedPer => write!(
                f,
                "expected \"per\" or \"/\" after the amount, {} at byte {at}",
                self.found()
            ),
            ParseErrorKind::ExpectedUnit => write!(
                f,
                "expected a unit, {} at byte {at} (expected {UNIT_LIST})",
                self.found()
            ),
            ParseErrorKind::UnknownUnit(word) => {
                write!(f, "unknown unit {word:?} at byte {at} (expected {UNIT_LIST})")
            }
            ParseErrorKind::ZeroAmount => {
                write!(f, "amount of zero at byte {at} (a limit allows at least 1 hit)")
            }
            ParseErrorKind::ZeroMultiples => write!(
                f,
                "window of zero units at byte {at} (the number of units must be at least 1)"
            ),
            ParseErrorKind::Negative => {
                let digits = self
                    .input
                    .get(at..)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .map(|rest| rest.get(..prefix_len(rest, |c| c.is_ascii_digit())).unwrap_or_default())
                    .unwrap_or_default();
                write!(f, "negative number \"-{digits}\" at byte {at} (numbers must be positive)")
            }
            ParseErrorKind::Fractional => {
                let number = self
                    .input
                    .get(at..)
                    .map(|rest| rest.get(..prefix_len(rest, |c| c.is_ascii_digit() || c == '.')).unwrap_or_default())
                    .unwrap_or_default();
                write!(f, "fractional number {number:?} at byte {at} (numbers must be whole)")
            }
            ParseErrorKind::NumberOverflow => write!(
                f,
                "number {:?} too large at byte {at} (the largest is {})",
                self.token().unwrap_or_default(),
                u64::MAX
            ),
            ParseErrorKind::WindowOverflow => write!(
                f,
                "window too long at byte {at} (the longest is {} milliseconds, 1000 years)",
                MAX_WINDOW_MS
            ),
            ParseErrorKind::Unexpected(c) => write!(f, "unexpected character {c:?} at byte {at}"),
            ParseErrorKind::MultipleLimits => write!(
                f,
                "more than one limit, the second at byte {at} (expected exactly one)"
            ),
            ParseErrorKind::MissingSeparator => write!(
                f,
                "missing separator before {:?} at byte {at} (separate limits with \",\", \";\" or \"|\", not white space)",
                self.token().unwrap_or_default()
            ),
            ParseErrorKind::ExpectedBurst => write!(
                f,
                "expected the burst (a whole number) after \"burst\", {} at byte {at}",
                self.found()
            ),
            ParseErrorKind::ZeroBurst => {
                write!(f, "burst of zero at byte {at} (a burst lets at least 1 hit through)")
            }
            ParseErrorKind::BurstOverflow => write!(
                f,
                "burst at byte {at} would take more than 1,000 years to refill at the limit's rate"
            ),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses one or more limits separated by `,`, `;` or `|`, in the order they appear.
///
/// Each limit is an amount, `per` or `/`, an optional number of units (1 when left out)
/// and a unit: `millisecond`, `second`, `minute`, `hour`, `day`, `month` (30 days) or
/// `year` (365 days), in any case, singular or plural, without abbreviations. Numbers are
/// whole, positive ASCII numbers up to `u64::MAX`; the window may not exceed
/// [`MAX_WINDOW_MS`](super::MAX_WINDOW_MS). White space is allowed around every token but
/// does not separate limits.
///
/// ```text
/// limits   := item (SEP item)*
/// item     := WS* AMOUNT WS* PER WS* [MULTIPLES WS*] UNIT WS*
/// SEP      := "," | ";" | "|"
/// PER      := "/" | "per"            ("per" in any case; it may touch the numbers)
/// AMOUNT   := DIGIT+                 (1 ..= 18446744073709551615)
/// MULTIPLES:= DIGIT+                 (at least 1; 1 when left out)
/// UNIT     := millisecond | second | minute | hour | day | month | year
///             (any case, singular or plural, no abbreviations)
/// ```
///
/// | Accepted | Rejected |
/// |----------|----------|
/// | `"10 per minute"`, `"10/minute"`, `"10 PER MINUTES"` | `"10 minute"`, `"10 per min"`, `"10/s"` |
/// | `"10/2 hours"`, `"10per2hours"`, `" 10 / 2 hour "` | `"10/0 hours"`, `"10/1.5 hours"`, `"10/-2 hours"` |
/// | `"1/second; 10/minute, 100/hour \| 1000/day"` | `"1/second 10/minute"`, `"1/second;"`, `"1/second;;2/hour"` |
///
/// # Errors
///
/// A [`ParseError`] for the first problem in the string, with its
/// [`kind`](ParseError::kind) and byte [`position`](ParseError::position).
///
/// # Examples
///
/// ```
/// use limiter_core::{parse_many, ParseErrorKind, Unit};
///
/// let limits = parse_many("1/second; 10 per 2 minutes | 1000 PER DAY")?;
/// assert_eq!(limits.len(), 3);
/// assert_eq!((limits[1].amount(), limits[1].multiples(), limits[1].unit()), (10, 2, Unit::Minute));
/// assert_eq!(limits[2].to_string(), "1000 per 1 day");
///
/// let err = parse_many("1/second 10/minute").unwrap_err();
/// assert_eq!(err.kind(), &ParseErrorKind::MissingSeparator);
/// assert_eq!(err.position(), 9);
/// # Ok::<(), limiter_core::ParseError>(())
/// ```
pub fn parse_many(s: &str) -> Result<Vec<RateLimit>, ParseError> {
    Ok(Parser::new(s)
        .parse_items()?
        .into_iter()
        .map(|(limit, _)| limit)
        .collect())
}

/// Parses exactly one limit (the grammar of [`parse_many`] with a single item).
pub(crate) fn parse_one(s: &str) -> Result<RateLimit, ParseError> {
    let mut items = Parser::new(s).parse_items()?.into_iter();
    match (items.next(), items.next()) {
        (Some((limit, _)), None) => Ok(limit),
        (_, Some((_, second))) => Err(ParseError::new(
            ParseErrorKind::MultipleLimits,
            s.to_owned(),
            second,
        )),
        // parse_items never returns an empty list.
        (None, None) => Err(ParseError::new(ParseErrorKind::Empty, s.to_owned(), 0)),
    }
}

fn is_separator(c: char) -> bool {
    matches!(c, ',' | ';' | '|')
}

fn is_separator_str(s: &str) -> bool {
    s.chars().next().is_some_and(is_separator)
}

/// The byte length of the longest prefix of `s` whose characters all satisfy `pred`.
fn prefix_len(s: &str, pred: impl Fn(char) -> bool) -> usize {
    s.char_indices()
        .find(|&(_, c)| !pred(c))
        .map_or(s.len(), |(i, _)| i)
}

/// A cursor over the input; `pos` is always a char boundary.
struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

/// A number as written: its value (`None` when over `u64::MAX`) and where it starts.
struct Number {
    value: Option<u64>,
    start: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Parser { src, pos: 0 }
    }

    fn error(&self, kind: ParseErrorKind, position: usize) -> ParseError {
        ParseError::new(kind, self.src.to_owned(), position)
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or_default()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn bump(&mut self, c: char) {
        self.pos += c.len_utf8();
    }

    fn skip_ws(&mut self) {
        self.pos += prefix_len(self.rest(), char::is_whitespace);
    }

    /// Consumes the longest run of characters satisfying `pred` and returns it.
    fn take_while(&mut self, pred: impl Fn(char) -> bool) -> &'a str {
        let rest = self.rest();
        let len = prefix_len(rest, pred);
        self.pos += len;
        rest.get(..len).unwrap_or_default()
    }

    /// All items with the byte offset where each starts (never empty on success).
    fn parse_items(mut self) -> Result<Vec<(RateLimit, usize)>, ParseError> {
        if self.src.chars().all(char::is_whitespace) {
            return Err(self.error(ParseErrorKind::Empty, 0));
        }
        let mut items = Vec::new();
        // Position of the separator that ended the previous item, if any.
        let mut last_separator: Option<usize> = None;
        loop {
            self.skip_ws();
            match self.peek() {
                // A separator where an item should start: leading or doubled separator.
                Some(c) if is_separator(c) => {
                    return Err(self.error(ParseErrorKind::EmptyItem, self.pos));
                }
                // The end where an item should start: trailing separator (the input is not
                // blank, so there was a previous item and a separator).
                None => {
                    let at = last_separator.unwrap_or(self.pos);
                    return Err(self.error(ParseErrorKind::EmptyItem, at));
                }
                Some(_) => {}
            }
            let start = self.pos;
            items.push((self.parse_item()?, start));
            // parse_item stops at a separator or the end.
            match self.peek() {
                Some(c) => {
                    last_separator = Some(self.pos);
                    self.bump(c);
                }
                None => return Ok(items),
            }
        }
    }

    /// One item, from its first non-space character up to (not including) the next
    /// separator or the end.
    fn parse_item(&mut self) -> Result<RateLimit, ParseError> {
        let Some(number) = self.parse_number()? else {
            return Err(self.error(ParseErrorKind::ExpectedAmount, self.pos));
        };
        let amount = self.number_value(&number)?;
        if amount == 0 {
            return Err(self.error(ParseErrorKind::ZeroAmount, number.start));
        }
        self.skip_ws();
        self.parse_per()?;
        self.skip_ws();
        let multiples = match self.parse_number()? {
            Some(number) => {
                let value = self.number_value(&number)?;
                if value == 0 {
                    return Err(self.error(ParseErrorKind::ZeroMultiples, number.start));
                }
                self.skip_ws();
                Some((value, number.start))
            }
            None => None,
        };
        let (unit, unit_start) = self.parse_unit()?;
        let (multiples, multiples_start) = multiples.unwrap_or((1, unit_start));
        match multiples.checked_mul(unit.millis()) {
            Some(window) if window <= MAX_WINDOW_MS => {}
            _ => return Err(self.error(ParseErrorKind::WindowOverflow, multiples_start)),
        }
        self.skip_ws();
        let burst = self.parse_burst()?;
        match self.peek() {
            None => {}
            Some(c) if is_separator(c) => {}
            Some(c) if c.is_ascii_digit() => {
                return Err(self.error(ParseErrorKind::MissingSeparator, self.pos));
            }
            Some(c) => return Err(self.error(ParseErrorKind::Unexpected(c), self.pos)),
        }
        let limit = RateLimit::new(amount, multiples, unit)
            .map_err(|err| self.error(err.kind().clone(), multiples_start))?;
        match burst {
            Some((burst, at)) => limit
                .with_burst(burst)
                .map_err(|err| self.error(err.kind().clone(), at)),
            None => Ok(limit),
        }
    }

    /// `burst N` after the unit, if the word is there; the cursor ends past the white
    /// space that follows.
    fn parse_burst(&mut self) -> Result<Option<(NonZeroU64, usize)>, ParseError> {
        let start = self.pos;
        let word = self.rest().get(..5).unwrap_or_default();
        let after = self.rest().get(5..).and_then(|r| r.chars().next());
        if !word.eq_ignore_ascii_case("burst") || after.is_some_and(char::is_alphabetic) {
            return Ok(None);
        }
        self.pos += word.len();
        self.skip_ws();
        let Some(number) = self.parse_number()? else {
            return Err(self.error(ParseErrorKind::ExpectedBurst, self.pos.max(start)));
        };
        let value = self.number_value(&number)?;
        let Some(burst) = NonZeroU64::new(value) else {
            return Err(self.error(ParseErrorKind::ZeroBurst, number.start));
        };
        self.skip_ws();
        Ok(Some((burst, number.start)))
    }

    /// A whole number at the cursor, if there is one. A minus sign or a decimal point
    /// attached to digits is an error rather than "no number".
    fn parse_number(&mut self) -> Result<Option<Number>, ParseError> {
        let start = self.pos;
        match (self.peek(), self.peek_second()) {
            (Some('-'), Some(d)) if d.is_ascii_digit() => {
                return Err(self.error(ParseErrorKind::Negative, start));
            }
            (Some('.'), Some(d)) if d.is_ascii_digit() => {
                return Err(self.error(ParseErrorKind::Fractional, start));
            }
            (Some(d), _) if d.is_ascii_digit() => {}
            _ => return Ok(None),
        }
        let digits = self.take_while(|c| c.is_ascii_digit());
        if let (Some('.'), Some(d)) = (self.peek(), self.peek_second()) {
            if d.is_ascii_digit() {
                return Err(self.error(ParseErrorKind::Fractional, start));
            }
        }
        let value = digits.bytes().try_fold(0u64, |acc, b| {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        });
        Ok(Some(Number { value, start }))
    }

    fn number_value(&self, number: &Number) -> Result<u64, ParseError> {
        number
            .value
            .ok_or_else(|| self.error(ParseErrorKind::NumberOverflow, number.start))
    }

    /// `/` or the word `per` in any case.
    fn parse_per(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        match self.peek() {
            Some('/') => {
                self.bump('/');
                Ok(())
            }
            Some(c) if c.is_alphabetic() => {
                let word = self.take_while(char::is_alphabetic);
                if word.eq_ignore_ascii_case("per") {
                    Ok(())
                } else {
                    Err(self.error(ParseErrorKind::ExpectedPer, start))
                }
            }
            _ => Err(self.error(ParseErrorKind::ExpectedPer, start)),
        }
    }

    /// The unit word and where it starts.
    fn parse_unit(&mut self) -> Result<(Unit, usize), ParseError> {
        let start = self.pos;
        match self.peek() {
            Some(c) if c.is_alphabetic() => {
                let word = self.take_while(char::is_alphabetic);
                Unit::from_name(word)
                    .map(|unit| (unit, start))
                    .ok_or_else(|| self.error(ParseErrorKind::UnknownUnit(word.to_owned()), start))
            }
            _ => Err(self.error(ParseErrorKind::ExpectedUnit, start)),
        }
    }
}

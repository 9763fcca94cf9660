//! Rate limits: an amount of hits allowed per window of time.
//!
//! A [`RateLimit`] is plain data. It is built with a constructor that names its unit
//! ([`RateLimit::per_minute`]) or parsed from the text grammar of Python's `limits`
//! (`"10 per minute"`, `"10/2 hours"`, see [`parse_many`] for the whole grammar).

mod parse;

use std::fmt;
use std::num::NonZeroU64;
use std::time::Duration;

pub use parse::{parse_many, ParseError, ParseErrorKind};

/// The longest window a rate limit may span: 1,000 years of 365 days, in milliseconds.
///
/// Longer windows are rejected with [`ParseErrorKind::WindowOverflow`]; the bound keeps
/// every timestamp computation far away from integer overflow.
pub const MAX_WINDOW_MS: u64 = 1_000 * 365 * 86_400_000;

/// The unit of a rate limit's window.
///
/// Units are fixed lengths of time, not calendar units: a month is always 30 days and a
/// year is always 365 days. (Python's `limits` uses 360-day years; the month agrees.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unit {
    /// One millisecond.
    Millisecond,
    /// One second.
    Second,
    /// 60 seconds.
    Minute,
    /// 3,600 seconds.
    Hour,
    /// 86,400 seconds.
    Day,
    /// 30 days.
    Month,
    /// 365 days.
    Year,
}

impl Unit {
    /// Every unit, shortest first.
    pub const ALL: [Unit; 7] = [
        Unit::Millisecond,
        Unit::Second,
        Unit::Minute,
        Unit::Hour,
        Unit::Day,
        Unit::Month,
        Unit::Year,
    ];

    /// The length of the unit in milliseconds.
    ///
    /// ```
    /// use limiter_core::Unit;
    /// assert_eq!(Unit::Minute.millis(), 60_000);
    /// assert_eq!(Unit::Year.millis(), 365 * 86_400_000);
    /// ```
    pub const fn millis(self) -> u64 {
        match self {
            Unit::Millisecond => 1,
            Unit::Second => 1_000,
            Unit::Minute => 60_000,
            Unit::Hour => 3_600_000,
            Unit::Day => 86_400_000,
            Unit::Month => 30 * 86_400_000,
            Unit::Year => 365 * 86_400_000,
        }
    }

    /// The singular lowercase name, as it appears in text (`"minute"`).
    pub const fn name(self) -> &'static str {
        match self {
            Unit::Millisecond => "millisecond",
            Unit::Second => "second",
            Unit::Minute => "minute",
            Unit::Hour => "hour",
            Unit::Day => "day",
            Unit::Month => "month",
            Unit::Year => "year",
        }
    }

    /// The unit named by `word`: singular or plural, in any case (`"Minutes"`).
    ///
    /// Returns `None` for anything else; there are no abbreviations.
    pub fn from_name(word: &str) -> Option<Unit> {
        let lower = word.to_ascii_lowercase();
        let singular = lower.strip_suffix('s').unwrap_or(&lower);
        Unit::ALL.into_iter().find(|unit| unit.name() == singular)
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A rate limit: `amount` hits per `multiples` × `unit`.
///
/// The text form is the grammar of Python's `limits` (see [`parse_many`] for several
/// limits in one string); [`Display`](fmt::Display) gives the text Flask-Limiter shows,
/// `"2 per 1 minute"`, and that text parses back to the same limit.
///
/// # Examples
///
/// ```
/// use limiter_core::{RateLimit, Unit};
/// use std::num::NonZeroU64;
///
/// let parsed: RateLimit = "10/2 hours".parse()?;
/// assert_eq!(parsed.amount(), 10);
/// assert_eq!(parsed.multiples(), 2);
/// assert_eq!(parsed.unit(), Unit::Hour);
/// assert_eq!(parsed.to_string(), "10 per 2 hour");
///
/// let built = RateLimit::per_minute(NonZeroU64::new(2).unwrap());
/// assert_eq!(built, "2 per minute".parse()?);
/// assert_eq!(RateLimit::new(10, 2, Unit::Hour)?, parsed);
/// # Ok::<(), limiter_core::ParseError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    amount: u64,
    multiples: u64,
    unit: Unit,
    /// A burst other than the amount (GCRA only).
    burst: Option<NonZeroU64>,
}

macro_rules! per_unit {
    ($($name:ident => $unit:ident, $doc:literal;)*) => {$(
        #[doc = concat!("`amount` hits per ", $doc, ".")]
        pub const fn $name(amount: NonZeroU64) -> RateLimit {
            RateLimit { amount: amount.get(), multiples: 1, unit: Unit::$unit, burst: None }
        }
    )*};
}

impl RateLimit {
    per_unit! {
        per_millisecond => Millisecond, "millisecond";
        per_second => Second, "second";
        per_minute => Minute, "minute";
        per_hour => Hour, "hour";
        per_day => Day, "day";
        per_month => Month, "month (30 days)";
        per_year => Year, "year (365 days)";
    }

    /// `amount` hits per `multiples` × `unit`, checked.
    ///
    /// # Errors
    ///
    /// [`ParseErrorKind::ZeroAmount`] or [`ParseErrorKind::ZeroMultiples`] for a zero, and
    /// [`ParseErrorKind::WindowOverflow`] when the window exceeds [`MAX_WINDOW_MS`].
    pub fn new(amount: u64, multiples: u64, unit: Unit) -> Result<RateLimit, ParseError> {
        let text = || format!("{amount} per {multiples} {unit}");
        if amount == 0 {
            return Err(ParseError::new(ParseErrorKind::ZeroAmount, text(), 0));
        }
        if multiples == 0 {
            return Err(ParseError::new(ParseErrorKind::ZeroMultiples, text(), 0));
        }
        match multiples.checked_mul(unit.millis()) {
            Some(window) if window <= MAX_WINDOW_MS => Ok(RateLimit {
                amount,
                multiples,
                unit,
                burst: None,
            }),
            _ => Err(ParseError::new(ParseErrorKind::WindowOverflow, text(), 0)),
        }
    }

    /// How many hits the limit allows per window (never zero).
    pub const fn amount(&self) -> u64 {
        self.amount
    }

    /// How many units one window spans (never zero).
    pub const fn multiples(&self) -> u64 {
        self.multiples
    }

    /// The unit of the window.
    pub const fn unit(&self) -> Unit {
        self.unit
    }

    /// The window length in milliseconds (at most [`MAX_WINDOW_MS`]).
    pub const fn window_ms(&self) -> u64 {
        // Checked on construction: multiples * unit <= MAX_WINDOW_MS.
        self.multiples * self.unit.millis()
    }

    /// The window length.
    pub const fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms())
    }

    /// This limit with a burst of `burst` units: how many units the
    /// [`Gcra`](crate::strategy::Gcra) strategy lets through at once, in place of the
    /// amount (governor's `allow_burst`). The rate stays `amount` per window. The other
    /// strategies count `amount` per window and ignore it. A burst equal to the amount
    /// is the default, and the same limit.
    ///
    /// In text: `"10 per second burst 50"`.
    ///
    /// ```
    /// use limiter_core::{ParseErrorKind, RateLimit};
    /// use std::num::NonZeroU64;
    ///
    /// let limit: RateLimit = "10 per second".parse()?;
    /// let bursty = limit.with_burst(NonZeroU64::new(50).unwrap())?;
    /// assert_eq!(bursty.burst(), 50);
    /// assert_eq!(bursty, "10 per second burst 50".parse()?);
    /// assert_eq!(bursty.to_string(), "10 per 1 second burst 50");
    /// assert_eq!(limit.with_burst(NonZeroU64::new(10).unwrap())?, limit);
    ///
    /// // A burst that would take more than 1,000 years to refill.
    /// let err = limit.with_burst(NonZeroU64::new(u64::MAX).unwrap()).unwrap_err();
    /// assert_eq!(err.kind(), &ParseErrorKind::BurstOverflow);
    /// # Ok::<(), limiter_core::ParseError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ParseErrorKind::BurstOverflow`] when refilling the whole burst would take
    /// longer than [`MAX_WINDOW_MS`] (`burst × window / amount`): the bound keeps every
    /// GCRA state within 64-bit numbers.
    pub fn with_burst(mut self, burst: NonZeroU64) -> Result<RateLimit, ParseError> {
        let refill = u128::from(burst.get()) * u128::from(self.window_ms());
        if refill > u128::from(MAX_WINDOW_MS) * u128::from(self.amount) {
            let text = format!("{self} burst {burst}");
            return Err(ParseError::new(ParseErrorKind::BurstOverflow, text, 0));
        }
        self.burst = (burst.get() != self.amount).then_some(burst);
        Ok(self)
    }

    /// The burst: how many units [`Gcra`](crate::strategy::Gcra) lets through at once;
    /// the amount unless [`with_burst`](Self::with_burst) set another.
    pub const fn burst(&self) -> u64 {
        match self.burst {
            Some(burst) => burst.get(),
            None => self.amount,
        }
    }

    /// Whether a burst other than the amount is set.
    pub(crate) const fn has_own_burst(&self) -> bool {
        self.burst.is_some()
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} per {} {}", self.amount, self.multiples, self.unit)?;
        match self.burst {
            Some(burst) => write!(f, " burst {burst}"),
            None => Ok(()),
        }
    }
}

impl std::str::FromStr for RateLimit {
    type Err = ParseError;

    /// Parses exactly one limit; use [`parse_many`] for `"1/second; 10/minute"`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse::parse_one(s)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for RateLimit {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for RateLimit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RateLimit;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rate limit such as \"10 per minute\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RateLimit, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

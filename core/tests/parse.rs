//! The rate-limit text grammar: accepted and rejected forms, error positions and
//! messages, round trips through `Display`, and property tests.

use limiter_core::limit::MAX_WINDOW_MS;
use limiter_core::{parse_many, ParseError, ParseErrorKind, RateLimit, Unit};
use proptest::prelude::*;

use ParseErrorKind as K;
use Unit::{Day, Hour, Millisecond, Minute, Month, Second, Year};

/// The (amount, multiples, unit) of each item, in order.
type Items = &'static [(u64, u64, Unit)];

/// Every accepted form, with its items.
const ACCEPTED: &[(&str, Items)] = &[
    ("10 per minute", &[(10, 1, Minute)]),
    ("10/minute", &[(10, 1, Minute)]),
    ("10 per 2 minutes", &[(10, 2, Minute)]),
    ("10/2 hours", &[(10, 2, Hour)]),
    ("10per2minutes", &[(10, 2, Minute)]),
    ("10 per 2minutes", &[(10, 2, Minute)]),
    ("10per 2 minutes", &[(10, 2, Minute)]),
    ("10 per2minutes", &[(10, 2, Minute)]),
    ("10 PER MINUTE", &[(10, 1, Minute)]),
    ("10 Per 2 Hours", &[(10, 2, Hour)]),
    ("10 pEr second", &[(10, 1, Second)]),
    ("10/MINUTES", &[(10, 1, Minute)]),
    ("10 / 2 minute", &[(10, 2, Minute)]),
    ("10/2minutes", &[(10, 2, Minute)]),
    ("010/minute", &[(10, 1, Minute)]),
    ("10 per 0002 hours", &[(10, 2, Hour)]),
    ("100 per 500 milliseconds", &[(100, 500, Millisecond)]),
    ("1 per millisecond", &[(1, 1, Millisecond)]),
    ("1/second", &[(1, 1, Second)]),
    ("1/seconds", &[(1, 1, Second)]),
    ("1/hour", &[(1, 1, Hour)]),
    ("1 per day", &[(1, 1, Day)]),
    ("7 per 3 days", &[(7, 3, Day)]),
    ("5/month", &[(5, 1, Month)]),
    ("5/2 Months", &[(5, 2, Month)]),
    ("5/year", &[(5, 1, Year)]),
    ("5 per YEARS", &[(5, 1, Year)]),
    ("  1/second  ", &[(1, 1, Second)]),
    ("\t1\t/\t2\tseconds\n", &[(1, 2, Second)]),
    ("\u{a0}10 per minute\u{3000}", &[(10, 1, Minute)]),
    ("18446744073709551615/second", &[(u64::MAX, 1, Second)]),
    ("1 per 1000 years", &[(1, 1000, Year)]),
    ("1 per 365000 days", &[(1, 365_000, Day)]),
    (
        "1/31536000000000 milliseconds",
        &[(1, 31_536_000_000_000, Millisecond)],
    ),
    ("1/second; 5/minute", &[(1, 1, Second), (5, 1, Minute)]),
    ("1/second,5/minute", &[(1, 1, Second), (5, 1, Minute)]),
    ("1/second | 5/minute", &[(1, 1, Second), (5, 1, Minute)]),
    (
        "1/second,5/minute|10 per hour;100/day",
        &[(1, 1, Second), (5, 1, Minute), (10, 1, Hour), (100, 1, Day)],
    ),
    (
        " 1 / second , 2 per 3 hours ;\n4 PER 5 DAYS ",
        &[(1, 1, Second), (2, 3, Hour), (4, 5, Day)],
    ),
    ("1/second;1/second", &[(1, 1, Second), (1, 1, Second)]),
];

/// Every rejected form, with the error kind and its byte position.
fn rejected() -> Vec<(&'static str, ParseErrorKind, usize)> {
    vec![
        ("", K::Empty, 0),
        ("   ", K::Empty, 0),
        ("\t\n", K::Empty, 0),
        ("10/minute;", K::EmptyItem, 9),
        (";10/minute", K::EmptyItem, 0),
        ("10/minute;;20/hour", K::EmptyItem, 10),
        ("10/minute, ;20/hour", K::EmptyItem, 11),
        ("10/minute |", K::EmptyItem, 10),
        (" ; ", K::EmptyItem, 1),
        (",", K::EmptyItem, 0),
        ("per minute", K::ExpectedAmount, 0),
        ("ten/minute", K::ExpectedAmount, 0),
        ("/minute", K::ExpectedAmount, 0),
        ("+1/second", K::ExpectedAmount, 0),
        ("１０/minute", K::ExpectedAmount, 0),
        ("1/second;x/minute", K::ExpectedAmount, 9),
        ("10 minute", K::ExpectedPer, 3),
        ("10", K::ExpectedPer, 2),
        ("10 ", K::ExpectedPer, 3),
        ("10 perminute", K::ExpectedPer, 3),
        ("10 pe minute", K::ExpectedPer, 3),
        ("10 times per minute", K::ExpectedPer, 3),
        ("10-minute", K::ExpectedPer, 2),
        ("10;5/second", K::ExpectedPer, 2),
        ("1e3/second", K::ExpectedPer, 1),
        ("10 per", K::ExpectedUnit, 6),
        ("10/2", K::ExpectedUnit, 4),
        ("10/2 ", K::ExpectedUnit, 5),
        ("10 per ;1/second", K::ExpectedUnit, 7),
        ("10//minute", K::ExpectedUnit, 3),
        ("10 per 2 3 minutes", K::ExpectedUnit, 9),
        ("10 per fortnight", K::UnknownUnit("fortnight".into()), 7),
        ("10 per min", K::UnknownUnit("min".into()), 7),
        ("10/min", K::UnknownUnit("min".into()), 3),
        ("10 per sec", K::UnknownUnit("sec".into()), 7),
        ("10/s", K::UnknownUnit("s".into()), 3),
        ("10/ms", K::UnknownUnit("ms".into()), 3),
        ("10/2 Minuten", K::UnknownUnit("Minuten".into()), 5),
        ("10 per secondss", K::UnknownUnit("secondss".into()), 7),
        ("10 per per minute", K::UnknownUnit("per".into()), 7),
        ("10 per minüte", K::UnknownUnit("minüte".into()), 7),
        ("0/second", K::ZeroAmount, 0),
        (" 000 per minute", K::ZeroAmount, 1),
        ("0/fortnight", K::ZeroAmount, 0),
        ("10/0 minutes", K::ZeroMultiples, 3),
        ("10 per 00 hour", K::ZeroMultiples, 7),
        ("-1/second", K::Negative, 0),
        ("10/-2 minutes", K::Negative, 3),
        ("1/second;-5/minute", K::Negative, 9),
        ("-1.5/second", K::Negative, 0),
        ("1.5/second", K::Fractional, 0),
        ("0.5/second", K::Fractional, 0),
        (".5/second", K::Fractional, 0),
        ("10/1.5 hours", K::Fractional, 3),
        ("10/.5 hours", K::Fractional, 3),
        ("18446744073709551616/second", K::NumberOverflow, 0),
        ("99999999999999999999999999/second", K::NumberOverflow, 0),
        ("10/99999999999999999999 minutes", K::NumberOverflow, 3),
        ("1 per 1001 years", K::WindowOverflow, 6),
        ("1 per 18446744073709551615 days", K::WindowOverflow, 6),
        ("1/365001 days", K::WindowOverflow, 2),
        ("1 per 31536000000001 milliseconds", K::WindowOverflow, 6),
        ("10/minute:", K::Unexpected(':'), 9),
        ("10/minute.", K::Unexpected('.'), 9),
        ("10/minute -", K::Unexpected('-'), 10),
        ("10 per minute!", K::Unexpected('!'), 13),
        ("10 per minute per hour", K::Unexpected('p'), 14),
        ("10/minute\u{301}", K::Unexpected('\u{301}'), 9),
        ("10/second 5/minute", K::MissingSeparator, 10),
        ("1/second5/minute", K::MissingSeparator, 8),
        ("1/second 2", K::MissingSeparator, 9),
    ]
}

fn triple(limit: &RateLimit) -> (u64, u64, Unit) {
    (limit.amount(), limit.multiples(), limit.unit())
}

#[test]
fn accepted_forms() {
    for &(input, expected) in ACCEPTED {
        let limits = parse_many(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        let got: Vec<_> = limits.iter().map(triple).collect();
        assert_eq!(got, expected, "{input:?}");
        if let [only] = expected {
            let one: RateLimit = input.parse().unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(triple(&one), *only, "{input:?}");
        }
    }
}

#[test]
fn rejected_forms() {
    for (input, kind, position) in rejected() {
        let err = parse_many(input).expect_err(input);
        assert_eq!(
            (err.kind(), err.position()),
            (&kind, position),
            "{input:?}: {err}"
        );
        assert_eq!(err.input(), input);
        // Parsing one limit meets the same first error.
        let one = input.parse::<RateLimit>().expect_err(input);
        assert_eq!(one, err, "{input:?}");
    }
}

#[test]
fn round_trip_through_display() {
    for &(input, _) in ACCEPTED {
        for limit in parse_many(input).unwrap() {
            let text = limit.to_string();
            let expected = format!(
                "{} per {} {}",
                limit.amount(),
                limit.multiples(),
                limit.unit().name()
            );
            assert_eq!(text, expected, "{input:?}");
            assert_eq!(text.parse::<RateLimit>().unwrap(), limit, "{input:?}");
        }
    }
}

#[test]
fn display_is_singular_with_multiples() {
    let cases = [
        ("2/minute", "2 per 1 minute"),
        ("2 per 3 MINUTES", "2 per 3 minute"),
        ("100 per 500 milliseconds", "100 per 500 millisecond"),
        ("10/2 hours", "10 per 2 hour"),
    ];
    for (input, shown) in cases {
        assert_eq!(input.parse::<RateLimit>().unwrap().to_string(), shown);
    }
    let limit: RateLimit = "100 per 500 milliseconds".parse().unwrap();
    assert_eq!(limit.window_ms(), 500);
    assert_eq!(limit, RateLimit::new(100, 500, Millisecond).unwrap());
}

#[test]
fn parse_one_rejects_several_limits() {
    let err = "1/second; 5/minute".parse::<RateLimit>().unwrap_err();
    assert_eq!(err.kind(), &K::MultipleLimits);
    assert_eq!(err.position(), 10);
    let err = "1/second|5/minute|6/hour".parse::<RateLimit>().unwrap_err();
    assert_eq!(err.kind(), &K::MultipleLimits);
    assert_eq!(err.position(), 9);
    let message = err.to_string();
    assert!(message.contains("more than one limit"), "{message}");
}

fn assert_message_shape(err: &ParseError) {
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("invalid rate limit {:?}: ", err.input())),
        "{message}"
    );
    assert!(
        message.contains(&format!("at byte {}", err.position())),
        "{message}"
    );
    assert!(!message.ends_with('.'), "{message}");
    assert!(!message.contains("ParseErrorKind"), "{message}");
    let what = &message[format!("invalid rate limit {:?}: ", err.input()).len()..];
    assert!(
        what.chars().next().is_some_and(|c| c.is_lowercase()),
        "{message}"
    );
}

#[test]
fn error_messages() {
    for (input, _, _) in rejected() {
        assert_message_shape(&parse_many(input).unwrap_err());
    }
    assert_message_shape(&"1/second; 5/minute".parse::<RateLimit>().unwrap_err());

    let exact = [
        (
            "10 per min",
            "invalid rate limit \"10 per min\": unknown unit \"min\" at byte 7 \
             (expected millisecond, second, minute, hour, day, month or year)",
        ),
        (
            "10 minute",
            "invalid rate limit \"10 minute\": expected \"per\" or \"/\" after the amount, \
             found \"minute\" at byte 3",
        ),
        (
            "10 per",
            "invalid rate limit \"10 per\": expected a unit, found end of input at byte 6 \
             (expected millisecond, second, minute, hour, day, month or year)",
        ),
    ];
    for (input, expected) in exact {
        assert_eq!(parse_many(input).unwrap_err().to_string(), expected);
    }

    // The offending text appears in the message.
    let mentions = [
        ("10 per fortnight", "\"fortnight\""),
        ("10 per minüte", "\"minüte\""),
        ("ten/minute", "\"ten\""),
        ("10 perminute", "\"perminute\""),
        ("10//minute", "\"/\""),
        ("-1/second", "\"-1\""),
        ("10/-25 minutes", "\"-25\""),
        ("1.5/second", "\"1.5\""),
        ("10/1.25 hours", "\"1.25\""),
        ("18446744073709551616/second", "\"18446744073709551616\""),
        ("10/minute:", "':'"),
        ("10/second 5/minute", "\"5\""),
        ("10/minute;;20/hour", "\";\""),
        ("0/second", "zero"),
        ("10/0 minutes", "zero"),
        ("1 per 1001 years", "too long"),
        ("", "empty"),
        ("  ", "blank"),
    ];
    for (input, word) in mentions {
        let message = parse_many(input).unwrap_err().to_string();
        assert!(message.contains(word), "{message} should mention {word}");
    }
}

#[test]
fn errors_from_the_constructor_display_well() {
    let cases = [
        (RateLimit::new(0, 1, Second), K::ZeroAmount),
        (RateLimit::new(1, 0, Second), K::ZeroMultiples),
        (RateLimit::new(1, 1001, Year), K::WindowOverflow),
        (RateLimit::new(1, u64::MAX, Day), K::WindowOverflow),
    ];
    for (result, kind) in cases {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), &kind);
        assert_message_shape(&err);
    }
    assert_eq!(
        RateLimit::new(1, MAX_WINDOW_MS, Millisecond)
            .unwrap()
            .window_ms(),
        MAX_WINDOW_MS
    );
}

#[test]
fn error_is_std_error() {
    let err: Box<dyn std::error::Error + Send + Sync> =
        Box::new("10 per fortnight".parse::<RateLimit>().unwrap_err());
    assert!(err.to_string().contains("fortnight"));
}

#[cfg(feature = "serde")]
#[test]
fn serde_round_trip() {
    let limit = RateLimit::new(10, 2, Hour).unwrap();
    let json = serde_json::to_string(&limit).unwrap();
    assert_eq!(json, "\"10 per 2 hour\"");
    let back: RateLimit = serde_json::from_str(&json).unwrap();
    assert_eq!(back, limit);
    let from_python_style: RateLimit = serde_json::from_str("\"10/2 hours\"").unwrap();
    assert_eq!(from_python_style, limit);

    let err = serde_json::from_str::<RateLimit>("\"10 per fortnight\"").unwrap_err();
    let message = err.to_string();
    assert!(message.contains("unknown unit \"fortnight\""), "{message}");
    assert!(serde_json::from_str::<RateLimit>("10").is_err());
}

// ---------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------

/// Fragments of the grammar and near misses, to build strings that get deep into the
/// parser.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,3}",
        "[0-9]{18,22}",
        Just("0".to_owned()),
        Just("-".to_owned()),
        Just(".".to_owned()),
        Just("/".to_owned()),
        "[pP][eE][rR]",
        Just("per".to_owned()),
        prop::sample::select(vec![
            "millisecond",
            "seconds",
            "minute",
            "Hours",
            "day",
            "MONTH",
            "years",
            "min",
            "s",
            "fortnight",
            "minüte",
        ])
        .prop_map(str::to_owned),
        prop::sample::select(vec![",", ";", "|", " ", "  ", "\t", "\u{a0}", ":"])
            .prop_map(str::to_owned),
        any::<char>().prop_map(String::from),
    ]
}

fn grammar_like() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..16).prop_map(|parts| parts.concat())
}

/// A random-case spelling of `word`.
fn random_case(word: &str) -> impl Strategy<Value = String> {
    let word = word.to_owned();
    prop::collection::vec(any::<bool>(), word.len()).prop_map(move |upper| {
        word.chars()
            .zip(upper)
            .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

fn ws() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "", " ", "  ", "\t", "\n", " \u{a0}"])
}

fn some_ws() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![" ", "  ", "\t", "\n", "\u{3000}"])
}

/// A valid limit: any amount, and multiples that keep the window in range.
fn valid_limit() -> impl Strategy<Value = RateLimit> {
    (
        prop_oneof![1..=10u64, 1..=u64::MAX, Just(u64::MAX)],
        prop::sample::select(Unit::ALL.to_vec()),
    )
        .prop_flat_map(|(amount, unit)| {
            let max = MAX_WINDOW_MS / unit.millis();
            (
                Just(amount),
                prop_oneof![Just(1), 1..=10u64, 1..=max, Just(max)],
                Just(unit),
            )
        })
        .prop_map(|(amount, multiples, unit)| {
            RateLimit::new(amount, multiples, unit).expect("window in range")
        })
}

/// `limit` written in one of many equivalent styles.
fn styled(limit: RateLimit) -> impl Strategy<Value = String> {
    let per = prop_oneof![Just("/".to_owned()), random_case("per")];
    let unit = (
        random_case(limit.unit().name()),
        prop_oneof![Just(""), Just("s"), Just("S")],
    )
        .prop_map(|(name, plural)| name + plural);
    let show_multiples = if limit.multiples() == 1 {
        any::<bool>().boxed()
    } else {
        Just(true).boxed()
    };
    (
        (ws(), 0..3usize, ws(), per),
        (ws(), some_ws(), show_multiples, 0..3usize, ws(), unit, ws()),
    )
        .prop_map(
            move |(
                (lead, zeros, ws1, per),
                (ws2, ws2_nonempty, show, mzeros, ws3, unit, trail),
            )| {
                // The word `per` must not touch the unit word.
                let ws2 = if !show && per != "/" && ws2.is_empty() {
                    ws2_nonempty
                } else {
                    ws2
                };
                let multiples = if show {
                    format!("{}{}{ws3}", "0".repeat(mzeros), limit.multiples())
                } else {
                    String::new()
                };
                format!(
                    "{lead}{}{}{ws1}{per}{ws2}{multiples}{unit}{trail}",
                    "0".repeat(zeros),
                    limit.amount()
                )
            },
        )
}

/// A list of valid limits in random styles, then maybe damaged: a character inserted,
/// removed or replaced. Many of these still parse.
fn mutated_list() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(valid_limit().prop_flat_map(styled), 1..4),
        prop::sample::select(vec![",", ";", "|", " ", ";;"]),
        0..4usize,
        any::<prop::sample::Index>(),
        fragment(),
    )
        .prop_map(|(items, sep, mutation, at, fragment)| {
            let text = items.join(sep);
            let chars: Vec<char> = text.chars().collect();
            let i = at.index(chars.len() + 1);
            let (before, after) = chars.split_at(i);
            let before: String = before.iter().collect();
            let after: String = after.iter().collect();
            match mutation {
                0 => text,
                1 => format!("{before}{fragment}{after}"),
                2 => format!("{before}{}", after.chars().skip(1).collect::<String>()),
                _ => format!(
                    "{before}{fragment}{}",
                    after.chars().skip(1).collect::<String>()
                ),
            }
        })
}

proptest! {
    #[test]
    fn never_panics_on_any_string(s in any::<String>()) {
        let many = parse_many(&s);
        let one = s.parse::<RateLimit>();
        if let Err(err) = &many {
            prop_assert!(err.position() <= s.len());
            prop_assert!(s.is_char_boundary(err.position()));
            let _ = err.to_string();
        }
        if let Err(err) = &one {
            let _ = err.to_string();
        }
    }

    #[test]
    fn never_panics_on_grammar_like_strings(s in grammar_like()) {
        match parse_many(&s) {
            Ok(limits) => {
                prop_assert!(!limits.is_empty());
                let one = s.parse::<RateLimit>();
                if limits.len() == 1 {
                    prop_assert_eq!(one, Ok(limits[0]));
                } else {
                    let err = one.unwrap_err();
                    prop_assert_eq!(err.kind(), &K::MultipleLimits);
                }
            }
            Err(err) => {
                prop_assert!(s.is_char_boundary(err.position()));
                prop_assert_eq!(err.input(), s.as_str());
                let message = err.to_string();
                prop_assert!(!message.ends_with('.'));
                let _ = s.parse::<RateLimit>().unwrap_err();
            }
        }
    }

    #[test]
    fn styled_limits_parse_back((limit, text) in valid_limit().prop_flat_map(|limit| (Just(limit), styled(limit)))) {
        prop_assert_eq!(text.parse::<RateLimit>(), Ok(limit), "{:?}", text);
        prop_assert_eq!(limit.to_string().parse::<RateLimit>(), Ok(limit));
    }

    #[test]
    fn styled_lists_parse_back(
        items in prop::collection::vec(
            valid_limit().prop_flat_map(|limit| (Just(limit), styled(limit))),
            1..5,
        ),
        seps in prop::collection::vec(prop::sample::select(vec![",", ";", "|"]), 4),
    ) {
        let mut text = String::new();
        for (i, (_, item)) in items.iter().enumerate() {
            if i > 0 {
                text.push_str(seps[i - 1]);
            }
            text.push_str(item);
        }
        let expected: Vec<RateLimit> = items.iter().map(|(limit, _)| *limit).collect();
        prop_assert_eq!(parse_many(&text), Ok(expected), "{:?}", text);
    }

    #[test]
    fn parsed_limits_display_reparses(s in prop_oneof![grammar_like(), any::<String>(), mutated_list()]) {
        if let Ok(limits) = parse_many(&s) {
            for limit in limits {
                let text = limit.to_string();
                prop_assert_eq!(text.parse::<RateLimit>(), Ok(limit), "{:?}", text);
            }
        }
    }
}

#[test]
fn bursts_parse_display_and_fail_clearly() {
    let bursty: RateLimit = "10 per second burst 50".parse().unwrap();
    assert_eq!((bursty.amount(), bursty.burst()), (10, 50));
    assert_eq!(bursty.to_string(), "10 per 1 second burst 50");
    assert_eq!(bursty.to_string().parse::<RateLimit>().unwrap(), bursty);
    for same in [
        "10/second BURST 50",
        " 10 / second  burst  50 ",
        "10 per 1 second Burst 050",
    ] {
        assert_eq!(same.parse::<RateLimit>().unwrap(), bursty, "{same}");
    }
    // A burst equal to the amount is the plain limit.
    let plain: RateLimit = "10 per second".parse().unwrap();
    assert_eq!(
        "10 per second burst 10".parse::<RateLimit>().unwrap(),
        plain
    );
    assert_eq!(plain.burst(), 10);
    // Separators still separate.
    let many = parse_many("1/second burst 3; 10/minute, 100/hour burst 7 | 5/day").unwrap();
    let bursts: Vec<u64> = many.iter().map(RateLimit::burst).collect();
    assert_eq!(bursts, [3, 10, 7, 5]);
    for (text, kind, at) in [
        ("10/second burst", K::ExpectedBurst, 15),
        ("10/second burst x", K::ExpectedBurst, 16),
        ("10/second burst; 1/minute", K::ExpectedBurst, 15),
        ("10/second burst 0", K::ZeroBurst, 16),
        ("10/second burst -2", K::Negative, 16),
        ("10/second burst 1.5", K::Fractional, 16),
        ("1 per year burst 2000", K::BurstOverflow, 17),
        ("10/second burst 5 5", K::MissingSeparator, 18),
        ("10/second bursty 5", K::Unexpected('b'), 10),
    ] {
        let err = text.parse::<RateLimit>().unwrap_err();
        assert_eq!((err.kind(), err.position()), (&kind, at), "{text}: {err}");
        assert!(!err.to_string().is_empty());
    }
    let message = "10/second burst 0"
        .parse::<RateLimit>()
        .unwrap_err()
        .to_string();
    assert!(message.contains("burst of zero"), "{message}");
}

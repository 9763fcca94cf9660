//! Golden vectors: every built-in strategy's answers and bytes, in a JSON file that
//! other implementations (a storage's server-side script, say) can replay.
//!
//! `core/tests/golden/vectors.json` is generated from the scenarios below. This test
//! replays every vector in the file through `Strategy::apply`, then regenerates the
//! file and fails if it differs. After a deliberate change, run it with
//! `LIMITER_BLESS=1` to rewrite the file, and review the diff. The format is described
//! in `core/tests/golden/README.md`.

use limiter_core::strategy::{BuiltIn, Op};
use limiter_core::{RateLimit, Timestamp, Unit};
use serde_json::{json, Value};
use std::path::PathBuf;

const MAX: u64 = Timestamp::MAX.as_millis();
const YEAR_1000: u64 = 1_000 * 365 * 86_400_000;

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/vectors.json")
}

/// A u64 as a JSON number when doubles hold it exactly, else as a decimal string.
fn num(n: u64) -> Value {
    if n <= MAX {
        json!(n)
    } else {
        json!(n.to_string())
    }
}

fn parse_num(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().expect("an unsigned integer"),
        Value::String(s) => s.parse().expect("a decimal u64"),
        other => panic!("not a number: {other}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn op_json(op: Op) -> Value {
    match op {
        Op::Hit { cost } => json!({ "kind": "hit", "cost": num(cost) }),
        Op::Test { cost } => json!({ "kind": "test", "cost": num(cost) }),
        Op::Refund { cost, at } => {
            json!({ "kind": "refund", "cost": num(cost), "at": num(at.as_millis()) })
        }
    }
}

fn parse_op(v: &Value) -> Op {
    let cost = parse_num(&v["cost"]);
    match v["kind"].as_str() {
        Some("hit") => Op::Hit { cost },
        Some("test") => Op::Test { cost },
        Some("refund") => Op::Refund {
            cost,
            at: Timestamp::from_millis(parse_num(&v["at"])),
        },
        other => panic!("unknown op kind {other:?}"),
    }
}

/// Applies `op` and returns the vector's `expect` object; `state` becomes the state
/// after.
fn expect(b: BuiltIn, l: &RateLimit, state: &mut Vec<u8>, op: Op, now: u64) -> Value {
    match b
        .strategy()
        .apply(l, state, op, Timestamp::from_millis(now))
    {
        Err(_) => json!({ "error": true }),
        Ok(t) => json!({
            "allowed": t.verdict.allowed,
            "remaining": num(t.verdict.remaining),
            "reset_at": num(t.verdict.reset_at.as_millis()),
            "retry_at": t.verdict.retry_at.map(|r| num(r.as_millis())),
            "state_after": hex(state),
            "ttl_ms": t.write.map(|d| num(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
        }),
    }
}

/// A named sequence of operations on one key; every step is a vector.
struct Scenario {
    name: &'static str,
    amount: u64,
    window_ms: u64,
    /// A burst of the limit's own (GCRA), if any.
    burst: Option<u64>,
    /// Bytes to start from instead of an empty state.
    start: Vec<u8>,
    steps: Vec<(Op, u64)>,
}

fn hit(cost: u64, now: u64) -> (Op, u64) {
    (Op::Hit { cost }, now)
}

fn test(cost: u64, now: u64) -> (Op, u64) {
    (Op::Test { cost }, now)
}

fn refund(cost: u64, at: u64, now: u64) -> (Op, u64) {
    let at = Timestamp::from_millis(at);
    (Op::Refund { cost, at }, now)
}

fn scenario(name: &'static str, amount: u64, window_ms: u64, steps: Vec<(Op, u64)>) -> Scenario {
    Scenario {
        name,
        amount,
        window_ms,
        burst: None,
        start: Vec::new(),
        steps,
    }
}

/// The limit of a vector: `amount` per `window_ms`, with `burst` if given.
fn limit(amount: u64, window_ms: u64, burst: Option<u64>) -> RateLimit {
    let l = RateLimit::new(amount, window_ms, Unit::Millisecond).expect("valid");
    match burst.and_then(std::num::NonZeroU64::new) {
        Some(burst) => l.with_burst(burst).expect("a burst within bounds"),
        None => l,
    }
}

fn scenarios(b: BuiltIn) -> Vec<Scenario> {
    let t0 = 1_700_000_000_000;
    let words = |tag: u8, words: &[u64]| -> Vec<u8> {
        let mut bytes = vec![tag];
        for w in words {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        bytes
    };
    let past_max = match b {
        BuiltIn::FixedWindow => words(1, &[MAX + 1, 1]),
        BuiltIn::MovingWindow => words(2, &[0, 1, MAX + 1, 1]),
        BuiltIn::SlidingWindow => words(3, &[MAX + 1, 1, 0]),
        _ => words(4, &[u64::MAX - 1, 0]),
    };
    let mut all = vec![
        scenario(
            "empty-state",
            3,
            1_000,
            vec![
                test(1, t0),
                refund(1, t0, t0),
                test(4, t0),
                hit(4, t0),
                hit(0, t0),
            ],
        ),
        scenario(
            "fill-and-reject",
            3,
            1_000,
            vec![
                hit(1, t0),
                hit(2, t0 + 100),
                test(1, t0 + 200),
                hit(1, t0 + 999),
                hit(1, t0 + 1_000),
                hit(3, t0 + 1_500),
                test(3, t0 + 2_100),
            ],
        ),
        scenario(
            "costs-above-one-and-above-the-amount",
            10,
            60_000,
            vec![
                hit(4, t0),
                hit(7, t0 + 10_000),
                hit(6, t0 + 20_000),
                test(11, t0 + 30_000),
                hit(11, t0 + 30_000),
                test(10, t0 + 70_000),
            ],
        ),
        scenario(
            "expired",
            2,
            500,
            vec![
                hit(2, t0),
                test(1, t0 + 499),
                test(2, t0 + 500),
                hit(1, t0 + 5_000),
            ],
        ),
        scenario(
            "clock-steps-back",
            2,
            10_000,
            vec![
                hit(1, t0 + 30_000),
                hit(1, t0),
                hit(1, t0 + 1),
                test(1, t0 + 39_999),
                hit(1, t0 + 40_000),
                hit(1, t0 + 10_000),
            ],
        ),
        scenario(
            "clock-fifteen-windows-ahead",
            2,
            10_000,
            vec![
                hit(1, t0 + 150_000),
                hit(1, t0),
                hit(1, t0 + 1),
                test(1, t0 + 159_999),
                refund(1, t0 + 1, t0 + 2),
                refund(1, t0 + 150_000, t0 + 3),
                hit(1, t0 + 160_000),
                hit(1, t0 + 10_000),
                hit(1, t0 + 10_001),
            ],
        ),
        scenario(
            "refunds",
            4,
            1_000,
            vec![
                hit(2, t0),
                hit(1, t0 + 500),
                refund(1, t0 + 500, t0 + 600),
                refund(2, t0, t0 + 1_200),
                hit(4, t0 + 1_200),
                refund(1, t0 + 1_200, t0 + 1_300),
                refund(9, t0 + 1_200, t0 + 1_400),
                refund(1, t0 - 5_000, t0 + 1_500),
                refund(1, t0 + 9_000, t0 + 1_600),
            ],
        ),
        scenario(
            "full-log",
            5,
            100,
            vec![
                hit(1, t0),
                hit(1, t0 + 10),
                hit(1, t0 + 20),
                hit(1, t0 + 30),
                hit(1, t0 + 40),
                hit(1, t0 + 50),
                test(3, t0 + 60),
                hit(2, t0 + 115),
                hit(1, t0 + 250),
            ],
        ),
        scenario(
            "huge-amount",
            u64::MAX,
            1_000,
            vec![
                hit(u64::MAX, t0),
                hit(1, t0),
                test(u64::MAX / 2, t0 + 700),
                hit(u64::MAX / 2, t0 + 1_000),
                refund(u64::MAX / 4, t0 + 1_000, t0 + 1_001),
            ],
        ),
        scenario(
            "huge-amount-short-window",
            u64::MAX,
            7,
            vec![hit(1, 0), hit(1, 3), test(u64::MAX, 3), test(u64::MAX, 10)],
        ),
        scenario(
            "near-the-end-of-time",
            2,
            YEAR_1000,
            vec![
                hit(1, MAX - 1_000),
                hit(1, MAX - 1),
                test(1, MAX),
                hit(1, u64::MAX),
                refund(1, MAX - 1, MAX),
                hit(1, MAX),
            ],
        ),
        Scenario {
            name: "garbage-tag",
            amount: 3,
            window_ms: 1_000,
            burst: None,
            start: vec![9, 1, 2, 3],
            steps: vec![hit(1, t0), test(1, t0)],
        },
        Scenario {
            name: "stored-time-past-max",
            amount: 3,
            window_ms: 1_000,
            burst: None,
            start: past_max,
            steps: vec![test(1, t0)],
        },
    ];
    if b == BuiltIn::MovingWindow {
        // A header counting fewer live units than its record: a refund of the record,
        // or a skip of it once expired, is an error; a test that touches neither is not.
        all.push(Scenario {
            name: "header-below-its-records",
            amount: 5,
            window_ms: 1_000,
            burst: None,
            start: words(2, &[0, 0, t0, 1]),
            steps: vec![refund(1, t0, t0), hit(1, t0 + 1_000), test(1, t0 + 10)],
        });
        // A refund whose new reset instant is found past a record with a time past
        // MAX: an error, with nothing written.
        all.push(Scenario {
            name: "refund-meets-a-corrupt-record",
            amount: 1,
            window_ms: 1,
            burst: None,
            start: words(2, &[0, 999, 1, 0, u64::MAX, 0, 0, 1]),
            steps: vec![refund(1, 0, 0), test(1, 0)],
        });
    }
    if b == BuiltIn::Gcra {
        let bursty = |name, amount, window_ms, burst, steps| Scenario {
            burst: Some(burst),
            ..scenario(name, amount, window_ms, steps)
        };
        // 2 per second, bursts of 5: five at once, then one every 500 ms; a cost of 4
        // (above the amount, within the burst) passes on a full bucket.
        all.push(bursty(
            "burst-above-the-amount",
            2,
            1_000,
            5,
            vec![
                hit(1, t0),
                hit(3, t0),
                hit(1, t0),
                hit(1, t0),
                test(1, t0 + 499),
                hit(1, t0 + 500),
                hit(1, t0 + 500),
                refund(1, t0 + 500, t0 + 600),
                test(6, t0 + 600),
                hit(4, t0 + 5_000),
                hit(2, t0 + 5_000),
            ],
        ));
        // 5 per second, bursts of 2: two at once, then one every 200 ms; a cost of 3
        // (within the amount, above the burst) never passes.
        all.push(bursty(
            "burst-below-the-amount",
            5,
            1_000,
            2,
            vec![
                hit(2, t0),
                hit(1, t0),
                hit(1, t0 + 200),
                hit(3, t0 + 10_000),
                test(2, t0 + 10_000),
            ],
        ));
        // A burst that takes the longest window to refill, near the end of time.
        all.push(bursty(
            "burst-at-the-end-of-time",
            1,
            1_000,
            YEAR_1000 / 1_000,
            vec![hit(1, MAX - 1_000), hit(1_000, MAX - 1), test(1, MAX)],
        ));
    }
    all
}

fn generate() -> Value {
    let mut vectors = Vec::new();
    for b in BuiltIn::ALL {
        for s in scenarios(b) {
            let l = limit(s.amount, s.window_ms, s.burst);
            let mut state = s.start.clone();
            for (i, (op, now)) in s.steps.into_iter().enumerate() {
                let before = state.clone();
                let expected = expect(b, &l, &mut state, op, now);
                if expected.get("error").is_some() {
                    state = before.clone();
                }
                vectors.push(json!({
                    "name": format!("{}/{}/{}", b.name(), s.name, i + 1),
                    "strategy": b.name(),
                    "limit": match s.burst {
                        Some(burst) => json!({
                            "amount": num(s.amount),
                            "window_ms": num(s.window_ms),
                            "burst": num(burst),
                        }),
                        None => json!({ "amount": num(s.amount), "window_ms": num(s.window_ms) }),
                    },
                    "state_before": hex(&before),
                    "op": op_json(op),
                    "now": num(now),
                    "expect": expected,
                }));
            }
        }
    }
    Value::Array(vectors)
}

fn render(v: &Value) -> String {
    let mut text = serde_json::to_string_pretty(v).expect("serializable");
    text.push('\n');
    text
}

#[test]
fn vectors_replay() {
    let text = std::fs::read_to_string(path()).expect("core/tests/golden/vectors.json");
    let vectors: Value = serde_json::from_str(&text).expect("JSON");
    let vectors = vectors.as_array().expect("an array");
    assert!(vectors.len() >= 150, "{} vectors", vectors.len());
    for v in vectors {
        let name = v["name"].as_str().expect("a name");
        let b = BuiltIn::from_name(v["strategy"].as_str().expect("a strategy")).expect("known");
        let l = limit(
            parse_num(&v["limit"]["amount"]),
            parse_num(&v["limit"]["window_ms"]),
            v["limit"].get("burst").map(parse_num),
        );
        let mut state = unhex(v["state_before"].as_str().expect("hex"));
        let got = expect(b, &l, &mut state, parse_op(&v["op"]), parse_num(&v["now"]));
        assert_eq!(got, v["expect"], "{name}");
    }
}

#[test]
fn vectors_are_up_to_date() {
    let fresh = render(&generate());
    if std::env::var_os("LIMITER_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(path(), &fresh).expect("writable");
        return;
    }
    let stored = std::fs::read_to_string(path()).unwrap_or_default();
    assert!(
        stored == fresh,
        "core/tests/golden/vectors.json is stale: rerun with LIMITER_BLESS=1 and review the diff"
    );
}

//! The core's golden vectors (`core/tests/golden/vectors.json`), replayed through each
//! strategy's Lua script directly: the state bytes are loaded with SET, the script
//! runs once, and its verdict, the bytes it leaves and their TTL must be the vector's.
//! A script bug shows as the failing vectors, by name.
//!
//! Vectors whose limit the scripts decline (numbers past what doubles hold exactly)
//! are listed and checked through the storage's full `apply`, which takes the generic
//! path for them; so is any vector where the script asks for that path.

mod common;

use limiter_core::storage::{KeyOp, NativeStrategies, StorageKey};
use limiter_core::strategy::{BuiltIn, Op, Verdict};
use limiter_core::{RateLimit, StorageErrorKind, Timestamp, Unit};
use limiter_redis::fred::prelude::KeysInterface;
use limiter_redis::fred::types::Expiration;
use limiter_redis::{runs_natively, ScriptAnswer};
use serde_json::Value;

const MAX_TTL: u64 = (1 << 53) - 1;

fn parse_num(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().expect("an unsigned integer"),
        Value::String(s) => s.parse().expect("a decimal u64"),
        other => panic!("not a number: {other}"),
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
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

fn expected_verdict(e: &Value) -> Verdict {
    Verdict {
        allowed: e["allowed"].as_bool().expect("allowed"),
        remaining: parse_num(&e["remaining"]),
        reset_at: Timestamp::from_millis(parse_num(&e["reset_at"])),
        retry_at: match &e["retry_at"] {
            Value::Null => None,
            v => Some(Timestamp::from_millis(parse_num(v))),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_vectors_replay_through_the_scripts() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/tests/golden/vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("read the golden vectors");
    let vectors: Vec<Value> = serde_json::from_str(&text).expect("parse the golden vectors");
    let storage = common::connect("LIMITER_REDIS_URL", "limiter-golden:").await;
    let raw = common::raw("LIMITER_REDIS_URL").await;
    let client = raw.pool();

    let mut failures = Vec::new();
    let (mut scripted, mut declined, mut fell_back) = (0, Vec::new(), Vec::new());
    for v in &vectors {
        let name = v["name"].as_str().expect("name");
        let strategy =
            BuiltIn::from_name(v["strategy"].as_str().expect("strategy")).expect("a built-in");
        let limit = RateLimit::new(
            parse_num(&v["limit"]["amount"]),
            parse_num(&v["limit"]["window_ms"]),
            Unit::Millisecond,
        )
        .expect("a valid limit");
        let limit = match v["limit"].get("burst").map(parse_num) {
            Some(burst) => {
                let burst = std::num::NonZeroU64::new(burst).expect("a burst of at least 1");
                limit.with_burst(burst).expect("a burst within bounds")
            }
            None => limit,
        };
        let op = parse_op(&v["op"]);
        let now = Timestamp::from_millis(parse_num(&v["now"]));
        let before = unhex(v["state_before"].as_str().expect("state_before"));
        let expect = &v["expect"];

        let key = StorageKey::new("golden", name);
        let redis_key = storage.redis_key(&key);
        let _: i64 = client.del(redis_key.as_str()).await.expect("DEL");
        if !before.is_empty() {
            let mut value = 0x5eed_u64.to_le_bytes().to_vec();
            value.extend_from_slice(&before);
            let _: () = client
                .set(
                    redis_key.as_str(),
                    value.as_slice(),
                    Some(Expiration::PX(600_000)),
                    None,
                    false,
                )
                .await
                .expect("SET");
        }
        let key_op = KeyOp {
            key: (&key).into(),
            limit: &limit,
            op,
            now,
        };

        let mut fail = |what: String| failures.push(format!("{name}: {what}"));
        let answer = if runs_natively(strategy, &limit, op.cost()) {
            scripted += 1;
            storage.run_strategy_script(strategy, key_op).await
        } else {
            declined.push(name);
            Ok(ScriptAnswer::Fallback)
        };
        let answer = match answer {
            Ok(ScriptAnswer::Fallback) => {
                if runs_natively(strategy, &limit, op.cost()) {
                    fell_back.push(name);
                }
                // The storage's own path for it: apply, which runs the generic path.
                let native = NativeStrategies::apply(&storage, strategy, key_op)
                    .resolve()
                    .await;
                let result = match native {
                    Some(result) => result,
                    None => {
                        limiter_core::storage::apply_with_cas(
                            &storage,
                            strategy.strategy(),
                            limiter_core::DEFAULT_MAX_ATTEMPTS,
                            key_op,
                        )
                        .await
                    }
                };
                result.map(|verdict| (verdict, None))
            }
            Ok(ScriptAnswer::Decided(verdict, ttl)) => Ok((verdict, Some(ttl))),
            Err(e) => Err(e),
        };

        let stored: Option<Vec<u8>> = client.get(redis_key.as_str()).await.expect("GET");
        let after = stored.map(|v| v[8..].to_vec()).unwrap_or_default();
        if expect.get("error").is_some() {
            match answer {
                Err(e) if e.kind() == StorageErrorKind::Corrupt => {}
                other => fail(format!("expected a Corrupt error, got {other:?}")),
            }
            if after != before {
                fail("a corrupt state was changed".to_owned());
            }
            continue;
        }
        let (verdict, ttl) = match answer {
            Ok(answer) => answer,
            Err(e) => {
                fail(format!("error {e}"));
                continue;
            }
        };
        let want = expected_verdict(expect);
        if verdict != want {
            fail(format!("verdict {verdict:?}, expected {want:?}"));
        }
        let want_after = unhex(expect["state_after"].as_str().expect("state_after"));
        if after != want_after {
            fail(format!(
                "state after {after:02x?}, expected {want_after:02x?}"
            ));
        }
        let want_ttl = match &expect["ttl_ms"] {
            Value::Null => None,
            t => Some(parse_num(t).min(MAX_TTL)),
        };
        if let Some(ttl) = ttl {
            if ttl != want_ttl {
                fail(format!("script ttl {ttl:?}, expected {want_ttl:?}"));
            }
        }
        if let Some(want_ttl) = want_ttl {
            let pttl: i64 = client.pttl(redis_key.as_str()).await.expect("PTTL");
            let pttl = u64::try_from(pttl).unwrap_or(0);
            if pttl > want_ttl || pttl + 1_000 < want_ttl {
                fail(format!("PTTL {pttl}, expected {want_ttl}"));
            }
        }
        let _: i64 = client.del(redis_key.as_str()).await.expect("DEL");
    }
    println!(
        "{} vectors: {scripted} through the scripts; declined up front: {declined:?}; \
         fell back from the script: {fell_back:?}",
        vectors.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
    assert!(vectors.len() >= 200, "only {} vectors", vectors.len());
    assert!(
        scripted >= vectors.len() * 3 / 4,
        "only {scripted} vectors ran in a script"
    );
}

//! The `limiter` binary against `memory://` and files: output shapes and exit
//! codes (a fresh process has a fresh memory storage, so counters start full).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn limiter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_limiter"))
        .args(args)
        .env_remove("LIMITER_STRATEGY")
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(output)))
}

fn example() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/limiter.toml")
        .display()
        .to_string()
}

/// An error is one line on standard error, with a non-zero status, and no backtrace.
fn assert_one_line_error(output: &Output, expected: &str) {
    assert_eq!(output.status.code(), Some(1), "{}", stderr(output));
    let err = stderr(output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("limiter: error: "), "{err}");
    assert!(err.contains(expected), "{err}\nwant: {expected}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn config_check_prints_the_effective_policy() {
    let output = limiter(&["config", "check", &example()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for expected in [
        "limiter.toml: valid",
        "storage      memory://",
        "strategy     sliding-window-counter",
        "key          X-Forwarded-For from 1 trusted hop(s), IPv6 /56",
        "on failure   in-memory fallback, probing after 1s up to every 30s, deadline 250ms",
        "  /login      POST: 5 per 1 minute; 20 per 1 hour (instead of the defaults)",
        "  /health     exempt from every limit",
    ] {
        assert!(text.contains(expected), "{text}\nwant: {expected}");
    }

    let output = limiter(&["config", "check", &example(), "--json"]);
    assert!(output.status.success());
    let value = json(&output);
    assert_eq!(value["valid"], true);
    assert_eq!(value["routes"].as_array().unwrap().len(), 6);
    assert_eq!(value["routes"][0]["path"], "/login");
    assert_eq!(value["default_limits"][0]["limits"][1], "5 per 1 second");
}

#[test]
fn config_check_applies_and_names_environment_variables() {
    let output = Command::new(env!("CARGO_BIN_EXE_limiter"))
        .args(["config", "check", &example()])
        .env("LIMITER_STRATEGY", "gcra")
        .env("LIMITER_STRATEGGY", "gcra")
        .output()
        .unwrap();
    let text = stdout(&output);
    assert!(text.contains("strategy     gcra"), "{text}");
    assert!(
        text.contains("environment  LIMITER_STRATEGY applied"),
        "{text}"
    );
    assert!(
        text.contains(
            "warning      LIMITER_STRATEGGY overrides nothing: did you mean LIMITER_STRATEGY?"
        ),
        "{text}"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_limiter"))
        .args(["config", "check", &example()])
        .env("LIMITER_ENABLED", "maybe")
        .output()
        .unwrap();
    assert_one_line_error(
        &output,
        "environment variable LIMITER_ENABLED: \"maybe\" is not true or false",
    );
}

#[test]
fn config_check_rejects_bad_files_with_a_position() {
    let dir = std::env::temp_dir().join(format!("limiter-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("[storage]\nuri = \"memory://\"\n[[routes]]\npath = \"/a\"\nlimits = [\"5 per fortnight\"]\n",
         ":5:11: routes[0].limits[0]: malformed limit \"5 per fortnight\""),
        ("[storage]\nuri = \"memroy://\"\n", ":2:7: storage.uri: unknown storage scheme \"memroy\""),
        ("default_limits = [\"1/second\"]\n", "no storage"),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = dir.join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let output = limiter(&["config", "check", path.to_str().unwrap()]);
        assert_one_line_error(&output, expected);
    }
    let output = limiter(&["config", "check", "/nonexistent/limiter.toml"]);
    assert_one_line_error(&output, "/nonexistent/limiter.toml: cannot read");
}

#[test]
fn status_shows_a_full_counter_on_a_fresh_memory_storage() {
    let output = limiter(&[
        "status",
        "--storage",
        "memory://",
        "--limit",
        "10/minute",
        "--key",
        "user:42",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("key        user:42"), "{text}");
    assert!(
        text.contains("limit      10 per 1 minute (fixed-window)"),
        "{text}"
    );
    assert!(text.contains("remaining  10 of 10"), "{text}");
    assert!(text.contains("next hit   now"), "{text}");

    let output = limiter(&[
        "status",
        "--storage",
        "memory://",
        "--limit",
        "5 per second",
        "--key",
        "a",
        "--key",
        "b",
        "--strategy",
        "gcra",
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let value = json(&output);
    assert_eq!(value["remaining"], 5);
    assert_eq!(value["allowed"], true);
    assert_eq!(value["strategy"], "gcra");
    assert_eq!(value["key"], serde_json::json!(["a", "b"]));
    assert!(value["retry_after_ms"].is_null());
}

#[test]
fn bad_arguments_are_usage_errors() {
    let output = limiter(&[
        "status",
        "--storage",
        "memory://",
        "--limit",
        "10/fortnight",
        "--key",
        "a",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("unknown unit \"fortnight\""));
    let output = limiter(&[
        "status",
        "--storage",
        "memory://",
        "--limit",
        "1/second",
        "--key",
        "a",
        "--strategy",
        "leaky",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("expected one of fixed-window, moving-window"));
    let output = limiter(&["ping", "--storage", "postgres://db"]);
    assert_one_line_error(
        &output,
        "storage postgres://db: unknown storage scheme \"postgres\"",
    );
}

#[test]
fn clear_refuses_without_yes_when_stdin_is_not_a_terminal() {
    let args = [
        "clear",
        "--storage",
        "memory://",
        "--limit",
        "10/minute",
        "--key",
        "user:42",
    ];
    let output = limiter(&args);
    assert_one_line_error(
        &output,
        "refusing to clear without --yes: standard input is not a terminal",
    );

    let output = limiter(&[&args[..], &["--yes"]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "cleared key user:42 for 10 per 1 minute (fixed-window)\n"
    );
    let output = limiter(&[&args[..], &["--yes", "--json"]].concat());
    assert_eq!(json(&output)["cleared"], true);
}

#[test]
fn ping_reports_health_and_latency_percentiles() {
    let output = limiter(&["ping", "--storage", "memory://", "--count", "5"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.starts_with("memory://: healthy"), "{text}");
    assert!(text.contains("5 round trips: min "), "{text}");
    let value = json(&limiter(&["ping", "--storage", "memory://", "--json"]));
    assert_eq!(value["healthy"], true);
    assert_eq!(value["count"], 20);
    assert!(value["p99_ms"].as_f64().unwrap() >= value["p50_ms"].as_f64().unwrap());
}

#[test]
fn bench_reports_throughput_and_the_rejection_ratio() {
    let output = limiter(&[
        "bench",
        "--storage",
        "memory://",
        "--duration",
        "500ms",
        "--concurrency",
        "2",
        "--keys",
        "10",
        "--reject-ratio",
        "0.5",
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let value = json(&output);
    let decisions = value["decisions"].as_u64().unwrap();
    assert!(decisions > 100, "{value}");
    assert_eq!(value["errors"], 0);
    let ratio = value["reject_ratio"].as_f64().unwrap();
    assert!((0.4..0.6).contains(&ratio), "{value}");
    assert!(value["max_ms"].as_f64().unwrap() >= value["p99_ms"].as_f64().unwrap());

    let output = limiter(&[
        "bench",
        "--storage",
        "memory://",
        "--duration",
        "200ms",
        "--strategy",
        "moving-window",
    ]);
    let text = stdout(&output);
    assert!(
        text.starts_with("moving-window on memory://, 16 in flight, 1000 keys"),
        "{text}"
    );
    assert!(text.contains("latency: p50 "), "{text}");
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let output = limiter(&["completions", shell]);
        assert!(output.status.success());
        let text = stdout(&output);
        assert!(
            text.contains("limiter") && text.contains("bench"),
            "{shell}"
        );
    }
}

#[test]
fn status_watch_refreshes_one_json_line_at_a_time() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_limiter"))
        .args([
            "--json",
            "status",
            "--storage",
            "memory://",
            "--limit",
            "3/second",
            "--key",
            "w",
            "--watch",
            "--interval",
            "100ms",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..3 {
        let line = lines.next().unwrap().unwrap();
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["remaining"], 3);
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

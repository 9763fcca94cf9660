//! What the integration tests share: the servers' addresses, read from the environment.
//!
//! A test that needs a server and finds no address fails with the command that starts
//! the servers; it never passes on nothing.
#![allow(dead_code)]

use limiter_redis::{RedisOptions, RedisStorage};

/// How to get the servers, for failure messages.
pub(crate) const HOW_TO_START: &str =
    "start the test servers first: run `bash scripts/test.sh`, or \
     `source scripts/services/redis.sh` in your shell and then `cargo test -p limiter-redis`";

/// The system clock in milliseconds since the Unix epoch: the common start instant of
/// the tests that run child processes.
pub(crate) fn unix_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// The value of environment variable `var`; fails the test when it is missing.
pub(crate) fn env(var: &str) -> String {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!("{var} is not set: {HOW_TO_START}"),
    }
}

/// The settings for the URI in `var`, with `prefix` as the key prefix.
pub(crate) fn options(var: &str, prefix: &str) -> RedisOptions {
    let uri = env(var);
    match uri.parse::<RedisOptions>() {
        Ok(options) => options.key_prefix(prefix),
        Err(e) => panic!("{var}={uri} does not parse: {e}"),
    }
}

/// A storage connected to the server in `var`, keys under `prefix`; fails the test
/// when it cannot connect.
pub(crate) async fn connect(var: &str, prefix: &str) -> RedisStorage {
    match RedisStorage::connect(options(var, prefix)).await {
        Ok(storage) => storage,
        Err(e) => panic!("cannot connect to the server in {var}: {e}; {HOW_TO_START}"),
    }
}

/// Script calls (`EVALSHA` and `EVAL`) the server has answered, from `redis-cli`.
pub(crate) fn script_calls(url: &str) -> u64 {
    command_calls(url, &["evalsha", "eval"])
}

/// Calls of `commands` (lower case, as `INFO commandstats` names them) the server has
/// answered, from `redis-cli`.
pub(crate) fn command_calls(url: &str, commands: &[&str]) -> u64 {
    let stats = command_stats(url);
    commands.iter().filter_map(|c| stats.get(*c)).sum()
}

/// Every command's calls the server has answered, by name (lower case), from one
/// `INFO commandstats` (one instant, whatever other clients do meanwhile).
pub(crate) fn command_stats(url: &str) -> std::collections::HashMap<String, u64> {
    let port = url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .expect("a port in LIMITER_REDIS_URL");
    let output = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "INFO", "commandstats"])
        .output()
        .expect("run redis-cli");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split("calls=").nth(1)?.split(',').next()?;
            Some((name.to_owned(), calls.parse::<u64>().ok()?))
        })
        .collect()
}

/// A storage on the server in `var` whose pool the test uses to look at keys and run
/// commands directly.
pub(crate) async fn raw(var: &str) -> RedisStorage {
    connect(var, "limiter-raw:").await
}

/// A redis-server this test starts on a loopback port, with no persistence; killed
/// when dropped.
pub(crate) struct TestServer {
    port: u16,
    child: Option<std::process::Child>,
    dir: std::path::PathBuf,
}

impl TestServer {
    /// Starts `redis-server` on 127.0.0.1:`port` and waits until it answers.
    pub(crate) fn start(port: u16) -> TestServer {
        let dir =
            std::env::temp_dir().join(format!("limiter-redis-test-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary folder");
        let mut server = TestServer {
            port,
            child: None,
            dir,
        };
        server.restart();
        server
    }

    /// Starts the server again (after [`kill`](Self::kill)) on the same port.
    pub(crate) fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-server ({e}): it must be on PATH; {HOW_TO_START}")
            });
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Kills the server at once (SIGKILL) and waits for it to exit.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (such as `-STOP` or `-CONT`) to the server.
    pub(crate) fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("a running server").id();
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// The server's URI.
    pub(crate) fn uri(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A stopped process must be continued before it can exit cleanly.
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The strategy object of a built-in, shared.
pub(crate) fn strategy(
    builtin: limiter_core::BuiltIn,
) -> std::sync::Arc<dyn limiter_core::Strategy> {
    use limiter_core::strategy::{FixedWindow, Gcra, MovingWindow, SlidingWindow};
    match builtin {
        limiter_core::BuiltIn::FixedWindow => std::sync::Arc::new(FixedWindow),
        limiter_core::BuiltIn::MovingWindow => std::sync::Arc::new(MovingWindow),
        limiter_core::BuiltIn::SlidingWindow => std::sync::Arc::new(SlidingWindow),
        _ => std::sync::Arc::new(Gcra),
    }
}

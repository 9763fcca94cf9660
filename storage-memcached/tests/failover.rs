//! One of two servers stopped (killed) or hung (SIGSTOP) while in use: its keys fail
//! with typed errors within the command timeout, the other server's keys keep working,
//! and its keys work again once it is back.
//!
//! Each test starts its own servers on loopback ports of its own, with the binary
//! named by `LIMITER_MEMCACHED_BIN` (exported by `scripts/services/memcached.sh`).

mod common;

use std::process::Stdio;
use std::time::Duration;

use limiter_core::{Key, RateLimiter, Storage, StorageError, StorageErrorKind, StorageKey};
use limiter_memcached::MemcachedStorage;
use tokio::process::{Child, Command};
use tokio::time::{sleep, Instant};

/// The command timeout of these tests' storages.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(400);
/// How much later than the command timeout a call may end: scheduling on a busy machine.
const SLACK: Duration = Duration::from_millis(500);
const TTL: Duration = Duration::from_secs(60);

/// A Memcached server of one test, killed when dropped.
struct TestServer {
    port: u16,
    child: Child,
}

impl TestServer {
    async fn start(port: u16) -> TestServer {
        let bin = common::env_url("LIMITER_MEMCACHED_BIN");
        let port_text = port.to_string();
        let child = Command::new(&bin)
            .args(["-u", "nobody", "-l", "127.0.0.1", "-p", &port_text])
            .args(["-U", "0", "-m", "16", "-t", "1"])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin} on port {port}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "memcached on port {port} did not start"
            );
            sleep(Duration::from_millis(20)).await;
        }
        TestServer { port, child }
    }

    fn name(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Sends `signal` (`STOP`, `CONT`) to the server and waits until the process is in
    /// the state it leads to (`T`: stopped, or running again).
    async fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("the server is running");
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {pid}");
        let want_stopped = signal == "STOP";
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The state follows the command name in parentheses.
            let state = stat
                .rsplit(") ")
                .next()
                .and_then(|rest| rest.chars().next());
            if (state == Some('T')) == want_stopped {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "memcached {pid}: state {state:?} after SIG{signal}"
            );
            sleep(Duration::from_millis(10)).await;
        }
    }

    /// Kills the server and waits until it is gone.
    async fn stop(mut self) -> u16 {
        self.child.kill().await.expect("kill the server");
        self.port
    }
}

async fn storage(servers: &[&TestServer]) -> MemcachedStorage {
    let list: Vec<String> = servers.iter().map(|s| s.name()).collect();
    let uri = format!(
        "memcached://{}?command_timeout={}ms&connect_timeout=200ms&pool_size=4",
        list.join(","),
        COMMAND_TIMEOUT.as_millis()
    );
    MemcachedStorage::from_uri(&uri).await.expect("a valid uri")
}

/// `count` keys stored on each server, in the order of `servers`.
fn keys_per_server(
    storage: &MemcachedStorage,
    servers: &[&TestServer],
    count: usize,
) -> Vec<Vec<StorageKey>> {
    let mut out = vec![Vec::new(); servers.len()];
    for i in 0.. {
        let key = StorageKey::new("failover", &format!("key-{i}"));
        let name = storage.server_for(&key).to_owned();
        let index = servers
            .iter()
            .position(|s| s.name() == name)
            .expect("a listed server");
        if out[index].len() < count {
            out[index].push(key);
        }
        if out.iter().all(|keys| keys.len() == count) {
            break;
        }
    }
    out
}

fn now() -> limiter_core::Timestamp {
    limiter_core::Timestamp::from_millis(0)
}

/// Checks that `result` is an error of one of `kinds` naming `operation`, the server and
/// the key, and that the call took at most the command timeout (plus slack).
fn assert_typed_failure<T: std::fmt::Debug>(
    result: Result<T, StorageError>,
    started: Instant,
    operation: &str,
    server: &str,
    key: &StorageKey,
    kinds: &[StorageErrorKind],
) {
    let elapsed = started.elapsed();
    let error = match result {
        Ok(value) => panic!("{operation} on {key} (server {server} down) succeeded: {value:?}"),
        Err(error) => error,
    };
    assert!(
        kinds.contains(&error.kind()),
        "{operation}: kind {:?}, expected one of {kinds:?}: {error}",
        error.kind()
    );
    assert_eq!(error.operation(), operation, "{error}");
    assert_eq!(error.key(), Some(key.as_str()), "{error}");
    assert!(error.to_string().contains(server), "{error}");
    assert!(
        elapsed <= COMMAND_TIMEOUT + SLACK,
        "{operation} took {elapsed:?}, command timeout {COMMAND_TIMEOUT:?}: {error}"
    );
}

/// Writes `key` (absent) and reads it back.
async fn write_and_read(storage: &MemcachedStorage, key: &StorageKey) {
    assert!(storage
        .compare_and_set(key, None, b"v", TTL, now())
        .await
        .unwrap_or_else(|e| panic!("write {key}: {e}")));
    let stored = storage.get(key, now()).await.expect("get");
    assert_eq!(stored.map(|v| v.value), Some(b"v".to_vec()), "{key}");
}

/// Retries `get` of `key` until it succeeds, and returns how many calls failed first.
async fn failures_until_get_works(storage: &MemcachedStorage, key: &StorageKey) -> usize {
    for failures in 0..10 {
        match storage.get(key, now()).await {
            Ok(_) => return failures,
            Err(_) => sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("{key}: get still fails after 10 attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_server_fails_only_its_keys_and_recovers_after_restart() {
    let a = TestServer::start(21311).await;
    let b = TestServer::start(21312).await;
    let storage = storage(&[&a, &b]).await;
    let keys = keys_per_server(&storage, &[&a, &b], 4);
    for key in keys.iter().flatten() {
        write_and_read(&storage, key).await;
    }
    storage.check().await.expect("both servers answer");

    let b_name = b.name();
    let b_port = b.stop().await;
    let unavailable = [StorageErrorKind::Unavailable, StorageErrorKind::Timeout];
    for key in &keys[1] {
        let started = Instant::now();
        let result = storage.get(key, now()).await;
        assert_typed_failure(result, started, "get", &b_name, key, &unavailable);
        let started = Instant::now();
        let result = storage.compare_and_set(key, None, b"w", TTL, now()).await;
        assert_typed_failure(
            result,
            started,
            "compare_and_set",
            &b_name,
            key,
            &unavailable,
        );
        let started = Instant::now();
        let result = storage.delete(key).await;
        assert_typed_failure(result, started, "delete", &b_name, key, &unavailable);
    }
    let started = Instant::now();
    let check = storage.check().await;
    assert!(
        matches!(&check, Err(e) if e.to_string().contains(&b_name)),
        "{check:?}"
    );
    assert!(started.elapsed() <= COMMAND_TIMEOUT + SLACK);
    // The other server's keys are untouched and still served.
    for key in &keys[0] {
        let stored = storage
            .get(key, now())
            .await
            .expect("get on the live server");
        assert_eq!(stored.map(|v| v.value), Some(b"v".to_vec()), "{key}");
    }
    // A limiter on the storage: decisions for the live server's keys, typed errors for
    // the others.
    let limiter = RateLimiter::new(std::sync::Arc::new(storage.clone()));
    let limit = "5 per minute".parse().expect("a limit");
    let mut live = 0;
    let mut failed = 0;
    for i in 0..40 {
        let key = Key::from(format!("limiter-{i}"));
        let on_b = storage.server_for(&limiter.storage_key(&limit, &key)) == b_name;
        match limiter.hit(&limit, &key, 1).await {
            Ok(decision) => {
                assert!(!on_b, "a decision for a key on the stopped server");
                assert!(decision.is_allowed());
                live += 1;
            }
            Err(limiter_core::Error::Storage(e)) => {
                assert!(on_b, "error for a key on the live server: {e}");
                assert!(e.kind().is_transient(), "{e}");
                failed += 1;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(live > 0 && failed > 0, "live {live}, failed {failed}");

    // Back on the same port: its keys work again (empty, as the server restarted).
    let b = TestServer::start(b_port).await;
    for key in &keys[1] {
        failures_until_get_works(&storage, key).await;
        write_and_read(&storage, key).await;
    }
    storage.check().await.expect("both servers answer again");
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_server_times_out_only_its_keys_and_recovers() {
    let a = TestServer::start(21313).await;
    let b = TestServer::start(21314).await;
    let storage = storage(&[&a, &b]).await;
    let keys = keys_per_server(&storage, &[&a, &b], 4);
    for key in keys.iter().flatten() {
        write_and_read(&storage, key).await;
    }

    b.signal("STOP").await;
    // Several calls at once on the hung server: each ends at the command timeout.
    let calls = keys[1].iter().map(|key| {
        let storage = storage.clone();
        let key = key.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            (storage.get(&key, now()).await, started, key)
        })
    });
    let name = b.name();
    for joined in futures::future::join_all(calls).await {
        let (result, started, key) = joined.expect("the task ends");
        assert_typed_failure(
            result,
            started,
            "get",
            &name,
            &key,
            &[StorageErrorKind::Timeout],
        );
    }
    // A write too.
    let key = &keys[1][0];
    let started = Instant::now();
    let result = storage.compare_and_set(key, None, b"w", TTL, now()).await;
    assert_typed_failure(
        result,
        started,
        "compare_and_set",
        &name,
        key,
        &[StorageErrorKind::Timeout],
    );
    // The other server answers as fast as ever meanwhile.
    for key in &keys[0] {
        let started = Instant::now();
        let stored = storage
            .get(key, now())
            .await
            .expect("get on the live server");
        assert_eq!(stored.map(|v| v.value), Some(b"v".to_vec()));
        assert!(
            started.elapsed() < COMMAND_TIMEOUT,
            "{:?}",
            started.elapsed()
        );
    }

    b.signal("CONT").await;
    for key in &keys[1] {
        failures_until_get_works(&storage, key).await;
        let stored = storage
            .get(key, now())
            .await
            .expect("get after the server resumed");
        assert_eq!(stored.map(|v| v.value), Some(b"v".to_vec()), "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_server_works() {
    let bin = common::env_url("LIMITER_MEMCACHED_BIN");
    let path = std::env::temp_dir().join(format!("limiter-memcached-{}.sock", std::process::id()));
    let path = path.to_str().expect("a UTF-8 temp path").to_owned();
    let _ = std::fs::remove_file(&path);
    let _server = Command::new(&bin)
        .args([
            "-u", "nobody", "-s", &path, "-a", "0766", "-m", "16", "-t", "1",
        ])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {bin} on {path}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::UnixStream::connect(&path).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "memcached on {path} did not start"
        );
        sleep(Duration::from_millis(20)).await;
    }
    let storage = MemcachedStorage::from_uri(&format!("memcached://{path}"))
        .await
        .expect("a valid uri");
    assert_eq!(storage.options().get_servers()[0].name(), path);
    assert_eq!(storage.options().get_servers().len(), 1);
    storage.check().await.expect("the socket server answers");
    let key = StorageKey::new("unix", "socket");
    write_and_read(&storage, &key).await;
    let limiter = RateLimiter::new(std::sync::Arc::new(storage));
    let limit = "1 per minute".parse().expect("a limit");
    let key = Key::from("over-a-socket");
    assert!(limiter
        .hit(&limit, &key, 1)
        .await
        .expect("hit")
        .is_allowed());
    assert!(!limiter
        .hit(&limit, &key, 1)
        .await
        .expect("hit")
        .is_allowed());
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_fails_fast_with_the_connect_error() {
    // Nothing listens on this port.
    let storage = MemcachedStorage::from_uri(
        "memcached://127.0.0.1:21319?command_timeout=2s&connect_timeout=1s",
    )
    .await
    .expect("a valid uri");
    let key = StorageKey::new("failover", "nobody-home");
    for _ in 0..3 {
        let started = Instant::now();
        let error = storage
            .get(&key, now())
            .await
            .expect_err("no server listens");
        assert_eq!(error.kind(), StorageErrorKind::Unavailable, "{error}");
        assert!(error.to_string().contains("127.0.0.1:21319"), "{error}");
        assert!(error.to_string().contains("refused"), "{error}");
        // The refused connection ends the call: it does not wait out the timeouts.
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
}

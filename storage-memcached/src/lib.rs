//! Memcached storage for **limiter**: [`MemcachedStorage`], on one or more servers.
//!
//! It implements the required core of [`Storage`](limiter_core::Storage) with
//! Memcached's meta protocol (through `async-memcached`, pooled with `bb8`), and every
//! strategy, built-in or custom, runs on it through the limiter's generic
//! compare-and-set path.
//!
//! ```no_run
//! use limiter_core::{strategy::Gcra, Key, RateLimiter};
//! use limiter_memcached::MemcachedStorage;
//! use std::sync::Arc;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let storage = MemcachedStorage::from_uri(
//!     "memcached://10.0.0.1:11211,10.0.0.2:11211?key_prefix=api:&command_timeout=250ms",
//! )
//! .await?;
//! let limiter = RateLimiter::builder(Arc::new(storage)).strategy(Gcra).build();
//! let decision = limiter.hit(&"100 per minute".parse()?, &Key::from("203.0.113.9"), 1).await?;
//! if !decision.is_allowed() {
//!     println!("retry in {:?}", decision.retry_after());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The URI and its options (`key_prefix`, `pool_size`, `connect_timeout`,
//! `command_timeout`, `flush_on_clear`, `tls`) are described on [`MemcachedOptions`],
//! which also builds them with setters ([`MemcachedStorage::connect`]) and reads them
//! from configuration files (serde). With the facade crate's `memcached` feature,
//! `limiter::storage_from_uri` accepts the same URIs.
//!
//! A storage needs a Tokio runtime with its time and I/O drivers enabled (as
//! `#[tokio::main]` sets up); like Tokio's own network types, it panics without them.
//!
//! # Protocol
//!
//! | [`Storage`](limiter_core::Storage) method | Memcached command |
//! |---|---|
//! | `get` | `mg <key> v c`: the value, and its CAS unique as the [`Version`](limiter_core::storage::Version) |
//! | `compare_and_set(…, Some(version), …)` | `ms <key> <len> T<expiry> C<version>`: written unless the CAS unique changed (`EX`) or the key is gone (`NF`) |
//! | `compare_and_set(…, None, …)` | `ms <key> <len> T<expiry> ME` (add): written only if the key is absent (`NS` otherwise) |
//! | `delete` | `md <key>` (an absent key is fine) |
//! | `check` | `version`, on every server at once |
//! | `clear_all` | `flush_all` on every server, only with `flush_on_clear=true`; otherwise `Unsupported` |
//!
//! **Versions.** A CAS unique comes from one counter per server process, shared by all
//! its keys, so it never repeats for a key, even when the key is deleted or expires and
//! is written again: a writer holding an old version is always refused (no ABA). A key
//! always lives on the same server (see below), so its versions come from one counter.
//! The counter restarts when the server restarts, but so does its data: the only
//! window is a write racing a restart within one round trip, which then finds the key
//! absent or, in a vanishingly unlikely case, recreated with the same unique. A server
//! started with `-C` (CAS disabled) gives every value the unique 0; `get` then fails
//! with a [`Protocol`](limiter_core::StorageErrorKind::Protocol) error rather than run
//! unsafely.
//!
//! **No native operations.** Every built-in strategy keeps its documented binary state
//! layout, and Memcached cannot update such bytes in place: its one atomic
//! read-modify-write, `ma`, works on decimal counters. A native fixed window on `ma`
//! would need another layout and would still need a second command for a new window.
//! The generic path costs two round trips per admitted hit (`mg`, `ms`) and one per
//! rejection; the [bench](#speed) puts it at about half the rate of raw `ma`
//! increments, the ceiling for any one-command design, under load.
//!
//! # Expiry
//!
//! Each write carries the time-to-live the strategy asks for, as `T<seconds>`:
//!
//! - **Rounded up, plus one second.** Memcached's clock ticks in whole seconds, so a
//!   value written with `T<n>` lives between n − 1 and n seconds. Asking for the
//!   time-to-live rounded up plus one keeps every value at least its time-to-live, as
//!   the storage contract requires, and at most two seconds longer.
//! - **Beyond 30 days, a Unix time.** Memcached reads a `T` above 30 days as an
//!   absolute Unix time, so a relative `1 per 1 year` would be a time in 1971 and the
//!   value would vanish at once. Longer time-to-lives are sent as the system clock's
//!   time plus the time-to-live (the system clock, not the limiter's, because the
//!   server compares with its own clock: keep server clocks in sync). A time past
//!   2038-01-19, the largest Memcached parses, is sent as `T0` (no expiry): kept at
//!   least its time-to-live, until evicted.
//!
//! Decisions never depend on expiry: the limiter's clock decides, and Memcached only
//! reclaims state that no longer matters. Memcached may also evict any value early
//! when it runs out of memory; an evicted key starts afresh, as after a
//! [`clear`](limiter_core::RateLimiter::clear). Size servers so that rate-limit keys are
//! not evicted.
//!
//! # Keys
//!
//! Memcached keys are at most 250 bytes and end at a space or control character. A
//! stored key (the limiter's [`StorageKey`](limiter_core::StorageKey), after the
//! `key_prefix`) goes to the server as it is only when that is safe, and otherwise as a
//! readable start plus a digest of the whole key:
//!
//! - **Plain form**: `prefix + key`, when every byte of the key is printable ASCII
//!   (`!` to `~`) other than `#`, and the whole fits in 250 bytes.
//! - **Digest form**: `prefix + readable + "#" + hex(SHA-256(key))` for every other key:
//!   longer ones, and any with a space, a control character, a non-ASCII character or
//!   `#`. `readable` is the start of the key with each such byte replaced by `_`, cut so
//!   that the whole is at most 250 bytes; the digest is 64 lower-case hex digits of the
//!   SHA-256 of the whole key.
//!
//! No two keys share a Memcached key, and no key can end the command line: a plain form
//! never contains `#` (nor does the prefix, which the options check) and a digest
//! form always does, so a key spelled like a digest form (`…#<64 hex digits>`) is
//! itself digested and cannot meet the key it imitates; two digest forms end with their
//! fixed-length digests, so they are equal only if SHA-256 collides. Identifiers such
//! as `"a\r\nflush_all\r\n"` are stored as `…a__flush_all__#<digest>`.
//! [`MemcachedStorage::memcached_key`] shows the key a [`StorageKey`](limiter_core::StorageKey)
//! is stored under.
//!
//! # Several servers
//!
//! `memcached://host1:11211,host2:11211` spreads keys over the servers by rendezvous
//! (highest random weight) hashing: each server scores each Memcached key with
//! `murmur3_fmix64(fnv1a64(key) ^ murmur3_fmix64(fnv1a64(name)))`, where `name` is the
//! server as written in the URI (`host:port` with the port spelled out, or the socket
//! path), and the highest score holds the key. So:
//!
//! - every client that lists the same server names, in any order, puts every key on the
//!   same server; list them alike everywhere (`10.0.0.1:11211`, not `localhost` here and
//!   an address there);
//! - adding a server moves about 1/n of the keys, all to the new server; removing one
//!   moves only its keys;
//! - a server that is down affects only its own keys: their calls fail (see below) and
//!   are not sent elsewhere, since a key's state split over two servers would admit too
//!   much. Each server has its own pool.
//!
//! [`MemcachedStorage::server_for`] names the server of a key.
//!
//! # Connections, timeouts and errors
//!
//! Each server has a pool of up to `pool_size` connections (default 8), opened on
//! first use and checked only by use (`test_on_check_out` off: a round trip per
//! checkout would double the cost of a decision). **Every call ends within
//! `command_timeout`** (default 500 ms), waiting for a connection included, also when a
//! server is stopped or hung; a new connection may take at most `connect_timeout`
//! (default 2 s). Failures are [`StorageError`](limiter_core::StorageError)s whose
//! message names the server, whose [`operation`](limiter_core::StorageError::operation)
//! is the method (`get`, `compare_and_set`, `delete`, `check`, `clear_all`) and whose
//! [`key`](limiter_core::StorageError::key) is the stored key; the client's own error is
//! the [`source`](std::error::Error::source):
//!
//! | kind | when |
//! |---|---|
//! | [`Unavailable`](limiter_core::StorageErrorKind::Unavailable) | the server refuses or drops connections, or closed this one |
//! | [`Timeout`](limiter_core::StorageErrorKind::Timeout) | no reply within `command_timeout` (a hung or overloaded server), or every connection stayed busy |
//! | [`Protocol`](limiter_core::StorageErrorKind::Protocol) | a reply the client could not read, a server error line, or no CAS unique |
//!
//! The client closes a connection for good when a command on it fails or is
//! cancelled, and the pool then drops it. A server that closed one connection has
//! usually closed them all (a restart): the pool then drops every connection to it
//! that is as old, without waiting for each to fail, and a read that failed on a reused
//! connection is retried once on a new one (writes are never retried: the first may
//! have been applied). When the last attempt to connect to a server failed, calls for
//! its keys fail at once rather than wait for the next attempt; the pool keeps
//! reconnecting in the background, and the first success ends this.
//!
//! **Cancel safety.** Dropping a call's future before it completes closes the
//! connection it was using (the pool replaces it). A dropped `compare_and_set` may or
//! may not have written; a dropped limiter hit may or may not have counted.
//!
//! # Conformance
//!
//! The `limiter-conformance` suite passes against one server and against two, with
//! every capability on: `Capabilities::ALL` with an `expiry_margin` of 2 s instead of
//! 300 ms, because whole-second expiry plus the extra second above can keep a value up
//! to two seconds past its time-to-live. `clear_all` needs `flush_on_clear=true` in the
//! URI (the test servers hold nothing else); on servers shared with other data leave it
//! off, and `clear_all` answers [`Unsupported`](limiter_core::StorageErrorKind::Unsupported).
//!
//! ```text
//! bash scripts/test.sh                                     # everything, servers included
//! source scripts/lib.sh && source scripts/services/memcached.sh
//! cargo test -p limiter-memcached                          # then, in that shell
//! cargo test -p limiter-memcached --test conformance pair::  # the two-server suite
//! ```
//!
//! The tests read `LIMITER_MEMCACHED_URL` (one server), `LIMITER_MEMCACHED_PAIR_URL`
//! (both) and `LIMITER_MEMCACHED_BIN` (to start servers of their own), and fail, never
//! skip, when they are missing.
//!
//! # Speed
//!
//! Measured with the bench beside this crate, against one local server
//! (memcached 1.6.18, two threads, on the same two-core machine as the bench and a
//! Tokio runtime with two workers; `pool_size=64`):
//!
//! ```text
//! source scripts/lib.sh && source scripts/services/memcached.sh
//! cargo bench -p limiter-memcached --bench throughput
//! ```
//!
//! Each row runs for 2 s in all, in three rounds interleaved with the other rows of its
//! block; figures are medians of the rounds. "raw ma" is one `ma <key> N60 v`
//! increment per call through the same pool, key encoding and deadline: the fastest
//! any Memcached write can go. Decisions use `1000000 per hour`, so every hit is
//! admitted and writes (`mg` then `ms`). "distinct": each caller cycles over 1,024
//! keys of its own; "one hot key": every caller hits the same key.
//!
//! | keys | callers | workload | calls/s | % of raw ma | Contention errors | other errors |
//! |---|---:|---|---:|---:|---:|---:|
//! | distinct | 1 | raw ma | 52533 | 100% | 0 of 107489 (0.0%) | 0 |
//! | distinct | 1 | fixed-window | 26775 | 51% | 0 of 51740 (0.0%) | 0 |
//! | distinct | 1 | moving-window | 29192 | 56% | 0 of 57873 (0.0%) | 0 |
//! | distinct | 1 | sliding-window-counter | 23373 | 44% | 0 of 48332 (0.0%) | 0 |
//! | distinct | 1 | gcra | 25195 | 48% | 0 of 53083 (0.0%) | 0 |
//! | distinct | 64 | raw ma | 71857 | 100% | 0 of 148970 (0.0%) | 0 |
//! | distinct | 64 | fixed-window | 24425 | 34% | 0 of 62198 (0.0%) | 0 |
//! | distinct | 64 | moving-window | 28140 | 39% | 0 of 60816 (0.0%) | 0 |
//! | distinct | 64 | sliding-window-counter | 39157 | 54% | 0 of 73195 (0.0%) | 0 |
//! | distinct | 64 | gcra | 37258 | 52% | 0 of 70936 (0.0%) | 0 |
//! | one hot key | 1 | raw ma | 33578 | 100% | 0 of 51183 (0.0%) | 0 |
//! | one hot key | 1 | fixed-window | 15531 | 46% | 0 of 33610 (0.0%) | 0 |
//! | one hot key | 1 | moving-window | 13611 | 41% | 0 of 20965 (0.0%) | 0 |
//! | one hot key | 1 | sliding-window-counter | 15074 | 45% | 0 of 31249 (0.0%) | 0 |
//! | one hot key | 1 | gcra | 13585 | 40% | 0 of 23803 (0.0%) | 0 |
//! | one hot key | 64 | raw ma | 32719 | 100% | 0 of 78603 (0.0%) | 0 |
//! | one hot key | 64 | fixed-window | 1888 | 6% | 1 of 3669 (0.0%) | 0 |
//! | one hot key | 64 | moving-window | 2606 | 8% | 1 of 5729 (0.0%) | 0 |
//! | one hot key | 64 | sliding-window-counter | 2011 | 6% | 3 of 4869 (0.1%) | 0 |
//! | one hot key | 64 | gcra | 3366 | 10% | 0 of 5454 (0.0%) | 0 |
//!
//! How to read it:
//!
//! - **Distinct keys.** A decision is two round trips to a raw increment's one, so
//!   about 50% of the raw rate is the ceiling; it lands between about 35% and 55%
//!   from run to run, since the machine was shared with other builds (load average
//!   4 to 7 on two cores) and the bench, the server and those builds compete for the
//!   same cores. Repeat runs to compare changes.
//! - **One hot key.** With one caller there is no contention and a decision costs its
//!   two round trips. With 64 callers on one key, all but one of the writers that read
//!   the same version lose each race and start over, so throughput falls to about
//!   2,000 to 11,000 decisions per second over several runs (against 30,000 to 160,000
//!   raw increments). The core's jittered back-off in scheduler turns keeps `Contention`
//!   errors rare (the limiter's default of 128 attempts ran out for 0 to 1.6% of the
//!   decisions in the runs made), but it cannot keep losers off the network: a
//!   scheduler turn is far shorter than a round trip, so most retries still collide.
//!   A hot key at high concurrency is where a storage with native operations (one
//!   atomic step per decision, as the in-memory storage has) wins.
//! - The moving window on one hot key also carries a growing log (one timestamp per
//!   admitted hit, thousands here), which the other strategies do not.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod key;
mod manager;
mod options;
mod ring;
mod storage;

pub use options::{
    MemcachedOptions, MemcachedOptionsError, ServerAddr, DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_KEY_PREFIX, DEFAULT_POOL_SIZE, DEFAULT_PORT, MAX_POOL_SIZE,
    SCHEMES,
};
pub use storage::MemcachedStorage;

//! The quickstart's real server, as its own process on a loopback port, under a
//! flood of distinct long paths that match no route: its resident memory must stay
//! put, whatever the paths.
#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The quickstart binary, stopped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the quickstart on a free loopback port; returns it and its address.
fn start() -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_example-quickstart"))
        .env("QUICKSTART_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (server, addr)
}

/// The resident set of process `pid`, in bytes.
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// Sends `GET path` on a keep-alive connection and reads the answer; its status.
fn get(stream: &mut BufReader<TcpStream>, path: &str) -> u16 {
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n");
    stream.get_mut().write_all(request.as_bytes()).unwrap();
    let mut status_line = String::new();
    stream.read_line(&mut status_line).unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut length = 0;
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).unwrap();
    status
}

/// A 30 KB path that no other request sends.
fn path(i: usize) -> String {
    let mut path = format!("/probe/{i}/");
    path.extend(std::iter::repeat_n('a', 30_000 - path.len()));
    path
}

#[test]
fn distinct_long_unmatched_paths_do_not_grow_the_server() {
    let (server, addr) = start();
    let stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut stream = BufReader::new(stream);

    // Warm up: connection buffers, allocator arenas, the routes' own keys.
    for i in 0..100 {
        assert_eq!(get(&mut stream, &path(i)), 404);
    }
    assert_eq!(get(&mut stream, "/fast"), 200);
    let before = resident_bytes(server.0.id());

    for i in 100..2_100 {
        assert_eq!(get(&mut stream, &path(i)), 404, "request {i}");
    }
    let after = resident_bytes(server.0.id());
    let growth = after.saturating_sub(before);
    println!("resident before {before} B, after {after} B, growth {growth} B");
    // 2,000 paths of 30 KB are 60 MB; stored as keys they grew this server by over
    // 100 MB. Nothing of them may stay.
    assert!(
        growth < 4 << 20,
        "2,000 unmatched 30 KB paths grew the server by {growth} bytes"
    );
    // The routes' budgets are untouched by the flood: /fast had one hit of its two.
    let _ = get(&mut stream, "/fast");
    assert_eq!(get(&mut stream, "/fast"), 429);
    assert_eq!(get(&mut stream, "/slow"), 200);
}

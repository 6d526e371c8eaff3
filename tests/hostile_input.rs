//! Hostile HTTP against the real host serving the real component, over raw TCP: more than
//! 10,000 malformed, oversized, injected, pipelined and slow requests. The server stays up,
//! every answer is a precise 4xx (or 200 where the request is in fact valid), no request
//! records a visit (none of them is a plain `GET /`), and nothing appears outside the data dir.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use app_wasm_host::{Limits, RunningServer, ServeConfig};
use support::{client, runtime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What came back on one connection: the status of each response, in order, or "closed"
/// when the server hung up without a word.
async fn exchange(addr: SocketAddr, request: Vec<u8>) -> Vec<String> {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return vec!["connect failed".into()];
    };
    let _ = stream.write_all(&request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    let statuses = statuses(&out);
    if statuses.is_empty() {
        vec!["closed".into()]
    } else {
        statuses
    }
}

/// Status codes of the responses in `raw`: every line that starts with `HTTP/1.`.
fn statuses(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    text.split('\n')
        .filter(|line| line.starts_with("HTTP/1."))
        .filter_map(|line| line.get(9..12).map(str::to_owned))
        .collect()
}

struct Class {
    name: &'static str,
    /// Requests per connection (pipelining sends many).
    per_connection: usize,
    connections: usize,
    make: fn(usize) -> Vec<u8>,
    allowed: &'static [&'static str],
}

const TRAVERSALS: &[&str] = &[
    "/../visits.txt",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/..%2f..%2fetc%2fpasswd",
    "//visits",
    "//etc/passwd",
    "/visits/../visits",
    "/./visits",
    "/%2F",
    "/visits%00",
    "/data/visits.txt",
    "/\\..\\..\\etc\\passwd",
    "/visits?format=../../etc/passwd",
];

const METHODS: &[&str] = &[
    "FOO", "PROPFIND", "TRACE", "OPTIONS", "DELETE", "PUT", "PATCH", "BREW", "M-SEARCH",
];

fn classes() -> Vec<Class> {
    vec![
        Class {
            name: "oversized request line (20 KB URI)",
            per_connection: 1,
            connections: 800,
            make: |_| {
                format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(20_000)).into_bytes()
            },
            allowed: &["414", "431"],
        },
        Class {
            name: "oversized headers (20 KB, or 300 of them)",
            per_connection: 1,
            connections: 800,
            make: |i| {
                let headers = if i % 2 == 0 {
                    format!("X-Big: {}\r\n", "b".repeat(20_000))
                } else {
                    (0..300)
                        .map(|n| format!("X-H{n}: {}\r\n", "c".repeat(60)))
                        .collect()
                };
                format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{headers}\r\n").into_bytes()
            },
            allowed: &["431"],
        },
        Class {
            name: "huge declared body (Content-Length 1 TB)",
            per_connection: 1,
            connections: 800,
            make: |i| {
                let path = ["/", "/visits", "/healthz"][i % 3];
                format!(
                    "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\nxxxx"
                )
                .into_bytes()
            },
            allowed: &["413"],
        },
        Class {
            name: "chunked body on a route that takes none",
            per_connection: 1,
            connections: 800,
            make: |i| {
                let path = ["/", "/visits", "/metrics"][i % 3];
                format!(
                    "POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                     5\r\nhello\r\n{:x}\r\n{}\r\n0\r\n\r\n",
                    30_000,
                    "z".repeat(30_000)
                )
                .into_bytes()
            },
            allowed: &["405"],
        },
        Class {
            name: "invalid UTF-8 and control bytes in the path",
            per_connection: 1,
            connections: 800,
            make: |i| {
                let mut req = b"GET /".to_vec();
                req.extend_from_slice(
                    [&b"\xff\xfe"[..], b"\xc3\x28", b"%ff%fe", b"\x00", b"%00"][i % 5],
                );
                req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                req
            },
            allowed: &["400", "404"],
        },
        Class {
            name: "path traversal, plain and percent-encoded",
            per_connection: 1,
            connections: 800,
            make: |i| {
                format!(
                    "GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    TRAVERSALS[i % TRAVERSALS.len()]
                )
                .into_bytes()
            },
            allowed: &["400", "404"],
        },
        Class {
            name: "CRLF injection (header values, query)",
            per_connection: 1,
            connections: 800,
            make: |i| {
                match i % 3 {
                0 => b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\rSet-Cookie: x\r\n\r\n".to_vec(),
                1 => b"GET /visits?format=%0d%0aSet-Cookie:%20x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
                _ => b"GET /visits\r\nSet-Cookie: x HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            }
            },
            allowed: &["400"],
        },
        Class {
            name: "unknown and unsupported methods",
            per_connection: 1,
            connections: 800,
            make: |i| {
                format!(
                    "{} /visits HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    METHODS[i % METHODS.len()]
                )
                .into_bytes()
            },
            allowed: &["405"],
        },
        Class {
            name: "HTTP/1.0 (no Host, no keep-alive)",
            per_connection: 1,
            connections: 800,
            make: |i| {
                let path = ["/visits", "/healthz", "/metrics", "/nope"][i % 4];
                format!("GET {path} HTTP/1.0\r\n\r\n").into_bytes()
            },
            allowed: &["200", "404"],
        },
        Class {
            name: "HTTP/1.1 without Host (RFC 9112: 400)",
            per_connection: 1,
            connections: 200,
            make: |_| b"GET /visits HTTP/1.1\r\n\r\n".to_vec(),
            allowed: &["400"],
        },
        Class {
            name: "pipelined (20 requests in one write)",
            per_connection: 20,
            connections: 100,
            make: |_| {
                let mut req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".repeat(19);
                req += "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
                req.into_bytes()
            },
            allowed: &["200"],
        },
        Class {
            name: "garbage (TLS hello, binary, bare newlines)",
            per_connection: 1,
            connections: 800,
            make: |i| match i % 3 {
                0 => b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
                1 => (0..512).map(|n| (n * 37 + i) as u8).collect(),
                _ => b"\r\n\r\n\r\n\r\nGET\r\n\r\n".to_vec(),
            },
            allowed: &["400", "closed"],
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_hostile_requests_get_precise_answers_and_record_nothing() {
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut config = ServeConfig::new(&data);
    // Default limits, but a 1 s head timeout so the slow-client round stays short.
    config.limits = Limits {
        head_timeout_secs: 1,
        ..Limits::default()
    };
    let host = RunningServer::start(runtime(), "127.0.0.1:0", config)
        .await
        .unwrap();
    let addr = host.addr;

    let mut sent = 0;
    let mut table: Vec<(String, usize, BTreeMap<String, usize>)> = Vec::new();
    for class in classes() {
        let limit = Arc::new(tokio::sync::Semaphore::new(32));
        let tasks: Vec<_> = (0..class.connections)
            .map(|i| {
                let request = (class.make)(i);
                let limit = limit.clone();
                tokio::spawn(async move {
                    let _slot = limit.acquire_owned().await.unwrap();
                    exchange(addr, request).await
                })
            })
            .collect();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for t in tasks {
            let statuses = t.await.unwrap();
            if class.per_connection > 1 {
                assert_eq!(
                    statuses.len(),
                    class.per_connection,
                    "{}: {statuses:?}",
                    class.name
                );
            }
            for s in statuses {
                *seen.entry(s).or_default() += 1;
            }
        }
        for status in seen.keys() {
            assert!(
                class.allowed.contains(&status.as_str()),
                "{}: got {status}, allowed {:?} (all: {seen:?})",
                class.name,
                class.allowed
            );
        }
        let n = class.connections * class.per_connection;
        sent += n;
        table.push((class.name.to_owned(), n, seen));
    }

    // Slow clients (bounded: 20 connections, 3 s): one header byte every 200 ms. Each is cut
    // off at the head timeout while a normal client is served at once.
    let started = Instant::now();
    let slow: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa";
                let opened = Instant::now();
                for byte in head {
                    if stream.write_all(&[*byte]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if opened.elapsed() > Duration::from_secs(3) {
                        break;
                    }
                }
                let mut out = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut out))
                    .await;
                (opened.elapsed(), statuses(&out))
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = client()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "served beside the slow clients");
    let mut slow_seen: BTreeMap<String, usize> = BTreeMap::new();
    for s in slow {
        let (held, statuses) = s.await.unwrap();
        assert!(
            held < Duration::from_secs(4),
            "a slow client held a connection {held:?}"
        );
        let status = statuses.first().cloned().unwrap_or_else(|| "closed".into());
        assert!(
            ["408", "closed"].contains(&status.as_str()),
            "slow client got {status}"
        );
        *slow_seen.entry(status).or_default() += 1;
    }
    sent += 20;
    table.push(("slow client (1 byte / 200 ms)".into(), 20, slow_seen));
    println!("slow-client round took {:?}", started.elapsed());

    println!("{:<48} {:>6}  statuses", "class", "sent");
    for (name, n, seen) in &table {
        println!("{name:<48} {n:>6}  {seen:?}");
    }
    println!("{sent} hostile requests in total");
    assert!(sent >= 10_000);

    // Still up, still exact: no visit recorded, nothing outside the data dir.
    let resp = client()
        .get(format!("http://{addr}/visits"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["visits"], 0, "no hostile request may record a visit");
    let outside: Vec<_> = std::fs::read_dir(parent.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, ["data"], "files appeared beside the data dir");
    let inside: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(inside.iter().all(|n| n == "visits.txt"), "{inside:?}");
    host.stop().await.unwrap();
}

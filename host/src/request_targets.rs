//! What hyper does not keep: the request-target as the client sent it. The `http` crate drops
//! a fragment (`/#x` becomes `/`) while parsing, but RFC 9112 3.2 allows none in a request, so
//! the host watches the bytes each connection reads and notes, per request in order, whether
//! its target had one. `TargetScanner` is the pure part (tested natively); `WatchedIo` feeds it
//! from a connection.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// One request head as it arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeenTarget {
    /// The request-target contained `#`.
    pub fragment: bool,
    /// The scanner can find the next request on this connection. False after a chunked or
    /// otherwise unframed body: the response then closes the connection, so no later request
    /// goes unwatched.
    pub next_is_watched: bool,
}

enum State {
    /// Bytes of the head being received.
    Head(Vec<u8>),
    /// Bytes left of a `Content-Length` body.
    Body(u64),
    /// Framing unknown: nothing more is noted on this connection.
    Lost,
}

/// Follows HTTP/1.1 framing over the bytes a connection reads, as hyper does.
pub struct TargetScanner {
    state: State,
    max_head: usize,
    seen: VecDeque<SeenTarget>,
}

/// hyper's default limit on header fields.
const MAX_HEADERS: usize = 100;

impl TargetScanner {
    /// `max_head`: past this many bytes without a complete head hyper refuses the request
    /// (431) and closes; the scanner stops there too.
    pub fn new(max_head: usize) -> Self {
        TargetScanner {
            state: State::Head(Vec::new()),
            max_head,
            seen: VecDeque::new(),
        }
    }

    /// The oldest request head not yet taken; `None` when the scanner lost the framing.
    pub fn take(&mut self) -> Option<SeenTarget> {
        self.seen.pop_front()
    }

    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Lost => return,
                State::Body(left) => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    bytes = &bytes[n as usize..];
                    if *left == 0 {
                        self.state = State::Head(Vec::new());
                    }
                }
                State::Head(head) => {
                    if head.is_empty() {
                        // Blank lines before a request line are skipped (RFC 9112 2.2), as
                        // httparse does; after that the first blank line ends the head.
                        let blank = bytes.iter().take_while(|b| b"\r\n".contains(b)).count();
                        bytes = &bytes[blank..];
                    }
                    let Some(end) = head_end(head, bytes) else {
                        head.extend_from_slice(bytes);
                        bytes = &[];
                        if head.len() > self.max_head {
                            // hyper refuses it (431) and closes the connection.
                            self.state = State::Lost;
                        }
                        continue;
                    };
                    head.extend_from_slice(&bytes[..end]);
                    bytes = &bytes[end..];
                    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let mut req = httparse::Request::new(&mut fields);
                    self.state = match req.parse(head) {
                        Ok(httparse::Status::Complete(_)) => {
                            let (seen, next) = framing(&req);
                            self.seen.push_back(seen);
                            next
                        }
                        // hyper answers 400 and closes the connection.
                        _ => State::Lost,
                    };
                }
            }
        }
    }
}

/// Where in `new` the head that `head` began ends: just past its first blank line (a bare
/// LF counts, as in httparse and hyper).
fn head_end(head: &[u8], new: &[u8]) -> Option<usize> {
    let mut last = [0u8; 2];
    for (i, &b) in head.iter().rev().take(2).enumerate() {
        last[1 - i] = b;
    }
    for (i, &b) in new.iter().enumerate() {
        if b == b'\n' && (last[1] == b'\n' || last == *b"\n\r") {
            return Some(i + 1);
        }
        last = [last[1], b];
    }
    None
}

/// What a parsed head says about its target and about where the next request starts.
fn framing(req: &httparse::Request) -> (SeenTarget, State) {
    let fragment = req.path.is_some_and(|p| p.contains('#'));
    let mut length = None;
    let mut unframed = req.method == Some("CONNECT");
    for field in req.headers.iter() {
        if field.name.eq_ignore_ascii_case("transfer-encoding") {
            unframed = true;
        } else if field.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(field.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                _ => unframed = true,
            }
        }
    }
    let next = match length {
        _ if unframed => State::Lost,
        Some(n) if n > 0 => State::Body(n),
        _ => State::Head(Vec::new()),
    };
    let seen = SeenTarget {
        fragment,
        next_is_watched: !unframed,
    };
    (seen, next)
}

/// A connection whose reads also feed a `TargetScanner` the server's service reads from.
pub struct WatchedIo<S> {
    inner: S,
    scanner: Arc<Mutex<TargetScanner>>,
}

impl<S> WatchedIo<S> {
    pub fn new(inner: S, scanner: Arc<Mutex<TargetScanner>>) -> Self {
        WatchedIo { inner, scanner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WatchedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                self.scanner.lock().expect("scanner lock").feed(new);
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WatchedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&[u8]]) -> Vec<Option<SeenTarget>> {
        let mut scanner = TargetScanner::new(8192);
        for chunk in chunks {
            scanner.feed(chunk);
        }
        let mut seen = Vec::new();
        while let Some(s) = scanner.take() {
            seen.push(Some(s));
        }
        seen
    }

    const PLAIN: SeenTarget = SeenTarget {
        fragment: false,
        next_is_watched: true,
    };
    const FRAGMENT: SeenTarget = SeenTarget {
        fragment: true,
        next_is_watched: true,
    };

    #[test]
    fn a_fragment_is_noted_for_its_own_request_only() {
        let seen =
            scan(&[b"GET /#x HTTP/1.1\r\nHost: a\r\n\r\nGET /visits HTTP/1.1\r\nHost: a\r\n\r\n"]);
        assert_eq!(seen, vec![Some(FRAGMENT), Some(PLAIN)]);
    }

    #[test]
    fn heads_split_anywhere_are_found_whole() {
        let wire: &[u8] = b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\nHost: a\n\n";
        for cut in 1..wire.len() {
            let seen = scan(&[&wire[..cut], &wire[cut..]]);
            assert_eq!(seen, vec![Some(FRAGMENT), Some(PLAIN)], "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(scan(&bytes), vec![Some(FRAGMENT), Some(PLAIN)]);
    }

    #[test]
    fn a_body_is_skipped_even_when_it_looks_like_a_request() {
        let body = b"GET /#inside HTTP/1.1\r\n\r\n";
        let wire = [
            format!(
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes(),
            body.to_vec(),
            b"GET /#next HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        ]
        .concat();
        for cut in [1, 20, 60, wire.len() - 5] {
            let seen = scan(&[&wire[..cut], &wire[cut..]]);
            assert_eq!(seen, vec![Some(PLAIN), Some(FRAGMENT)], "cut at {cut}");
        }
    }

    #[test]
    fn unknown_framing_stops_watching_and_says_so() {
        let chunked = scan(&[b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nGET /\r\n0\r\n\r\nGET /#x HTTP/1.1\r\n\r\n"]);
        assert_eq!(
            chunked,
            vec![Some(SeenTarget {
                fragment: false,
                next_is_watched: false
            })]
        );
        let conflicting =
            scan(&[b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"]);
        assert!(!conflicting[0].unwrap().next_is_watched);
        assert!(scan(&[b"\x00garbage\r\n\r\nGET / HTTP/1.1\r\n\r\n"]).is_empty());
    }

    #[test]
    fn leading_blank_lines_and_oversized_heads() {
        assert_eq!(
            scan(&[b"\r\n\r\nGET /#x HTTP/1.1\r\n\r\n"]),
            vec![Some(FRAGMENT)]
        );
        let mut scanner = TargetScanner::new(64);
        scanner.feed(&[b'a'; 100]);
        scanner.feed(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n");
        assert_eq!(
            scanner.take(),
            None,
            "past the head limit hyper closes the connection"
        );
    }
}

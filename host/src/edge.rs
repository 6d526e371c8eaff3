//! What a request must look like before the host lets it reach a component or a replica:
//! pure checks, tested natively.

/// RFC 9112 3.2: a request with no Host, more than one, or one that is not a valid
/// `uri-host [":" port]` gets 400. `values` are the raw Host header values.
pub fn check_host<'v>(values: impl IntoIterator<Item = &'v [u8]>) -> Result<(), String> {
    let mut values = values.into_iter();
    let Some(value) = values.next() else {
        return Err("missing Host header".into());
    };
    if values.next().is_some() {
        return Err("more than one Host header".into());
    }
    valid_authority(value).map_err(|why| format!("invalid Host header: {why}"))
}

/// RFC 9112 3.2: a request-target has no fragment (clients strip it; hyper would, silently).
pub const FRAGMENT: &str = "the request target has a fragment ('#...'): HTTP requests carry none";

/// The rules every server here applies at the edge, a replica and the front alike; `Some(why)`
/// means 400. The target had no fragment (`request_targets`). An HTTP/1.1 request needs
/// exactly one valid Host (`check_host`); HTTP/1.0 may omit it, but a Host it does send must
/// be valid.
pub fn request_error<B>(req: &hyper::Request<B>) -> Option<String> {
    if req
        .extensions()
        .get::<crate::request_targets::SeenTarget>()
        .is_some_and(|seen| seen.fragment)
    {
        // Checked here so the replica and the front refuse it alike.
        return Some(FRAGMENT.into());
    }
    let hosts = req.headers().get_all(hyper::header::HOST);
    if req.version() == hyper::Version::HTTP_10 && hosts.iter().next().is_none() {
        return None;
    }
    check_host(hosts.iter().map(|v| v.as_bytes())).err()
}

/// `uri-host [":" port]` (RFC 3986 3.2.2-3.2.3), with no userinfo (RFC 9110 4.2.1).
fn valid_authority(value: &[u8]) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("empty");
    }
    if !value.is_ascii() {
        return Err("not ASCII");
    }
    let (host, port) = if value.starts_with(b"[") {
        let end = value
            .iter()
            .position(|&b| b == b']')
            .ok_or("unclosed IP literal")?;
        let literal = &value[1..end];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|b| b.is_ascii_hexdigit() || b":.".contains(b))
        {
            return Err("not an IP literal");
        }
        match &value[end + 1..] {
            [] => (&value[..=end], None),
            [b':', port @ ..] => (&value[..=end], Some(port)),
            _ => return Err("bytes after the IP literal"),
        }
    } else {
        match value.iter().rposition(|&b| b == b':') {
            Some(i) => (&value[..i], Some(&value[i + 1..])),
            None => (value, None),
        }
    };
    if !host.starts_with(b"[") && !reg_name(host) {
        return Err("not a host name");
    }
    if let Some(port) = port {
        // An empty port is allowed by RFC 3986; a port is at most 65535.
        if !port.iter().all(u8::is_ascii_digit) || port.len() > 5 {
            return Err("not a port number");
        }
        if !port.is_empty()
            && std::str::from_utf8(port)
                .ok()
                .and_then(|p| p.parse::<u16>().ok())
                .is_none()
        {
            return Err("port out of range");
        }
    }
    Ok(())
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )`, non-empty here.
fn reg_name(host: &[u8]) -> bool {
    let mut i = 0;
    while i < host.len() {
        match host[i] {
            b'%' => {
                let hex = |j: usize| host.get(j).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return false;
                }
                i += 3;
                continue;
            }
            b if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) => {}
            _ => return false,
        }
        i += 1;
    }
    !host.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(v: &str) -> Result<(), String> {
        check_host([v.as_bytes()])
    }

    #[test]
    fn ordinary_hosts_pass() {
        for ok in [
            "localhost",
            "127.0.0.1:8080",
            "app-wasm-0.app-wasm-headless.default.svc:8080",
            "[::1]:8080",
            "[::1]",
            "example.com:",
            "xn--e1afmkfd.example",
            "a%20b",
        ] {
            assert_eq!(one(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn malformed_hosts_are_refused() {
        for bad in [
            "",
            "a b",
            "user@evil",
            "x:99999",
            "a/b",
            "\u{ff}",
            "привет",
            "[::1",
            "[zz]",
            "[::1]x",
            "x:8o",
            "a%2",
            "a?b",
            "a#b",
        ] {
            assert!(one(bad).is_err(), "{bad:?} passed");
        }
        assert!(check_host([b"\xff".as_slice()]).is_err());
    }

    #[test]
    fn none_or_two_hosts_are_refused() {
        assert_eq!(check_host([]), Err("missing Host header".into()));
        assert_eq!(
            check_host([b"a".as_slice(), b"a".as_slice()]),
            Err("more than one Host header".into())
        );
    }
}

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

/// Why the host answers a request itself instead of passing it on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 400: the head breaks RFC 9112 (its Host).
    BadRequest(String),
    /// 421 (RFC 9110 15.5.20): an absolute-form target names an origin this server is not.
    Misdirected(String),
}

impl Refusal {
    pub fn status(&self) -> hyper::StatusCode {
        match self {
            Refusal::BadRequest(_) => hyper::StatusCode::BAD_REQUEST,
            Refusal::Misdirected(_) => hyper::StatusCode::MISDIRECTED_REQUEST,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Refusal::BadRequest(why) | Refusal::Misdirected(why) => why,
        }
    }
}

/// The rules every server here applies at the edge, a replica and the front alike. An
/// HTTP/1.1 request needs exactly one valid Host (`check_host`); HTTP/1.0 may omit it, but a
/// Host it does send must be valid. An absolute-form target (`GET http://x/`, as sent to a
/// proxy) must name the origin its Host names, over http: this is no proxy (RFC 9110 7.4).
/// A fragment never reaches here: hyper drops it, as every mainstream server does.
pub fn refusal<B>(req: &hyper::Request<B>) -> Option<Refusal> {
    let hosts = req.headers().get_all(hyper::header::HOST);
    let host = hosts.iter().next();
    if !(req.version() == hyper::Version::HTTP_10 && host.is_none()) {
        let checked = check_host(hosts.iter().map(|v| v.as_bytes()));
        if let Err(why) = checked {
            return Some(Refusal::BadRequest(why));
        }
    }
    let uri = req.uri();
    let scheme = uri.scheme()?;
    let named = uri.authority().map_or("", |a| a.as_str());
    if *scheme != http::uri::Scheme::HTTP {
        return Some(Refusal::Misdirected(format!(
            "the request target asks for {scheme}://{named}; this server speaks plain http only"
        )));
    }
    let same = match (uri.authority(), host) {
        (Some(target), Some(host)) => same_authority(target, host.as_bytes()),
        // HTTP/1.0 without Host: the target is the only name the client gave.
        (Some(_), None) => true,
        (None, _) => false,
    };
    (!same).then(|| {
        Refusal::Misdirected(format!(
            "the request target names {named}, not this server's Host; this is no proxy"
        ))
    })
}

/// The same origin (RFC 9110 4.3.1 for http): host names compare without case, and no port
/// means 80.
fn same_authority(target: &http::uri::Authority, host: &[u8]) -> bool {
    let Ok(host) = http::uri::Authority::try_from(host) else {
        return false;
    };
    target.host().eq_ignore_ascii_case(host.host())
        && target.port_u16().unwrap_or(80) == host.port_u16().unwrap_or(80)
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

    fn refusal_of(target: &str, host: Option<&str>) -> Option<hyper::StatusCode> {
        let mut req = hyper::Request::get(target);
        if let Some(host) = host {
            req = req.header("host", host);
        }
        refusal(&req.body(()).unwrap()).map(|r| r.status())
    }

    #[test]
    fn an_absolute_target_must_name_this_origin_over_http() {
        let misdirected = Some(hyper::StatusCode::MISDIRECTED_REQUEST);
        assert_eq!(refusal_of("/", Some("a")), None);
        assert_eq!(refusal_of("http://a/", Some("a")), None);
        assert_eq!(refusal_of("http://A:80/x", Some("a")), None);
        assert_eq!(refusal_of("http://[::1]:8080/", Some("[::1]:8080")), None);
        assert_eq!(
            refusal_of("http://elsewhere.example/", Some("a")),
            misdirected
        );
        assert_eq!(refusal_of("http://a:8080/", Some("a")), misdirected);
        assert_eq!(refusal_of("https://a/", Some("a")), misdirected);
        assert_eq!(
            refusal_of("https://elsewhere.example/", Some("elsewhere.example")),
            misdirected
        );
        assert_eq!(
            refusal_of("http://a/", None),
            Some(hyper::StatusCode::BAD_REQUEST),
            "HTTP/1.1 still needs its Host"
        );
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

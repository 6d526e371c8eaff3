//! Which replica is serving: the pod name in Kubernetes (`app-wasm-0`, ...), the replica name
//! under the local runner. It reaches the component as an environment value and goes out on
//! every response (`X-Replica`) so a client behind a load balancer sees who answered.

/// The longest name Kubernetes gives a pod (a DNS subdomain).
const MAX_LEN: usize = 253;

/// `raw` if it is a usable name: a DNS subdomain's characters only, so it is always a valid
/// header value and needs no escaping in HTML or JSON. Anything else is ignored, not echoed.
pub fn name_from(raw: Option<&str>) -> Option<String> {
    let name = raw?.trim();
    let valid = !name.is_empty()
        && name.len() <= MAX_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    valid.then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::name_from;

    #[test]
    fn pod_names_pass_and_anything_else_is_dropped() {
        assert_eq!(name_from(Some("app-wasm-2")).as_deref(), Some("app-wasm-2"));
        assert_eq!(
            name_from(Some(" host.local\n")).as_deref(),
            Some("host.local")
        );
        for bad in ["", "  ", "a b", "x\r\nSet-Cookie: y", "<script>", "é"] {
            assert_eq!(name_from(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(name_from(Some(&"a".repeat(254))), None);
        assert_eq!(name_from(None), None);
    }
}

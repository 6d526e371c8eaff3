//! `GET /` answers `hello` and does nothing else: what serving costs with no work in the
//! component. Two more routes misbehave on purpose, for the host's limit tests:
//! `/spin` never returns (the per-request deadline must stop it) and `/grow` allocates until
//! memory runs out (the per-request memory limit must stop it).

#[cfg(target_arch = "wasm32")]
mod entry {
    use futures::SinkExt;
    use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};
    use spin_sdk::http_component;

    #[http_component]
    async fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let path = req.path_with_query().unwrap_or_default();
        let body: &[u8] = match path.as_str() {
            "/spin" => spin(),
            "/grow" => grow(),
            _ => b"hello\n",
        };
        let headers = Fields::from_list(&[
            ("content-type".to_owned(), b"text/plain".to_vec()),
            (
                "content-length".to_owned(),
                body.len().to_string().into_bytes(),
            ),
        ])
        .expect("static headers are valid");
        let response = OutgoingResponse::new(headers);
        let mut sink = response.take_body();
        out.set(response);
        let _ = sink.send(body.to_vec()).await;
    }

    fn spin() -> &'static [u8] {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }

    fn grow() -> &'static [u8] {
        let mut kept: Vec<Vec<u8>> = Vec::new();
        loop {
            kept.push(vec![1; 1 << 20]);
            std::hint::black_box(&kept);
        }
    }
}

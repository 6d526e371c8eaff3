//! Generates the CRI v1 client from proto/api.proto (k8s.io/cri-api, runtime/v1), with the
//! protoc that protoc-bin-vendored ships, so no system protobuf compiler is needed.
fn main() {
    let protoc = protoc_bin_vendored::protoc_bin_path()
        .expect("protoc-bin-vendored has no protoc for this host");
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC from the environment.
    unsafe { std::env::set_var("PROTOC", protoc) };
    tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&["proto/api.proto"], &["proto"])
        .expect("compiling proto/api.proto");
}

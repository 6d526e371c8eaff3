//! The component can reach nothing but its own directory: no network interfaces among its
//! imports, no outbound hosts in either Spin manifest.

mod support;

use app_wasm_host::component_imports;
use support::{component, image_dir, repo_root, runtime};

const NETWORK: &[&str] = &[
    "wasi:sockets/",
    "wasi:http/outgoing-handler",
    "fermyon:spin/http",
];

fn assert_no_network(imports: &[String]) {
    for import in imports {
        assert!(
            !NETWORK.iter().any(|n| import.starts_with(n)),
            "the component gained a network import: {import}"
        );
    }
}

#[test]
fn default_flavour_imports_only_wasi_and_no_network() {
    let imports = runtime().imports();
    println!(
        "{} ({} bytes) imports:",
        component().display(),
        component().metadata().unwrap().len()
    );
    for import in &imports {
        println!("  {import}");
    }
    assert!(
        imports.iter().all(|i| i.starts_with("wasi:")),
        "{imports:?}"
    );
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("wasi:filesystem/preopens")),
        "{imports:?}"
    );
    assert_no_network(&imports);
}

#[test]
fn sqlite_flavour_adds_only_spins_stores_and_variables() {
    let wasm = image_dir().join("app_wasm.wasm");
    let imports = component_imports(&wasm).unwrap();
    let non_wasi: Vec<_> = imports.iter().filter(|i| !i.starts_with("wasi:")).collect();
    // SQLite to read the visits; variables for the pod name (X-Replica), which Spin passes to
    // components as the variable `replica`, not as environment.
    assert_eq!(
        non_wasi,
        ["fermyon:spin/sqlite@2.0.0", "fermyon:spin/variables@2.0.0"]
    );
    // The visits are written through Spin's key-value store, a `wasi:` interface.
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("wasi:keyvalue/store@")),
        "{imports:?}"
    );
    // It keeps visits through Spin's stores only: no file system access at all.
    assert!(
        !imports.iter().any(|i| i.starts_with("wasi:filesystem/")),
        "{imports:?}"
    );
    assert_no_network(&imports);
}

#[test]
fn spin_manifests_allow_no_outbound_hosts() {
    for manifest in ["spin.toml", "k8s/image/spin.toml"] {
        let text = std::fs::read_to_string(repo_root().join(manifest)).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("allowed_outbound_hosts"))
            .collect();
        assert_eq!(lines, ["allowed_outbound_hosts = []"], "{manifest}");
    }
}

//! Which outside tools the integration tests can use here, decided when they are built: a test
//! whose tool is missing is then reported as ignored, with the reason, instead of passing
//! without running (libtest cannot ignore a test at run time). With `CI` set nothing is
//! ignored: a missing tool fails its test there. Reruns when PATH, SPIN_BIN, KUBECTL or CI
//! change; after installing a tool elsewhere, `touch build.rs`.

use std::path::{Path, PathBuf};

fn on_path(name: &str) -> bool {
    let path = Path::new(name);
    if path.components().count() > 1 {
        return path.is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    })
}

fn main() {
    for var in ["PATH", "SPIN_BIN", "KUBECTL", "CI"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let spin = std::env::var("SPIN_BIN")
        .map_or_else(|_| manifest.join("../shared/bin/spin"), PathBuf::from);
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let cri = [
        "containerd",
        "ctr",
        "buildah",
        "cc",
        "containerd-shim-spin-v2",
    ];
    let missing = [
        ("no_spin", !spin.is_file()),
        ("no_wasmtime", !on_path("wasmtime")),
        ("no_kubectl", !on_path(&kubectl)),
        ("no_cri_node", !cri.iter().all(|tool| on_path(tool))),
        ("not_root", !is_root()),
        // Debian's promtool at its fixed path (no PATH probe for it).
        ("no_promtool", !Path::new("/usr/bin/promtool").is_file()),
        // Mounting a FUSE file system by hand (the power-cut tier) needs root and /dev/fuse.
        (
            "no_fuse_mount",
            !(is_root() && Path::new("/dev/fuse").exists()),
        ),
    ];
    let in_ci = std::env::var_os("CI").is_some();
    for (cfg, absent) in missing {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if absent && !in_ci {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}

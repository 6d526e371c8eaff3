//! Which outside facilities the runner-binary tests can use here, decided when they are built
//! (as the root package's build.rs does for its tools): a test that needs one that is missing is
//! reported as ignored, with the reason. With `CI` set nothing is ignored: it fails there.

fn main() {
    println!("cargo::rerun-if-env-changed=CI");
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    });
    // Mounting a FUSE file system by hand needs root and the kernel's /dev/fuse.
    let fuse = root && std::path::Path::new("/dev/fuse").exists();
    // Attaching strace to the runner: Debian's strace (a fixed path, so no PATH probe that
    // would rebuild this package), and root (Debian's yama scope lets only root trace a
    // process that is not its child).
    let strace = root && std::path::Path::new("/usr/bin/strace").is_file();
    // A real Prometheus scraping the runner: Debian's package, at fixed paths like strace.
    let prometheus = ["/usr/bin/prometheus", "/usr/bin/promtool"]
        .iter()
        .all(|tool| std::path::Path::new(tool).is_file());
    // The pages in a real browser: Debian's Chromium, at its fixed path.
    let chromium = std::path::Path::new("/usr/bin/chromium").is_file();
    for (cfg, missing) in [
        ("no_fuse_mount", !fuse),
        ("no_strace", !strace),
        ("no_prometheus", !prometheus),
        ("no_chromium", !chromium),
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if missing && std::env::var_os("CI").is_none() {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}

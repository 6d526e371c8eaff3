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
    println!("cargo::rustc-check-cfg=cfg(no_fuse_mount)");
    if !fuse && std::env::var_os("CI").is_none() {
        println!("cargo::rustc-cfg=no_fuse_mount");
    }
}

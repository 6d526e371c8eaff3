//! Shared by every integration test: the real component (built once per test binary), the
//! real host on a free loopback port, and processes of other runtimes (wasmtime, Spin).
#![allow(dead_code)] // each test binary uses its own part of this module

pub mod contract;
pub mod k8s;
pub mod otlp;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use app_wasm_host::{RunningServer, Runtime, ServeConfig};

/// The log's record width, as the component defines it.
pub const RECORD_LEN: usize = app_wasm::record::RECORD_LEN as usize;

/// The workspace root (this module is compiled into the root package's tests and the host's).
pub fn repo_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .find(|dir| dir.join("spin.toml").is_file())
            .expect("spin.toml above CARGO_MANIFEST_DIR")
            .to_owned()
    })
}

/// `cargo build --release ARGS` in the repo (the build lock makes concurrent test binaries
/// wait for each other), then the artifact at `artifact` under the repo root.
pub fn cargo_build(args: &[&str], artifact: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .arg("build")
        .arg("--release")
        .args(args)
        .current_dir(repo_root())
        .status()
        .expect("running cargo");
    assert!(status.success(), "cargo build --release {args:?} failed");
    let path = repo_root().join(artifact);
    assert!(path.is_file(), "{} missing after build", path.display());
    path
}

/// The release component, built once per test binary with the same command as the README.
pub fn component() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        cargo_build(
            &["--target", "wasm32-wasip2", "-p", "app-wasm"],
            "target/wasm32-wasip2/release/app_wasm.wasm",
        )
    })
}

/// `bench/hello`: the smallest wasi:http component (the runtime's ceiling; `/spin` and
/// `/grow` misbehave on purpose), built once per test binary.
pub fn hello_component() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        cargo_build(
            &["--target", "wasm32-wasip2", "-p", "app-wasm-hello"],
            "target/wasm32-wasip2/release/app_wasm_hello.wasm",
        )
    })
}

/// The Kubernetes flavour staged as the image holds it (`spin.toml` + `app_wasm.wasm`), by the
/// real recipe `k8s/image/build.sh`, once per test binary.
pub fn image_dir() -> &'static Path {
    static STAGED: OnceLock<PathBuf> = OnceLock::new();
    STAGED.get_or_init(|| {
        let status = Command::new(repo_root().join("k8s/image/build.sh"))
            .status()
            .expect("running k8s/image/build.sh");
        assert!(status.success(), "k8s/image/build.sh failed");
        repo_root().join("target/image")
    })
}

pub fn spin_cli() -> PathBuf {
    std::env::var_os("SPIN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/bin/spin"))
}

/// The component compiled by wasmtime once per test binary.
pub fn runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| Arc::new(Runtime::load(component()).expect("loading component")))
        .clone()
}

/// Our host serving the component on a free loopback port, with `dir` as `/data`.
pub async fn start_host(dir: &Path) -> RunningServer {
    RunningServer::start(runtime(), "127.0.0.1:0", ServeConfig::new(dir))
        .await
        .expect("starting host")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// `n` concurrent `GET {base}/`, each asserted 200: the Moscow timestamps acknowledged.
pub async fn concurrent_visits(base: &str, n: usize) -> Vec<String> {
    let http = client();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (http, url) = (http.clone(), format!("{base}/"));
            tokio::spawn(async move {
                let resp = http.get(url).send().await.unwrap();
                let status = resp.status();
                let text = resp.text().await.unwrap();
                assert_eq!(status, reqwest::StatusCode::OK, "{text}");
                let body: serde_json::Value = serde_json::from_str(&text).unwrap();
                body["moscow_time"].as_str().unwrap().to_owned()
            })
        })
        .collect();
    let mut acknowledged = Vec::with_capacity(n);
    for task in tasks {
        acknowledged.push(task.await.unwrap());
    }
    acknowledged
}

/// `clients` concurrent clients, each visiting `{base}/` up to `per_client` times and
/// stopping at its first failure (the server went away or refused): every timestamp a client
/// was told was recorded.
pub async fn visit_until_gone(base: String, clients: usize, per_client: usize) -> Vec<String> {
    let http = client();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (http, url) = (http.clone(), format!("{base}/"));
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for _ in 0..per_client {
                    let Ok(resp) = http.get(&url).send().await else {
                        break;
                    };
                    if resp.status() != reqwest::StatusCode::OK {
                        break;
                    }
                    let Ok(body) = resp.json::<serde_json::Value>().await else {
                        break;
                    };
                    acknowledged.push(body["moscow_time"].as_str().unwrap().to_owned());
                }
                acknowledged
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Sequential `GET {base}/` until the first answer that is not 200 (at most `bound` visits):
/// the timestamps acknowledged before it, and the error message of that answer, which must
/// have `status`.
pub async fn visit_until_refused(
    base: &str,
    bound: usize,
    status: reqwest::StatusCode,
) -> (Vec<String>, String) {
    let http = client();
    let mut acknowledged = Vec::new();
    loop {
        assert!(
            acknowledged.len() < bound,
            "still accepting after {bound} visits"
        );
        let resp = http.get(format!("{base}/")).send().await.unwrap();
        if resp.status() != reqwest::StatusCode::OK {
            let message = contract::assert_error(resp, status).await;
            return (acknowledged, message);
        }
        let body: serde_json::Value = resp.json().await.unwrap();
        acknowledged.push(body["moscow_time"].as_str().unwrap().to_owned());
    }
}

/// This replica's count, from `GET {base}/visits`.
pub async fn visit_count(base: &str) -> u64 {
    let body: serde_json::Value = client()
        .get(format!("{base}/visits"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["visits"].as_u64().unwrap()
}

/// Every line of a visits log, asserting each is one well-formed fixed-width record.
pub fn read_records(log: &Path) -> Vec<String> {
    let bytes = std::fs::read(log).unwrap_or_default();
    assert_eq!(
        bytes.len() % RECORD_LEN,
        0,
        "torn or merged bytes in {}",
        log.display()
    );
    bytes
        .chunks(RECORD_LEN)
        .map(|rec| {
            let text = std::str::from_utf8(rec).expect("record is UTF-8");
            let ts = text.strip_suffix('\n').expect("record ends with newline");
            chrono::DateTime::parse_from_rfc3339(ts).expect("record is RFC 3339");
            assert!(ts.ends_with("+03:00"), "record not in Moscow time: {ts}");
            ts.to_owned()
        })
        .collect()
}

/// Every visit in a Spin SQLite store, oldest first, asserting each is a well-formed record
/// and that the rowids are dense (the count the component reports is `max(rowid)`).
pub fn sqlite_records(db: &Path) -> Vec<String> {
    use app_wasm::sqlite_log::KV_TABLE;
    if !db.exists() {
        return Vec::new();
    }
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("opening the SQLite store read-only");
    let sql = format!("SELECT rowid, key, CAST(value AS TEXT) FROM {KV_TABLE} ORDER BY rowid");
    let mut stmt = match conn.prepare(&sql) {
        Ok(stmt) => stmt,
        Err(e) if e.to_string().contains("no such table") => return Vec::new(),
        Err(e) => panic!("reading visits: {e}"),
    };
    let rows = stmt
        .query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .unwrap();
    rows.enumerate()
        .map(|(i, row)| {
            let (rowid, key, at) = row.unwrap();
            assert_eq!(rowid, i as i64 + 1, "rowids must be dense");
            assert!(
                key.starts_with(&format!("visit/{at}/")),
                "key {key} for {at}"
            );
            assert_eq!(at.len() + 1, RECORD_LEN, "record width: {at}");
            chrono::DateTime::parse_from_rfc3339(&at).expect("record is RFC 3339");
            at
        })
        .collect()
}

/// The load-balancing front over `backends`, round-robin, on a free loopback port.
pub async fn serve_front(backends: Vec<app_wasm_host::front::Backend>) -> std::net::SocketAddr {
    use app_wasm_host::front::{Balance, Front};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let front = Arc::new(Front::new(backends, Balance::RoundRobin));
    let limits = app_wasm_host::Limits::default().conn();
    tokio::spawn(async move {
        app_wasm_host::server::serve(front, listener, &limits, std::future::pending()).await
    });
    addr
}

/// `promtool check metrics` (Debian's) on `text`: its verdict and what it printed.
pub fn promtool_check(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("/usr/bin/promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

/// A free loopback port for a runtime we start as a child process.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A runtime we did not write, run as a child process in its own process group; the whole
/// group is killed when dropped (`spin up` forks a `spin trigger http` that would outlive it).
pub struct ChildServer {
    pub child: Child,
    pub base: String,
}

impl ChildServer {
    /// Spawns `cmd` and waits until `port` accepts connections.
    pub fn spawn(mut cmd: Command, port: u16) -> ChildServer {
        use std::os::unix::process::CommandExt;
        let child = cmd
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let mut server = ChildServer {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("{cmd:?} exited before listening: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "{cmd:?} did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl ChildServer {
    /// SIGKILL to the whole process group: a crash, not a graceful stop.
    pub fn kill(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A tool that must exist in CI but may be absent on a developer's laptop: in CI its absence
/// fails the test; elsewhere the test is skipped with a message saying how to get it.
pub fn tool_or_skip(path: &Path, how_to_get: &str) -> bool {
    if path.is_file() || which(path).is_some() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is required in CI ({how_to_get})",
        path.display()
    );
    eprintln!("SKIPPED: {} not found; {how_to_get}", path.display());
    false
}

pub fn which(name: &Path) -> Option<PathBuf> {
    if name.components().count() > 1 {
        return name.is_file().then(|| name.to_owned());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// A tmpfs mounted on a fresh temp dir, unmounted when dropped.
pub struct Tmpfs {
    mount_point: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (and a message) where mounting is not allowed, except in CI where it must work.
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let parent = tempfile::tempdir().unwrap();
        let mount_point = parent.path().join("volume");
        std::fs::create_dir(&mount_point).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount_point)
            .output()
            .expect("running mount");
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must be able to mount tmpfs: {why}"
            );
            eprintln!("SKIPPED: cannot mount tmpfs (needs root): {why}");
            return None;
        }
        Some(Tmpfs {
            mount_point,
            _parent: parent,
        })
    }

    pub fn remount(&self, options: &str) {
        assert!(self.try_remount(options), "remount {options}");
    }

    /// Remounts `ro` only succeed while no file is open for writing: under load, retry
    /// for up to 5 s.
    pub fn remount_under_load(&self, options: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.try_remount(options) {
            assert!(Instant::now() < deadline, "remount {options} kept failing");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn try_remount(&self, options: &str) -> bool {
        Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.mount_point)
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    pub fn path(&self) -> &Path {
        &self.mount_point
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a killed server's last process may still be closing its files; the kernel
        // frees the tmpfs when it has.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount_point)
            .status();
    }
}

/// A `kubectl` that stands in for the API server only, so `k8s/show.sh` can run without a
/// cluster: pods `app-wasm-0..N` are replicas on loopback `ports`, and
/// `get --raw .../pods/POD:PORT/proxy/PATH` is forwarded to that replica over HTTP.
/// `NO_PODS=1` lists none; `POD2_READY=False` marks app-wasm-2 not ready.
pub struct StandInApiServer {
    dir: tempfile::TempDir,
}

impl StandInApiServer {
    pub fn new(ports: &[u16]) -> StandInApiServer {
        let dir = tempfile::tempdir().unwrap();
        let pods: String = (0..ports.len())
            .map(|i| {
                let ready = if i == 2 {
                    "${POD2_READY:-True}"
                } else {
                    "True"
                };
                format!("app-wasm-{i} {ready}\\n")
            })
            .collect();
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        let script = format!(
            r#"#!/usr/bin/env bash
ports=({ports})
case "$1 $2" in
  "config view") printf default ;;
  "get pods") [ -n "$NO_PODS" ] || printf "{pods}" ;;
  "get pod") printf 8080 ;;
  "get --raw")
    rest=${{3#/api/v1/namespaces/default/pods/app-wasm-}}
    index=${{rest%%:*}}
    exec curl -sf "http://127.0.0.1:${{ports[$index]}}${{rest#*/proxy}}" ;;
  *) echo "unexpected kubectl $*" >&2; exit 1 ;;
esac
"#,
            ports = ports.join(" ")
        );
        let kubectl = dir.path().join("kubectl");
        std::fs::write(&kubectl, script).unwrap();
        std::fs::set_permissions(
            &kubectl,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        StandInApiServer { dir }
    }

    /// Runs `k8s/show.sh -t 2` against the stand-in, with extra environment.
    pub fn show(&self, env: &[(&str, &str)]) -> std::process::Output {
        let mut cmd = Command::new(repo_root().join("k8s/show.sh"));
        cmd.args(["-t", "2"])
            .env("KUBECTL", self.dir.path().join("kubectl"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }
}

/// What of `small` is not in `big`, as multisets (two visits may share a 10 µs timestamp):
/// the acknowledged visits a store lost.
pub fn missing_from<'a>(small: &'a [String], big: &[String]) -> Vec<&'a String> {
    let mut have = std::collections::BTreeMap::<&str, usize>::new();
    for s in big {
        *have.entry(s).or_default() += 1;
    }
    small
        .iter()
        .filter(|s| match have.get_mut(s.as_str()) {
            Some(n) if *n > 0 => {
                *n -= 1;
                false
            }
            _ => true,
        })
        .collect()
}

/// xorshift64: a small deterministic PRNG for the fault tiers (kill points, cut moments and
/// policies), so a run is repeatable from its seed.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

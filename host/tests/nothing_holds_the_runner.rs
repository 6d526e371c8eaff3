//! No client, however slow or malformed, and no stuck volume may freeze the host or outlive a
//! deadline; readiness tells the truth about the log; the front never sends a request twice.
//! Each against the real component under the real host, over real TCP on loopback.

mod runner;
#[path = "../../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use app_wasm_host::front::Backend;
use app_wasm_host::{Limits, RunningServer, ServeConfig};
use runner::{runner_bin, Runner};
use support::{client, read_records, runtime, serve_front, RECORD_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn host_with(dir: &Path, limits: Limits) -> RunningServer {
    let mut config = ServeConfig::new(dir);
    config.limits = limits;
    RunningServer::start(runtime(), "127.0.0.1:0", config)
        .await
        .unwrap()
}

/// A log of `n` valid records, written directly.
fn big_log(dir: &Path, n: usize) {
    let record = b"2026-11-27T08:03:19.12345+03:00\n";
    assert_eq!(record.len(), RECORD_LEN);
    std::fs::write(dir.join("visits.txt"), record.repeat(n)).unwrap();
}

/// A client that asks for the whole log and then never reads: a tiny receive buffer, so the
/// server's writes block once the socket buffers are full.
async fn stalled_reader(addr: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream
        .write_all(b"GET /visits?format=text HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    stream
}

/// Polls `url` until it answers `status` (at most `within`): how long that took.
async fn until_status(url: &str, status: u16, within: Duration) -> Duration {
    let started = Instant::now();
    let http = client();
    loop {
        if let Ok(r) = http.get(url).send().await {
            if r.status() == status {
                return started.elapsed();
            }
        }
        assert!(
            started.elapsed() < within,
            "{url} never answered {status} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_that_stop_reading_free_their_slots_by_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    big_log(dir.path(), 500_000); // 16 MB: far more than the socket buffers hold
    let host = host_with(
        dir.path(),
        Limits {
            max_concurrent: 2,
            request_timeout_secs: 2,
            ..Limits::default()
        },
    )
    .await;
    let started = Instant::now();
    let _stalled = [
        stalled_reader(host.addr).await,
        stalled_reader(host.addr).await,
    ];
    // Both slots are taken while the two are stalled...
    tokio::time::sleep(Duration::from_millis(300)).await;
    let busy = client().get(host.url("/healthz")).send().await.unwrap();
    assert_eq!(
        busy.status(),
        503,
        "the two stalled readers hold both slots"
    );
    // ...and free again once their deadline passes, though they still never read.
    until_status(&host.url("/healthz"), 200, Duration::from_secs(5)).await;
    let freed = started.elapsed();
    println!("2 stalled readers, 2 slots, deadline 2 s: /healthz 200 again after {freed:?}");
    assert!(freed >= Duration::from_millis(1900), "{freed:?}");
}

/// `--max-running` bounds guests until their response head: a response still streaming to a
/// reader that stopped reading has given its turn back, so visits go on at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_streaming_to_a_stalled_reader_does_not_hold_a_turn_to_run() {
    let dir = tempfile::tempdir().unwrap();
    big_log(dir.path(), 500_000);
    let host = host_with(
        dir.path(),
        Limits {
            max_running: Some(1),
            request_timeout_secs: 5,
            ..Limits::default()
        },
    )
    .await;
    let mut stalled = Vec::new();
    for _ in 0..3 {
        stalled.push(stalled_reader(host.addr).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let http = client();
    let started = Instant::now();
    for _ in 0..20 {
        let resp = http.get(host.url("/")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    let took = started.elapsed();
    println!("3 stalled readers streaming, --max-running 1: 20 visits in {took:?}");
    assert!(took < Duration::from_secs(2), "the visits waited: {took:?}");
    let len = std::fs::metadata(dir.path().join("visits.txt"))
        .unwrap()
        .len();
    assert_eq!(len, 500_020 * RECORD_LEN as u64);
}

#[test]
fn sigterm_stops_the_runner_by_its_drain_deadline_despite_a_stalled_reader() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("app-wasm-0");
    std::fs::create_dir_all(&data).unwrap();
    big_log(&data, 500_000);
    let log = dir.path().join("runner.log");
    let runner = Runner::start_logged(dir.path(), &["--drain-timeout-secs", "2"], &log, None);
    let addr: SocketAddr = runner.base.trim_start_matches("http://").parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _stalled = rt.block_on(stalled_reader(addr));
    std::thread::sleep(Duration::from_millis(300));
    let stopping = Instant::now();
    let out = runner.terminate();
    let took = stopping.elapsed();
    let stderr = std::fs::read_to_string(&log).unwrap();
    println!("SIGTERM with a stalled reader: exited after {took:?}\n{stderr}");
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("drain: requests still in flight"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "a clean exit: {stderr}");
    assert!(
        took >= Duration::from_secs(2),
        "it waited for the drain: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// A FIFO in place of the log (the stand-in for a hung volume) used to block a file
/// call on an async worker, and /healthz never answered again. Each request now runs the
/// component on a blocking-pool thread of its own and the log must be a regular file: the
/// FIFO is refused at once, and a call that did block would get its 503 at the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_for_a_log_is_refused_at_once_while_healthz_and_others_answer() {
    let stuck = tempfile::tempdir().unwrap();
    let fifo = stuck.path().join("visits.txt");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let limits = Limits {
        request_timeout_secs: 2,
        ..Limits::default()
    };
    let host = host_with(stuck.path(), limits.clone()).await;
    let healthy = tempfile::tempdir().unwrap();
    let other = host_with(healthy.path(), limits).await;

    let http = client();
    let started = Instant::now();
    let on_fifo: Vec<_> = ["/visits", "/visits", "/", "/readyz"]
        .iter()
        .map(|p| tokio::spawn(http.get(host.url(p)).send()))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Meanwhile this replica's /healthz and another replica answer at once.
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let t = Instant::now();
        assert_eq!(
            http.get(host.url("/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(http.get(other.url("/")).send().await.unwrap().status(), 200);
        worst = worst.max(t.elapsed());
    }
    println!(
        "/healthz and another replica's GET / beside 4 requests stuck on a FIFO: worst {worst:?}"
    );
    assert!(worst < Duration::from_millis(500), "{worst:?}");
    for h in on_fifo {
        let resp = h.await.unwrap().unwrap();
        assert_eq!(resp.status(), 503);
        let body = resp.text().await.unwrap();
        assert!(body.contains("not a regular file"), "{body}");
    }
    let took = started.elapsed();
    println!("the 4 requests on the FIFO answered 503 after {took:?} (deadline 2 s)");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // Release the file calls still blocked in the pool, so the runtime can shut down.
    use std::os::unix::fs::OpenOptionsExt;
    let _writer = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc_o_nonblock())
        .open(&fifo);
}

/// A FUSE mount whose server never answers, not even `FUSE_INIT`: every file call under it
/// waits (killably) for as long as the mount lives, like a hung network volume. Dropping it
/// closes `/dev/fuse` (the kernel aborts the waiting calls with ENOTCONN) and detaches it.
struct HungMount {
    dir: PathBuf,
    dev: Option<std::fs::File>,
}

impl HungMount {
    fn over(dir: &Path) -> HungMount {
        use std::os::fd::AsRawFd;
        let dev = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .expect("opening /dev/fuse (needs root and the fuse module)");
        let target = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
        let options = std::ffi::CString::new(format!(
            "fd={},rootmode=40000,user_id=0,group_id=0",
            dev.as_raw_fd()
        ))
        .unwrap();
        // SAFETY: every pointer is a NUL-terminated string that outlives the call.
        let rc = unsafe {
            libc::mount(
                c"app-wasm-hung".as_ptr(),
                target.as_ptr(),
                c"fuse".as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        assert_eq!(rc, 0, "mount -t fuse: {}", std::io::Error::last_os_error());
        HungMount {
            dir: dir.to_owned(),
            dev: Some(dev),
        }
    }
}

impl Drop for HungMount {
    fn drop(&mut self) {
        drop(self.dev.take());
        let target = std::ffi::CString::new(self.dir.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path that outlives the call.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// A volume that hangs after start (a FUSE mount over replica 0's directory that never
/// answers): that replica's visits, reads and readiness get 503 at the deadline, those
/// stuck in the volume and those waiting for a turn to run alike, while its /healthz and the
/// other replica answer at once, and SIGTERM still stops the runner by its
/// drain deadline with threads stuck in the file system.
#[test]
#[cfg_attr(
    no_fuse_mount,
    ignore = "needs root and /dev/fuse to mount a FUSE file system that never answers"
)]
fn a_hung_volume_fails_its_requests_by_the_deadline_and_holds_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::start(
        dir.path(),
        &[
            "--replicas",
            "2",
            "--request-timeout-secs",
            "2",
            "--drain-timeout-secs",
            "2",
            // Two of the four requests below run (and stick); two wait for a turn.
            "--max-running",
            "2",
        ],
    );
    let url = |replica: usize, path: &str| format!("{}{path}", runner.replicas[replica].1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_rt = rt.enter();
    let http = client();
    let get = |u: String| {
        let http = http.clone();
        async move { http.get(u).send().await.unwrap().status() }
    };
    assert_eq!(rt.block_on(get(url(0, "/"))), 200);
    let hung = HungMount::over(&dir.path().join("app-wasm-0"));

    let started = Instant::now();
    let on_hung: Vec<_> = ["/", "/visits", "/readyz", "/"]
        .iter()
        .map(|p| rt.spawn(http.get(url(0, p)).send()))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let t = Instant::now();
        assert_eq!(rt.block_on(get(url(0, "/healthz"))), 200);
        assert_eq!(rt.block_on(get(url(1, "/"))), 200);
        worst = worst.max(t.elapsed());
    }
    println!("/healthz and the other replica's GET / beside 4 requests on a hung volume: worst {worst:?}");
    assert!(worst < Duration::from_millis(500), "{worst:?}");
    for h in on_hung {
        let resp = rt.block_on(h).unwrap().unwrap();
        assert_eq!(resp.status(), 503);
        let body = rt.block_on(resp.text()).unwrap();
        assert!(body.contains("deadline"), "{body}");
    }
    let took = started.elapsed();
    println!("the 4 requests on the hung volume answered 503 after {took:?} (deadline 2 s)");
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");

    let stopping = Instant::now();
    let out = runner.terminate();
    let stopped = stopping.elapsed();
    println!("SIGTERM with 4 threads stuck in the hung volume: exited after {stopped:?}");
    assert!(out.status.success(), "{:?}", out.status);
    assert!(stopped < Duration::from_secs(5), "{stopped:?}");
    drop(hung);
    assert_eq!(
        read_records(&dir.path().join("app-wasm-0/visits.txt")).len(),
        1
    );
}

/// A volume that hangs from the start (the FUSE mount is there before `up`): the runner
/// starts anyway, that replica's volume routes answer 503 "still checking" at their deadline
/// (never a pass-through to a log nobody checked), and its /healthz, the other replica and
/// the front answer at once.
#[test]
#[cfg_attr(
    no_fuse_mount,
    ignore = "needs root and /dev/fuse to mount a FUSE file system that never answers"
)]
fn a_volume_hung_from_the_start_holds_only_its_replica_which_says_it_is_still_checking() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("app-wasm-1")).unwrap();
    let hung = HungMount::over(&dir.path().join("app-wasm-1"));
    let runner = Runner::start(
        dir.path(),
        &[
            "--replicas",
            "2",
            "--request-timeout-secs",
            "1",
            "--drain-timeout-secs",
            "1",
        ],
    );
    let url = |replica: usize, path: &str| format!("{}{path}", runner.replicas[replica].1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_rt = rt.enter();
    let http = client();
    let status = |u: String| rt.block_on(async { http.get(u).send().await.unwrap().status() });
    let started = Instant::now();
    for path in ["/", "/readyz"] {
        let resp = rt.block_on(http.get(url(1, path)).send()).unwrap();
        assert_eq!(resp.status(), 503, "{path}");
        assert_eq!(resp.headers()["retry-after"], "1");
        let body = rt.block_on(resp.text()).unwrap();
        assert!(body.contains("still checking the visit log"), "{body}");
    }
    let took = started.elapsed();
    println!("2 requests on a volume hung from the start: 503 \"still checking\" after {took:?}");
    assert!(
        took >= Duration::from_secs(2),
        "each waited for its 1 s deadline: {took:?}"
    );
    let t = Instant::now();
    assert_eq!(status(url(1, "/healthz")), 200);
    assert_eq!(status(url(0, "/")), 200);
    assert_eq!(status(format!("{}/healthz", runner.base)), 200);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    let out = runner.terminate();
    assert!(out.status.success(), "{:?}", out.status);
    drop(hung);
}

/// Threads of process `pid`, from /proc.
fn threads_of(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Threads:")).unwrap();
    line["Threads:".len()..].trim().parse().unwrap()
}

/// The median and the worst of `d`.
fn median_and_max(mut d: Vec<Duration>) -> (Duration, Duration) {
    d.sort();
    (d[d.len() / 2], d[d.len() - 1])
}

/// Unbounded arrival on a hung volume: `up --replicas 3`, app-wasm-1's volume stops
/// answering, and a new request for it arrives every 2 ms whatever happened to the earlier
/// ones, for 5 deadlines. It may pin only its own `--max-running` threads of the blocking
/// pool all replicas share (512): before each stuck thread kept its turn, every deadline let
/// another wave in, and after four the pool was full and every replica answered 503.
#[test]
#[cfg_attr(
    no_fuse_mount,
    ignore = "needs root and /dev/fuse to mount a FUSE file system that never answers"
)]
fn a_hung_volume_under_unbounded_arrival_pins_only_its_own_threads() {
    const MAX_RUNNING: usize = 128;
    let dir = tempfile::tempdir().unwrap();
    let running = MAX_RUNNING.to_string();
    let runner = Runner::start(
        dir.path(),
        &[
            "--replicas",
            "3",
            "--request-timeout-secs",
            "1",
            "--drain-timeout-secs",
            "2",
            "--max-running",
            &running,
        ],
    );
    let url = |replica: usize, path: &str| format!("{}{path}", runner.replicas[replica].1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_rt = rt.enter();
    let http = client();
    for replica in 0..3 {
        assert_eq!(
            rt.block_on(http.get(url(replica, "/")).send())
                .unwrap()
                .status(),
            200
        );
    }
    let threads_before = threads_of(runner.pid());
    let hung = HungMount::over(&dir.path().join("app-wasm-1"));

    let arrival = Duration::from_secs(5);
    let started = Instant::now();
    let hammer = {
        let (http, target) = (http.clone(), url(1, "/"));
        rt.spawn(async move {
            let mut sent = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(2));
            while started.elapsed() < arrival {
                tick.tick().await;
                let req = http.get(&target).send();
                sent.push(tokio::spawn(async move {
                    req.await.map(|r| r.status().as_u16())
                }));
            }
            sent
        })
    };
    // Meanwhile, the other replicas' visits and every /healthz, one after another.
    let probes = [
        url(0, "/"),
        url(2, "/"),
        url(1, "/healthz"),
        format!("{}/healthz", runner.base),
    ];
    let mut latencies = vec![Vec::new(); probes.len()];
    let mut most_threads = threads_before;
    while started.elapsed() < arrival {
        for (i, probe) in probes.iter().enumerate() {
            let t = Instant::now();
            let status = rt.block_on(http.get(probe).send()).unwrap().status();
            assert_eq!(status, 200, "{probe} at {:?}", started.elapsed());
            latencies[i].push(t.elapsed());
        }
        most_threads = most_threads.max(threads_of(runner.pid()));
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = rt.block_on(hammer).unwrap();
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    for req in sent {
        let status = rt.block_on(req).unwrap();
        let key = status.map_or_else(|e| format!("error: {e}"), |s| s.to_string());
        *statuses.entry(key).or_default() += 1;
    }
    println!(
        "hung app-wasm-1 under a request every 2 ms for {arrival:?}: its answers {statuses:?}; \
         runner threads {threads_before} before, at most {most_threads} during \
         (--max-running {MAX_RUNNING})"
    );
    for (probe, d) in probes.iter().zip(latencies) {
        let (median, worst) = median_and_max(d.clone());
        println!(
            "  {probe}: {} probes, median {median:?}, worst {worst:?}",
            d.len()
        );
        assert!(
            worst < Duration::from_millis(250),
            "{probe}: worst {worst:?}"
        );
    }
    assert!(
        most_threads <= threads_before + MAX_RUNNING + 16,
        "a hung replica pinned {} threads",
        most_threads - threads_before
    );
    assert_eq!(statuses.keys().collect::<Vec<_>>(), ["503"], "{statuses:?}");

    let out = runner.terminate();
    assert!(out.status.success(), "{:?}", out.status);
    drop(hung);
}

fn libc_o_nonblock() -> i32 {
    0o4000 // O_NONBLOCK on Linux
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_whenever_a_visit_could_not_be_recorded_and_nothing_is_cut() {
    let http = client();
    // The log is a directory.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("visits.txt")).unwrap();
    let host = host_with(dir.path(), Limits::default()).await;
    for path in ["/readyz", "/"] {
        let r = http.get(host.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 503, "{path}");
        let body = r.text().await.unwrap();
        assert!(
            body.contains("damaged") && body.contains("directory"),
            "{body}"
        );
    }
    // A symbolic link out of the volume.
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("v.txt"), "").unwrap();
    std::os::unix::fs::symlink(outside.path().join("v.txt"), dir.path().join("visits.txt"))
        .unwrap();
    let host = host_with(dir.path(), Limits::default()).await;
    for path in ["/readyz", "/"] {
        let r = http.get(host.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 503, "{path}");
    }
    assert_eq!(std::fs::read(outside.path().join("v.txt")).unwrap(), b"");
    // 65 bytes inserted by hand into a log of three visits.
    let dir = tempfile::tempdir().unwrap();
    let host = host_with(dir.path(), Limits::default()).await;
    for _ in 0..3 {
        assert_eq!(http.get(host.url("/")).send().await.unwrap().status(), 200);
    }
    let log = dir.path().join("visits.txt");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.splice(RECORD_LEN..RECORD_LEN, [b'#'; 65]);
    std::fs::write(&log, &bytes).unwrap();
    for path in ["/readyz", "/", "/visits", "/metrics"] {
        let r = http.get(host.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 503, "{path}");
        let body = r.text().await.unwrap();
        // The last synced record (the third, at 64) is now the inserted bytes.
        assert!(body.contains("offset 64"), "{path}: {body}");
    }
    assert_eq!(std::fs::read(&log).unwrap(), bytes, "nothing was cut");
    // The text form never serves bytes that are not records: it stops at the first.
    let text = http
        .get(host.url("/visits?format=text"))
        .send()
        .await
        .map(|r| r.status());
    assert!(!matches!(text, Ok(s) if s == 200), "{text:?}");
}

/// Sends `request` on a fresh connection; the status of the answer.
async fn raw_status(addr: SocketAddr, request: &[u8]) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = vec![0; 12];
    stream.read_exact(&mut out).await.unwrap();
    String::from_utf8_lossy(&out[9..12]).parse().unwrap()
}

/// Sends `request` (which closes its connection) on a fresh connection; the whole answer.
async fn raw_response(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("the server closes the connection")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_hosts_get_400_at_a_replica_and_at_the_front_and_record_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let replica = host_with(dir.path(), Limits::default()).await;
    let front = serve_front(vec![Backend {
        name: "app-wasm-0".into(),
        addr: replica.addr,
    }])
    .await;
    let bad: [&[u8]; 8] = [
        b"Host: \xff\r\n",
        "Host: пример\r\n".as_bytes(),
        b"Host: a\r\nHost: a\r\n",
        b"Host: a b\r\n",
        b"Host: user@evil\r\n",
        b"Host: x:99999\r\n",
        b"Host: a/b\r\n",
        b"",
    ];
    for addr in [replica.addr, front] {
        for host in bad {
            let request = [b"GET / HTTP/1.1\r\n".as_slice(), host, b"\r\n"].concat();
            let status = raw_status(addr, &request).await;
            assert_eq!(status, 400, "{}", String::from_utf8_lossy(host));
        }
        let ok = raw_status(addr, b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n").await;
        assert_eq!(ok, 200);
    }
    assert_eq!(read_records(&dir.path().join("visits.txt")).len(), 2);
}

/// Sends `wire` on a fresh connection and reads until the server closes it: the status of
/// every response, in order.
async fn raw_statuses(addr: SocketAddr, wire: &[u8]) -> Vec<u16> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(wire).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("the server closes the connection")
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    out.match_indices("HTTP/1.1 ")
        .map(|(i, _)| out[i + 9..i + 12].parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_for_another_origin_gets_421_at_a_replica_and_at_the_front_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let replica = host_with(dir.path(), Limits::default()).await;
    let front = serve_front(vec![Backend {
        name: "app-wasm-0".into(),
        addr: replica.addr,
    }])
    .await;
    for addr in [replica.addr, front] {
        for (target, host) in [
            ("https://elsewhere.example/", "elsewhere.example"),
            ("http://elsewhere.example/", "a"),
            ("http://a:8080/", "a"),
            ("https://a/", "a"),
        ] {
            let request =
                format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            let response = raw_response(addr, request.as_bytes()).await;
            assert!(
                response.starts_with("HTTP/1.1 421 "),
                "{target}: {response}"
            );
            assert!(response.contains("\"status\":421"), "{target}: {response}");
        }
        // The same origin in absolute form, any case, default port: served. A fragment is
        // dropped by hyper, as by every mainstream server, and the visit is served too.
        let wire = b"GET http://A:80/ HTTP/1.1\r\nHost: a\r\n\r\n\
            GET /visits#frag HTTP/1.1\r\nHost: a\r\n\r\n\
            GET https://a/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
        assert_eq!(raw_statuses(addr, wire).await, [200, 200, 421]);
    }
    assert_eq!(read_records(&dir.path().join("visits.txt")).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_resends_only_what_never_reached_a_replica() {
    // A replica that reads a request, acts on it (counted here), and drops the connection.
    let acted = Arc::new(AtomicUsize::new(0));
    let dropper = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dropper_addr = dropper.local_addr().unwrap();
    let seen = acted.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = dropper.accept().await {
            let mut head = Vec::new();
            let mut buf = [0; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let real = host_with(dir.path(), Limits::default()).await;
    let backends = |first: SocketAddr| {
        vec![
            Backend {
                name: "first".into(),
                addr: first,
            },
            Backend {
                name: "app-wasm-1".into(),
                addr: real.addr,
            },
        ]
    };
    let front = serve_front(backends(dropper_addr)).await;
    let r = client()
        .get(format!("http://{front}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        502,
        "a request that reached a replica is not sent again"
    );
    assert_eq!(
        acted.load(Ordering::SeqCst),
        1,
        "the first replica saw it once"
    );
    assert!(
        !dir.path().join("visits.txt").exists(),
        "and the second never"
    );

    // A replica that cannot be reached at all: the request goes to the next one.
    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let front = serve_front(backends(gone)).await;
    let r = client()
        .get(format!("http://{front}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(read_records(&dir.path().join("visits.txt")).len(), 1);
}

#[test]
fn flags_that_could_never_serve_are_refused_at_start() {
    for (flag, value) in [
        ("--max-concurrent", "0"),
        ("--request-timeout-secs", "0"),
        ("--head-timeout-secs", "0"),
        ("--drain-timeout-secs", "0"),
        ("--memory-mib", "0"),
        ("--max-head-bytes", "100"),
    ] {
        let out = std::process::Command::new(runner_bin())
            .args(["up", flag, value])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
    }
}

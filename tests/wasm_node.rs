//! End to end on a wasm node's runtime, without kubelet: the image built by
//! `k8s/image/build.sh` (buildah, daemonless), imported into a private containerd and run
//! with containerd-shim-spin v0.24.0 as three containers app-wasm-0..2. Each gets its own
//! volume dir at the claim's mount path, the runtime config from the rendered ConfigMap, and
//! the env and command of the rendered StatefulSet (pod name as SPIN_VARIABLE_REPLICA). Only the listen
//! address moves to a loopback port. Needs root, containerd, ctr, buildah and the shim: CI
//! installs them; elsewhere the test is skipped with a message.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::contract::{check_contract, Volume};
use support::k8s::Rendered;
use support::{client, concurrent_visits, free_port, repo_root, sqlite_records};
use support::{tool_or_skip, visit_count, StandInApiServer};

const RUNTIME: &str = "io.containerd.spin.v2";

/// What the rendered StatefulSet says a replica's container gets.
struct PodSpec {
    image_tag: String,
    command: Vec<String>,
    env: Vec<(String, EnvValue)>,
    claim_mount: String,
    config_mount: String,
    runtime_config: String,
    store_path: String,
}

enum EnvValue {
    Literal(String),
    PodName,
}

impl PodSpec {
    fn from_render(r: &Rendered) -> PodSpec {
        let c = r.container();
        let pod = &r.statefulset()["spec"]["template"]["spec"];
        let env = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                    Some("metadata.name") => EnvValue::PodName,
                    Some(other) => panic!("env from {other} is not emulated here"),
                    None => EnvValue::Literal(e["value"].as_str().unwrap().to_owned()),
                };
                (e["name"].as_str().unwrap().to_owned(), value)
            })
            .collect();
        let mounts = c["volumeMounts"].as_array().unwrap();
        let claim_mount = mounts
            .iter()
            .find(|m| m["name"] == "visits-volume-template")
            .unwrap()["mountPath"]
            .as_str()
            .unwrap()
            .to_owned();
        let config = mounts.iter().find(|m| m["subPath"].is_string()).unwrap();
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == config["name"])
            .unwrap();
        let map = r.one("ConfigMap", volume["configMap"]["name"].as_str().unwrap());
        let runtime_config = map["data"][config["subPath"].as_str().unwrap()]
            .as_str()
            .unwrap()
            .to_owned();
        let store_path = runtime_config
            .lines()
            .find_map(|l| l.trim().strip_prefix("path = "))
            .unwrap()
            .trim_matches('"')
            .to_owned();
        let image = c["image"].as_str().unwrap();
        PodSpec {
            image_tag: image.rsplit(':').next().unwrap().to_owned(),
            command: c["command"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect(),
            env,
            claim_mount,
            config_mount: config["mountPath"].as_str().unwrap().to_owned(),
            runtime_config,
            store_path,
        }
    }

    /// Where the store lands on the host when `volume` is mounted at the claim's path.
    fn db_on_host(&self, volume: &Path) -> PathBuf {
        let inside = self.store_path.strip_prefix(&self.claim_mount).unwrap();
        volume.join(inside.trim_start_matches('/'))
    }
}

/// containerd with its own root, state and socket under a temp dir; every container it ran
/// and then containerd itself are stopped when dropped.
struct Containerd {
    dir: tempfile::TempDir,
    daemon: Child,
    names: std::sync::Mutex<Vec<String>>,
    /// The shim keeps state in /run/containerd/spin/NAMESPACE/ID, outside containerd's root:
    /// a namespace per run keeps runs (and leftovers of crashed ones) apart.
    namespace: String,
}

impl Containerd {
    fn start() -> Containerd {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, "version = 2\n").unwrap();
        let sock = dir.path().join("containerd.sock");
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--state")
            .arg(dir.path().join("state"))
            .arg("--address")
            .arg(&sock)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting containerd");
        let ctd = Containerd {
            dir,
            daemon,
            names: Default::default(),
            namespace: format!("app-wasm-e2e-{}", std::process::id()),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ctd.ctr(&["version"]).status.success() {
            assert!(Instant::now() < deadline, "containerd did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        ctd
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.dir.path().join("containerd.sock"))
            .arg("--namespace")
            .arg(&self.namespace)
            .args(args)
            .output()
            .expect("running ctr")
    }

    fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `ctr run -d` one replica, as the StatefulSet's pod `name` with `volume` as its claim.
    fn run(&self, spec: &PodSpec, image: &str, name: &str, volume: &Path, port: u16) {
        let config = self.dir.path().join(format!("{name}-runtime-config.toml"));
        std::fs::write(&config, &spec.runtime_config).unwrap();
        let mut args: Vec<String> = ["run", "-d", "--runtime", RUNTIME, "--net-host"]
            .map(String::from)
            .to_vec();
        for (key, value) in &spec.env {
            let value = match value {
                EnvValue::Literal(_) if key == "SPIN_HTTP_LISTEN_ADDR" => {
                    format!("127.0.0.1:{port}")
                }
                EnvValue::Literal(v) => v.clone(),
                EnvValue::PodName => name.to_owned(),
            };
            args.push("--env".into());
            args.push(format!("{key}={value}"));
        }
        args.push("--mount".into());
        args.push(format!(
            "type=bind,src={},dst={},options=rbind:rw",
            volume.display(),
            spec.claim_mount
        ));
        args.push("--mount".into());
        args.push(format!(
            "type=bind,src={},dst={},options=rbind:ro",
            config.display(),
            spec.config_mount
        ));
        args.push(image.into());
        args.push(name.into());
        args.extend(spec.command.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ctr_ok(&args);
        let mut names = self.names.lock().unwrap();
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }

    /// What kubelet does on a pod delete: SIGTERM, wait for the task to exit, remove it.
    fn stop(&self, name: &str) {
        self.ctr_ok(&["task", "kill", "--signal", "SIGTERM", name]);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let tasks = self.ctr_ok(&["task", "ls"]);
            let stopped = tasks
                .lines()
                .any(|l| l.starts_with(&format!("{name} ")) && l.contains("STOPPED"));
            if stopped {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not stop on SIGTERM:\n{tasks}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.ctr_ok(&["task", "delete", name]);
        self.ctr_ok(&["container", "delete", name]);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for name in self.names.lock().unwrap().iter() {
            let _ = self.ctr(&["task", "kill", "--signal", "SIGKILL", name]);
            let _ = self.ctr(&["task", "delete", "--force", name]);
            let _ = self.ctr(&["container", "delete", name]);
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = std::fs::remove_dir_all(format!("/run/containerd/spin/{}", self.namespace));
        // Snapshot mounts left by a failed run would keep the temp dir from being removed.
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path())
            .stderr(Stdio::null())
            .status();
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        for line in mounts.lines().rev() {
            if let Some(point) = line.split(' ').nth(1) {
                if point.starts_with(&*self.dir.path().to_string_lossy()) {
                    let _ = Command::new("umount").arg("-l").arg(point).status();
                }
            }
        }
    }
}

fn prerequisites_present() -> bool {
    let how = "CI installs it: apt-get install containerd runc buildah; ../shared/bin/install-shim";
    ["containerd", "ctr", "buildah", "containerd-shim-spin-v2"]
        .iter()
        .all(|tool| tool_or_skip(Path::new(tool), how))
}

async fn wait_ready(base: &str) -> Instant {
    let http = client();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(resp) = http.get(format!("{base}/readyz")).send().await {
            if resp.status() == 200 {
                return Instant::now();
            }
        }
        assert!(Instant::now() < deadline, "{base} never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_the_spin_shim_each_keep_their_own_visits() {
    let tier = Instant::now();
    if !prerequisites_present() {
        return;
    }
    let Some(rendered) = Rendered::load() else {
        return;
    };
    let spec = PodSpec::from_render(&rendered);

    // The image, by the repo's recipe; its tag must be the one k8s/ deploys.
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("app-wasm.oci");
    let out = Command::new(repo_root().join("k8s/image/build.sh"))
        .arg("oci-archive")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = String::from_utf8(out.stdout).unwrap();
    let image = built.split_whitespace().nth(1).unwrap().to_owned();
    assert!(
        image.ends_with(&format!(":{}", spec.image_tag)),
        "{image} vs k8s tag {}",
        spec.image_tag
    );
    println!("{}", built.trim());

    let ctd = Containerd::start();
    ctd.ctr_ok(&[
        "image",
        "import",
        "--all-platforms",
        archive.to_str().unwrap(),
    ]);

    // Three replicas started at once (podManagementPolicy: Parallel), each on its own volume.
    let volumes: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let bases: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let launched = Instant::now();
    let launches: Vec<Instant> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|i| {
                let (ctd, spec, image) = (&ctd, &spec, &image);
                let (volume, port) = (volumes[i].path(), ports[i]);
                scope.spawn(move || {
                    let at = Instant::now();
                    ctd.run(spec, image, &format!("app-wasm-{i}"), volume, port);
                    at
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all_launched = *launches.iter().max().unwrap();
    let mut ready = Vec::new();
    for base in &bases {
        ready.push(wait_ready(base).await);
    }
    let first_ready = *ready.iter().min().unwrap();
    println!(
        "3 replicas launched within {:?} of each other; ready after {:?}",
        all_launched - launched,
        ready.iter().map(|r| *r - launched).collect::<Vec<_>>()
    );

    // The whole HTTP contract on app-wasm-0, with its store read straight off its volume.
    let dbs: Vec<PathBuf> = volumes.iter().map(|v| spec.db_on_host(v.path())).collect();
    check_contract(&bases[0], Volume::Sqlite(&dbs[0])).await;
    let contract_visits = sqlite_records(&dbs[0]).len();

    // The pod name reaches the component (SPIN_VARIABLE_REPLICA -> Spin variable) and goes
    // out on every response.
    for (i, base) in bases.iter().enumerate() {
        let resp = client()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.headers()["x-replica"].to_str().unwrap(),
            format!("app-wasm-{i}")
        );
    }

    // Different concurrent loads per replica: each volume holds exactly its own visits.
    let loads = [50, 100, 150];
    for (base, load) in bases.iter().zip(loads) {
        concurrent_visits(base, load).await;
    }
    let expected = [contract_visits + 50, 100, 150];
    for i in 0..3 {
        assert_eq!(
            sqlite_records(&dbs[i]).len(),
            expected[i],
            "app-wasm-{i}'s volume"
        );
        assert_eq!(visit_count(&bases[i]).await, expected[i] as u64);
    }

    // The StatefulSet's restart: SIGTERM, a new container of the same name on the same volume.
    ctd.stop("app-wasm-1");
    ctd.run(&spec, &image, "app-wasm-1", volumes[1].path(), ports[1]);
    wait_ready(&bases[1]).await;
    assert_eq!(
        visit_count(&bases[1]).await,
        100,
        "visits survive the restart"
    );
    concurrent_visits(&bases[1], 1).await;
    assert_eq!(sqlite_records(&dbs[1]).len(), 101);

    let show = StandInApiServer::new(&ports).show(&[]);
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    let text = String::from_utf8(show.stdout).unwrap();
    for (i, n) in [expected[0], 101, 150].iter().enumerate() {
        assert!(
            text.contains(&format!("app-wasm-{i}: {n} visits\n")),
            "{text}"
        );
    }
    println!("k8s/show.sh -t 2 over the three shim replicas:\n{text}");
    println!(
        "per-replica visits {:?}; restart kept 100 of 100; tier wall time {:?}",
        [expected[0], 101, 150],
        tier.elapsed()
    );
    // Parallel start: no replica waited for another to be ready before it was launched.
    assert!(all_launched <= first_ready);
}

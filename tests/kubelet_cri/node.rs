//! A wasm node without kubelet: a private containerd with its CRI plugin on, configured with
//! the containerd snippet from `k8s/README.md` (so the snippet users copy is the one tested)
//! plus what this machine needs, and the two images a pod needs imported into CRI's `k8s.io`
//! namespace: the sandbox (pause) image, built here, and the app image by
//! `k8s/image/build.sh`, tagged as the manifest names it. Everything is torn down on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use app_wasm_cri::{Channel, ImageServiceClient, RuntimeServiceClient};

use crate::support::repo_root;

/// The namespace in which containerd's CRI plugin keeps everything it runs.
const CRI_NAMESPACE: &str = "k8s.io";
/// The sandbox image, built locally: there is no registry to pull registry.k8s.io/pause from.
pub const PAUSE_IMAGE: &str = "localhost/app-wasm-tests/pause:1";

pub struct Node {
    dir: tempfile::TempDir,
    daemon: Child,
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
}

/// The `toml` block that follows `<!-- marker -->` in k8s/README.md.
pub fn readme_snippet(marker: &str) -> String {
    let readme = std::fs::read_to_string(repo_root().join("k8s/README.md")).unwrap();
    let after = readme
        .split_once(&format!("<!-- {marker} -->"))
        .unwrap_or_else(|| panic!("k8s/README.md has no <!-- {marker} --> snippet"))
        .1;
    let block = after.split_once("```toml\n").expect("a toml block").1;
    block
        .split_once("```")
        .expect("a closed toml block")
        .0
        .to_owned()
}

impl Node {
    /// Starts containerd with the README's runtime snippet for config version 2 (containerd
    /// 1.x, the one Debian ships here).
    pub async fn start() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("cni")).unwrap();
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"

[grpc]
  address = "{sock}"

# What this machine needs, not what a node needs:
[plugins."io.containerd.grpc.v1.cri"]
  # The sandbox image is built and imported by the test (no registry here).
  sandbox_image = "{PAUSE_IMAGE}"
  # Root here lacks CAP_SYS_RESOURCE: lowering a process's oom_score_adj would fail.
  restrict_oom_score_adj = true
  # No CNI here: the pods use the node's network namespace, so none is configured.
  [plugins."io.containerd.grpc.v1.cri".cni]
    conf_dir = "{cni}"

# A node's config starts from `containerd config default`, which has runc as the default
# runtime; without it the CRI plugin refuses to load.
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

# From k8s/README.md:
{snippet}"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("containerd.sock").display(),
            cni = d.join("cni").display(),
            snippet = readme_snippet("containerd-config-v2"),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting containerd");
        let sock = d.join("containerd.sock");
        let deadline = Instant::now() + Duration::from_secs(30);
        let channel = loop {
            if sock.exists() {
                if let Ok(channel) = app_wasm_cri::connect(&sock).await {
                    break channel;
                }
            }
            assert!(
                Instant::now() < deadline,
                "containerd's CRI did not come up:\n{}",
                std::fs::read_to_string(d.join("containerd.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut node = Node {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            dir,
            daemon,
        };
        // The CRI plugin answers Version only once it is serving; a config it rejects
        // leaves containerd up without it.
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = node
            .runtime
            .version(app_wasm_cri::v1::VersionRequest::default())
            .await
        {
            let log = std::fs::read_to_string(node.dir().join("containerd.log")).unwrap();
            let rejected = log
                .lines()
                .find(|l| l.contains("failed to load plugin io.containerd.grpc.v1.cri"));
            assert!(
                rejected.is_none(),
                "containerd's CRI plugin: {}",
                rejected.unwrap()
            );
            assert!(Instant::now() < deadline, "CRI Version never answered: {e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        node
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn ctr_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(self.dir.path().join("containerd.sock"))
            .args(["--namespace", CRI_NAMESPACE])
            .args(args);
        cmd
    }

    /// `ctr` for clean-up: its output, or nothing if it failed.
    fn ctr_quietly(&self, args: &[&str]) -> String {
        self.ctr_command(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    pub fn ctr(&self, args: &[&str]) -> String {
        let out = self.ctr_command(args).output().expect("running ctr");
        assert!(
            out.status.success(),
            "ctr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The pause image: a static binary in an otherwise empty image.
    pub fn import_pause_image(&self) {
        let work = self.dir.path().join("pause");
        std::fs::create_dir_all(&work).unwrap();
        let bin = work.join("pause");
        let source = repo_root().join("tests/kubelet_cri/pause.c");
        run(Command::new("cc")
            .args(["-static", "-Os", "-o"])
            .arg(&bin)
            .arg(source));
        std::fs::write(
            work.join("Containerfile"),
            "FROM scratch\nCOPY pause /pause\nENTRYPOINT [\"/pause\"]\n",
        )
        .unwrap();
        let archive = work.join("pause.oci");
        buildah(&["bud", "--quiet", "-t", PAUSE_IMAGE, work.to_str().unwrap()]);
        buildah(&[
            "push",
            "--quiet",
            PAUSE_IMAGE,
            &format!("oci-archive:{}:{PAUSE_IMAGE}", archive.display()),
        ]);
        self.ctr(&["image", "import", archive.to_str().unwrap()]);
    }

    /// The app image by the repo's recipe, imported and tagged as `reference` (the manifest's
    /// image), so CRI finds it as kubelet would ask for it.
    pub fn import_app_image(&self, reference: &str) -> String {
        let archive = self.dir.path().join("app-wasm.oci");
        let out = Command::new(repo_root().join("k8s/image/build.sh"))
            .arg("oci-archive")
            .arg(&archive)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "k8s/image/build.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let built = String::from_utf8(out.stdout).unwrap();
        let local = built.split_whitespace().nth(1).unwrap().to_owned();
        assert_eq!(
            local.rsplit(':').next(),
            reference.rsplit(':').next(),
            "the image build.sh makes must carry the tag k8s/ deploys"
        );
        self.ctr(&[
            "image",
            "import",
            "--all-platforms",
            archive.to_str().unwrap(),
        ]);
        self.ctr(&["image", "tag", "--force", &local, reference]);
        built.trim().to_owned()
    }

    /// An image like the app's (the same `k8s/image/spin.toml` and Dockerfile) holding another
    /// component, imported as `reference`: the bench's hello pod.
    pub fn import_component_image(&self, reference: &str, wasm: &Path) -> String {
        let stage = self.dir.path().join("component-image");
        std::fs::create_dir_all(&stage).unwrap();
        for file in ["spin.toml", "Dockerfile"] {
            std::fs::copy(repo_root().join("k8s/image").join(file), stage.join(file)).unwrap();
        }
        std::fs::copy(wasm, stage.join("app_wasm.wasm")).unwrap();
        let archive = self.dir.path().join("component.oci");
        let stage_dir = stage.to_str().unwrap();
        buildah(&[
            "bud",
            "--quiet",
            "--platform",
            "wasi/wasm",
            "-t",
            reference,
            stage_dir,
        ]);
        buildah(&[
            "push",
            "--quiet",
            reference,
            &format!("oci-archive:{}:{reference}", archive.display()),
        ]);
        self.ctr(&[
            "image",
            "import",
            "--all-platforms",
            archive.to_str().unwrap(),
        ]);
        reference.to_owned()
    }

    /// Waits until CRI's ImageStatus finds `reference`: the CRI plugin indexes an imported
    /// image from containerd's events, a moment after `ctr` returns.
    pub async fn wait_indexed(&self, reference: &str) {
        let since = Instant::now();
        loop {
            let status = self
                .images
                .clone()
                .image_status(app_wasm_cri::v1::ImageStatusRequest {
                    image: Some(app_wasm_cri::v1::ImageSpec {
                        image: reference.to_owned(),
                        ..Default::default()
                    }),
                    verbose: false,
                })
                .await
                .unwrap()
                .into_inner();
            if status.image.is_some() {
                return;
            }
            assert!(
                since.elapsed() < Duration::from_secs(30),
                "CRI does not see {reference}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// containerd's log entries about container `id` (every error, with "" for none in
    /// particular): the shim's errors (a Spin app that fails to start) appear only there,
    /// never in the container's log.
    pub fn log_about(&self, id: &str) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap();
        // An entry starts with `time=`; a shim's error chain continues on the lines after it.
        let mut entries: Vec<String> = Vec::new();
        // Spin's backtraces carry no symbols here: "Stack backtrace:" and "N: <unknown>".
        let noise = |l: &str| {
            l.trim() == "Stack backtrace:"
                || l.trim_end().trim_end_matches('"').ends_with(": <unknown>")
        };
        for line in log.lines().filter(|l| !noise(l)) {
            match entries.last_mut() {
                Some(entry) if !line.starts_with("time=") => {
                    entry.push('\n');
                    entry.push_str(line);
                }
                _ => entries.push(line.to_owned()),
            }
        }
        let about: Vec<String> = entries
            .into_iter()
            .filter(|e| match id {
                "" => e.contains("level=error") && !e.contains("failed to load cni during init"),
                id => e.contains(id),
            })
            .collect();
        about[about.len().saturating_sub(40)..].join("\n")
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn buildah(args: &[&str]) {
    // vfs: works as root anywhere, as k8s/image/build.sh does.
    run(Command::new("buildah")
        .args(["--storage-driver", "vfs"])
        .args(args));
}

impl Drop for Node {
    fn drop(&mut self) {
        // Sandboxes and containers still running (a failed test) are killed with the daemon's
        // shims; their mounts and cgroups are cleaned up below.
        let ids = self.ctr_quietly(&["task", "ls", "-q"]);
        for id in ids.lines() {
            self.ctr_quietly(&["task", "kill", "-s", "SIGKILL", id]);
            self.ctr_quietly(&["task", "delete", "--force", id]);
            let _ = std::fs::remove_dir_all(format!("/run/containerd/spin/{CRI_NAMESPACE}/{id}"));
        }
        let containers = self.ctr_quietly(&["containers", "ls", "-q"]);
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // Shims outlive containerd by design; those of this node (a failed run's sandboxes)
        // are found by the socket they were given and killed.
        let socket = self.dir.path().join("containerd.sock");
        for pid in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let cmdline = std::fs::read(pid.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            if cmdline.contains("containerd-shim") && cmdline.contains(&*socket.to_string_lossy()) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.file_name().to_string_lossy()])
                    .status();
            }
        }
        // The shim leaves the cgroups it made (`/k8s.io/ID`, and the sandbox's under the pod's
        // parent); kubelet would remove the pod's. Both are this run's only.
        for controller in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            for id in containers.lines() {
                remove_cgroup_tree(&controller.path().join(CRI_NAMESPACE).join(id));
            }
            let pods = controller.path().join("kubepods/burstable");
            for pod in std::fs::read_dir(&pods).into_iter().flatten().flatten() {
                if pod
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&format!("pod{}", run_id()))
                {
                    remove_cgroup_tree(&pod.path());
                }
            }
        }
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let root = self.dir.path().to_string_lossy().into_owned();
        for line in mounts.lines().rev() {
            if let Some(point) = line.split(' ').nth(1) {
                if point.starts_with(&root) {
                    let _ = Command::new("umount").arg("-l").arg(point).status();
                }
            }
        }
        if std::thread::panicking() {
            // A failed run keeps containerd's log, the pods' logs and the claims.
            let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()).keep();
            eprintln!("kept the node's files for inspection: {}", kept.display());
        }
    }
}

/// What this test run's pod UIDs start with, so its cgroups are told from other runs'.
pub fn run_id() -> String {
    format!("{:08x}", std::process::id())
}

/// A cgroup and the ones below it, deepest first (a cgroup dir goes only once it is empty).
fn remove_cgroup_tree(dir: &Path) {
    for child in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if child.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_tree(&child.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Where a cgroup v1 controller or the v2 unified hierarchy keeps `path`.
pub fn cgroup_dir(pid: u32, controller: &str) -> PathBuf {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        if controllers.split(',').any(|c| c == controller) {
            return Path::new("/sys/fs/cgroup")
                .join(controller)
                .join(path.trim_start_matches('/'));
        }
        if controllers.is_empty() {
            return Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
        }
    }
    panic!("no {controller} cgroup for pid {pid}:\n{cgroups}")
}

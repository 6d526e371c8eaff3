//! What kubelet does with one pod of the rendered StatefulSet, spoken to containerd over CRI:
//! the claim as a per-replica dir with the fsGroup applied, the ConfigMap key via subPath,
//! RunPodSandbox with the RuntimeClass's handler and the pod securityContext, CreateContainer
//! with the container's command, env (fieldRefs and `$(VAR)` resolved), mounts,
//! securityContext and the cgroup limits from `resources`, then the startup, readiness and
//! liveness probes with the manifest's periods and thresholds.
//!
//! What it skips, and why that cannot change the outcome here: the pod network (the sandbox
//! uses the node's network namespace, as there is no CNI; only the listen address moves to a
//! loopback port), the pod-level cgroup (kubelet makes it with the same limits; the shim puts
//! the container's process in a cgroup of its own, `/k8s.io/ID`, with the container's limits,
//! which are the binding ones),
//! image pulls (the image is present, and `imagePullPolicy: IfNotPresent` pulls nothing),
//! DNS config, and the API server (nothing in the pod reads it:
//! `automountServiceAccountToken: false`).

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use app_wasm_cri::v1::{self, Int64Value, SecurityProfile};
use serde_json::Value;

use crate::node::Node;
use crate::support::k8s::Rendered;

const NAMESPACE: &str = "default";

/// An httpGet probe as the manifest states it, with Kubernetes' defaults filled in.
#[derive(Clone, Debug)]
pub struct Probe {
    pub path: String,
    pub period: Duration,
    pub timeout: Duration,
    pub failure_threshold: u32,
}

impl Probe {
    fn from(v: &Value) -> Option<Probe> {
        if v.is_null() {
            return None;
        }
        let secs =
            |key: &str, default: u64| Duration::from_secs(v[key].as_u64().unwrap_or(default));
        assert!(
            v["initialDelaySeconds"].is_null(),
            "initialDelaySeconds is not emulated"
        );
        assert_eq!(
            v["httpGet"]["port"], "http",
            "probes use the named container port"
        );
        Some(Probe {
            path: v["httpGet"]["path"]
                .as_str()
                .expect("httpGet probes only")
                .to_owned(),
            period: secs("periodSeconds", 10),
            timeout: secs("timeoutSeconds", 1),
            failure_threshold: v["failureThreshold"].as_u64().unwrap_or(3) as u32,
        })
    }

    /// kubelet's HTTP probe: success is a status in 200..400 within the timeout.
    pub async fn run_once(&self, port: u16) -> Result<(), String> {
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .user_agent("kube-probe/1.34")
            .build()
            .unwrap();
        match http
            .get(format!("http://127.0.0.1:{port}{}", self.path))
            .send()
            .await
        {
            Ok(r) if (200..400).contains(&r.status().as_u16()) => Ok(()),
            Ok(r) => Err(format!("HTTP probe failed with statuscode: {}", r.status())),
            Err(e) => Err(format!("Get {}: {e}", self.path)),
        }
    }
}

/// The pod template of the rendered StatefulSet, as kubelet reads it.
pub struct PodTemplate {
    pub handler: String,
    pub grace_period: i64,
    labels: HashMap<String, String>,
    run_as_user: i64,
    run_as_group: i64,
    fs_group: i64,
    fs_group_on_root_mismatch: bool,
    seccomp_runtime_default: bool,
    container: Value,
    /// ConfigMap volumes by volume name: key -> content.
    config_maps: HashMap<String, HashMap<String, String>>,
    pub claim_name: String,
    pub image: String,
    pub startup: Option<Probe>,
    pub readiness: Probe,
    pub liveness: Probe,
    pub memory_limit: i64,
}

impl PodTemplate {
    /// `runtime_class` is the rendered RuntimeClass that `runtimeClassName` names.
    pub fn from_render(r: &Rendered, runtime_class: &Value) -> PodTemplate {
        let sts = r.statefulset();
        let pod = &sts["spec"]["template"]["spec"];
        assert_eq!(
            pod["runtimeClassName"], runtime_class["metadata"]["name"],
            "the pods name the RuntimeClass"
        );
        let sc = &pod["securityContext"];
        let c = &pod["containers"][0];
        assert_eq!(pod["containers"].as_array().unwrap().len(), 1);
        assert!(
            pod["initContainers"].is_null(),
            "init containers are not emulated"
        );
        let mut config_maps = HashMap::new();
        for v in pod["volumes"].as_array().unwrap() {
            let name = v["configMap"]["name"]
                .as_str()
                .expect("configMap volumes only");
            let data = r.one("ConfigMap", name)["data"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            config_maps.insert(v["name"].as_str().unwrap().to_owned(), data);
        }
        let labels = sts["spec"]["template"]["metadata"]["labels"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        PodTemplate {
            handler: runtime_class["handler"].as_str().unwrap().to_owned(),
            grace_period: pod["terminationGracePeriodSeconds"].as_i64().unwrap_or(30),
            labels,
            run_as_user: sc["runAsUser"].as_i64().unwrap(),
            run_as_group: sc["runAsGroup"].as_i64().unwrap(),
            fs_group: sc["fsGroup"].as_i64().unwrap(),
            fs_group_on_root_mismatch: sc["fsGroupChangePolicy"] == "OnRootMismatch",
            seccomp_runtime_default: sc["seccompProfile"]["type"] == "RuntimeDefault",
            config_maps,
            claim_name: sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_owned(),
            image: c["image"].as_str().unwrap().to_owned(),
            startup: Probe::from(&c["startupProbe"]),
            readiness: Probe::from(&c["readinessProbe"]).expect("a readinessProbe"),
            liveness: Probe::from(&c["livenessProbe"]).expect("a livenessProbe"),
            memory_limit: quantity_bytes(c["resources"]["limits"]["memory"].as_str().unwrap()),
            container: c.clone(),
        }
    }

    /// This template with the container's variable `name` set to `value` (as an overlay
    /// would): e.g. a collector's address that only this node can reach.
    pub fn with_env(mut self, name: &str, value: &str) -> PodTemplate {
        let env = self.container["env"].as_array_mut().unwrap();
        let var = env.iter_mut().find(|e| e["name"] == name);
        let var = var.unwrap_or_else(|| panic!("the template sets no {name}"));
        *var = serde_json::json!({"name": name, "value": value});
        self
    }
}

/// Kubernetes' dependent variables: `$(NAME)` becomes the value of `NAME` if it is defined
/// earlier in the list, `$$` is a literal `$`, and anything else is kept as written.
pub fn expand_env(value: &str, earlier: &[v1::KeyValue]) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some((name, after)) = rest
            .strip_prefix("$(")
            .and_then(|r| r.split_once(')'))
            .filter(|(name, _)| earlier.iter().any(|e| e.key == *name))
        {
            let found = earlier.iter().rev().find(|e| e.key == name).unwrap();
            out.push_str(&found.value);
            rest = after;
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

/// One replica's pod on the node: its sandbox, its current container and its claim.
pub struct Pod {
    pub name: String,
    uid: String,
    pub port: u16,
    pub claim: PathBuf,
    pod_dir: PathBuf,
    pub sandbox: String,
    pub container: String,
    attempt: u32,
}

/// Why a pod never became ready: everything a person would look at, in one message.
pub fn diagnose(
    node: &Node,
    pod: &Pod,
    status: Option<&v1::ContainerStatus>,
    what: &str,
) -> String {
    let log = std::fs::read_to_string(pod.log_path()).unwrap_or_default();
    let state = status.map_or_else(String::new, |s| {
        format!(
            "state {:?}, exit code {}, reason {:?}, message {:?}",
            v1::ContainerState::try_from(s.state).unwrap(),
            s.exit_code,
            s.reason,
            s.message
        )
    });
    // The kernel names the container's memory cgroup when it kills for the limit.
    let dmesg = std::process::Command::new("dmesg").output();
    let oom_kills: Vec<String> = dmesg
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("oom-kill") && l.contains(&pod.container))
        .map(str::to_owned)
        .collect();
    let hint = match (status.map(|s| s.exit_code), oom_kills.is_empty()) {
        (Some(137), false) => format!(
            "\nOOM-killed by the kernel at the cgroup memory limit \
             (resources.limits.memory):\n{}",
            oom_kills.join("\n")
        ),
        (Some(137), true) => "\n(exit code 137 without an OOM kill in the kernel log: \
                              containerd-shim-spin ends a Spin app that fails to start that way; \
                              its error is in containerd's log below)"
            .to_owned(),
        _ => String::new(),
    };
    format!(
        "{}: {what}\ncontainer {state}{hint}\n--- container log ({}):\n{log}\n--- containerd log:\n{}",
        pod.name,
        pod.log_path().display(),
        node.log_about(&pod.container)
    )
}

impl Pod {
    fn log_path(&self) -> PathBuf {
        self.pod_dir
            .join("logs")
            .join(format!("app-wasm/{}.log", self.attempt))
    }
}

/// The kubelet stand-in for one node.
pub struct Kubelet<'a> {
    pub node: &'a Node,
    pub template: &'a PodTemplate,
}

impl Kubelet<'_> {
    /// Everything kubelet does before the probes: volumes, sandbox, container.
    pub async fn run_pod(&self, ordinal: usize, port: u16) -> Pod {
        let name = format!("app-wasm-{ordinal}");
        let uid = format!("{}-0000-4000-8000-{ordinal:012x}", crate::node::run_id());
        let pod_dir = self.node.dir().join("pods").join(&uid);
        std::fs::create_dir_all(pod_dir.join("logs")).unwrap();
        // The claim: a fresh volume is root's, as a provisioner creates it.
        let claim = self
            .node
            .dir()
            .join("volumes")
            .join(format!("{}-{name}", self.template.claim_name));
        std::fs::create_dir_all(&claim).unwrap();
        let mut pod = Pod {
            name,
            uid,
            port,
            claim,
            pod_dir,
            sandbox: String::new(),
            container: String::new(),
            attempt: 0,
        };
        self.apply_fs_group(&pod.claim);
        pod.sandbox = self.run_sandbox(&pod).await;
        pod.container = self.create_and_start(&pod).await;
        pod
    }

    /// fsGroup: the volume's files belong to the group, group-writable, setgid on dirs; with
    /// `OnRootMismatch` only when the volume's root does not match already.
    fn apply_fs_group(&self, claim: &Path) {
        let gid = self.template.fs_group as u32;
        let root = std::fs::metadata(claim).unwrap();
        let matches = root.gid() == gid && root.mode() & 0o2070 == 0o2070;
        if self.template.fs_group_on_root_mismatch && matches {
            return;
        }
        fn walk(p: &Path, gid: u32) {
            let meta = std::fs::symlink_metadata(p).unwrap();
            std::os::unix::fs::lchown(p, None, Some(gid)).unwrap();
            if meta.is_dir() {
                let mode = meta.mode() | 0o2070;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode & 0o7777))
                    .unwrap();
                for e in std::fs::read_dir(p).unwrap() {
                    walk(&e.unwrap().path(), gid);
                }
            } else if meta.is_file() {
                let mode = meta.mode() | 0o060;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode & 0o7777))
                    .unwrap();
            }
        }
        walk(claim, gid);
    }

    fn metadata_labels(&self, pod: &Pod) -> HashMap<String, String> {
        let mut labels = self.template.labels.clone();
        labels.insert(
            "statefulset.kubernetes.io/pod-name".into(),
            pod.name.clone(),
        );
        labels.insert("io.kubernetes.pod.name".into(), pod.name.clone());
        labels.insert("io.kubernetes.pod.namespace".into(), NAMESPACE.into());
        labels.insert("io.kubernetes.pod.uid".into(), pod.uid.clone());
        labels
    }

    fn seccomp(&self) -> Option<SecurityProfile> {
        self.template
            .seccomp_runtime_default
            .then(|| SecurityProfile {
                profile_type: v1::security_profile::ProfileType::RuntimeDefault as i32,
                localhost_ref: String::new(),
            })
    }

    fn cgroup_parent(&self, pod: &Pod) -> String {
        // kubelet's cgroupfs layout for a Burstable pod (requests below limits).
        format!("/kubepods/burstable/pod{}", pod.uid)
    }

    async fn run_sandbox(&self, pod: &Pod) -> String {
        let t = self.template;
        let config = v1::PodSandboxConfig {
            metadata: Some(v1::PodSandboxMetadata {
                name: pod.name.clone(),
                uid: pod.uid.clone(),
                namespace: NAMESPACE.into(),
                attempt: 0,
            }),
            hostname: pod.name.clone(),
            log_directory: pod.pod_dir.join("logs").to_string_lossy().into_owned(),
            labels: self.metadata_labels(pod),
            linux: Some(v1::LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent(pod),
                security_context: Some(v1::LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces()),
                    run_as_user: Some(Int64Value {
                        value: t.run_as_user,
                    }),
                    run_as_group: Some(Int64Value {
                        value: t.run_as_group,
                    }),
                    supplemental_groups: vec![t.fs_group],
                    seccomp: self.seccomp(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let resp = self
            .node
            .runtime
            .clone()
            .run_pod_sandbox(v1::RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: t.handler.clone(),
            })
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "RunPodSandbox {} with handler {:?}: {e}\n--- containerd log:\n{}",
                    pod.name,
                    t.handler,
                    self.node.log_about("")
                )
            });
        resp.into_inner().pod_sandbox_id
    }

    fn sandbox_config(&self, pod: &Pod) -> v1::PodSandboxConfig {
        v1::PodSandboxConfig {
            metadata: Some(v1::PodSandboxMetadata {
                name: pod.name.clone(),
                uid: pod.uid.clone(),
                namespace: NAMESPACE.into(),
                attempt: 0,
            }),
            log_directory: pod.pod_dir.join("logs").to_string_lossy().into_owned(),
            ..Default::default()
        }
    }

    /// The container's env, as kubelet resolves it (fieldRefs, and `$(VAR)` of a variable
    /// defined earlier in the list); the listen address moves to `port`.
    fn envs(&self, pod: &Pod) -> Vec<v1::KeyValue> {
        let mut envs: Vec<v1::KeyValue> = Vec::new();
        for e in self.template.container["env"].as_array().unwrap() {
            let key = e["name"].as_str().unwrap().to_owned();
            let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.name") => pod.name.clone(),
                Some("metadata.namespace") => NAMESPACE.into(),
                Some("metadata.uid") => pod.uid.clone(),
                Some(other) => panic!("env from {other} is not emulated"),
                None if key == "SPIN_HTTP_LISTEN_ADDR" => format!("127.0.0.1:{}", pod.port),
                None => expand_env(e["value"].as_str().unwrap(), &envs),
            };
            envs.push(v1::KeyValue { key, value });
        }
        // kubelet always adds the API server's address, enableServiceLinks or not.
        for (key, value) in [
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
            ("KUBERNETES_PORT", "tcp://10.96.0.1:443"),
        ] {
            envs.push(v1::KeyValue {
                key: key.into(),
                value: value.into(),
            });
        }
        envs
    }

    /// The container's volumeMounts, plus the two files kubelet always mounts.
    fn mounts(&self, pod: &Pod) -> Vec<v1::Mount> {
        let mut mounts = Vec::new();
        for m in self.template.container["volumeMounts"].as_array().unwrap() {
            let volume = m["name"].as_str().unwrap();
            let host_path = if volume == self.template.claim_name {
                pod.claim.clone()
            } else {
                // A ConfigMap volume: kubelet writes its keys into a dir of the pod; a subPath
                // mount binds the one file.
                let dir = pod.pod_dir.join("volumes/configmap").join(volume);
                std::fs::create_dir_all(&dir).unwrap();
                for (key, content) in &self.template.config_maps[volume] {
                    std::fs::write(dir.join(key), content).unwrap();
                    std::fs::set_permissions(dir.join(key), std::fs::Permissions::from_mode(0o644))
                        .unwrap();
                }
                match m["subPath"].as_str() {
                    Some(key) => dir.join(key),
                    None => dir,
                }
            };
            mounts.push(v1::Mount {
                container_path: m["mountPath"].as_str().unwrap().to_owned(),
                host_path: host_path.to_string_lossy().into_owned(),
                readonly: m["readOnly"].as_bool().unwrap_or(false),
                ..Default::default()
            });
        }
        let hosts = pod.pod_dir.join("etc-hosts");
        std::fs::copy("/etc/hosts", &hosts).unwrap();
        let termination_log = pod.pod_dir.join(format!("termination-log-{}", pod.attempt));
        std::fs::write(&termination_log, "").unwrap();
        std::fs::set_permissions(&termination_log, std::fs::Permissions::from_mode(0o666)).unwrap();
        for (path, host) in [
            ("/etc/hosts", hosts),
            ("/dev/termination-log", termination_log),
        ] {
            mounts.push(v1::Mount {
                container_path: path.into(),
                host_path: host.to_string_lossy().into_owned(),
                ..Default::default()
            });
        }
        mounts
    }

    /// `resources` as kubelet turns them into cgroup settings (cgroup v1 names).
    fn resources(&self) -> v1::LinuxContainerResources {
        let r = &self.template.container["resources"];
        let cpu_request = quantity_millicpu(r["requests"]["cpu"].as_str().unwrap());
        let cpu_limit = quantity_millicpu(r["limits"]["cpu"].as_str().unwrap());
        let memory_request = quantity_bytes(r["requests"]["memory"].as_str().unwrap());
        let period = 100_000;
        // Burstable: 1000 - 1000 * request / capacity, within [2, 999].
        let capacity = machine_memory_bytes();
        let oom_score_adj = (1000 - 1000 * memory_request / capacity).clamp(2, 999);
        v1::LinuxContainerResources {
            cpu_period: period,
            cpu_quota: cpu_limit * period / 1000,
            cpu_shares: (cpu_request * 1024 / 1000).max(2),
            memory_limit_in_bytes: self.template.memory_limit,
            oom_score_adj,
            ..Default::default()
        }
    }

    fn security_context(&self) -> v1::LinuxContainerSecurityContext {
        let t = self.template;
        let sc = &t.container["securityContext"];
        let caps = |key: &str| -> Vec<String> {
            sc["capabilities"][key]
                .as_array()
                .map(|a| a.iter().map(|c| c.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default()
        };
        assert!(
            sc["runAsUser"].is_null() && sc["runAsGroup"].is_null(),
            "pod-level ids only"
        );
        v1::LinuxContainerSecurityContext {
            capabilities: Some(v1::Capability {
                add_capabilities: caps("add"),
                drop_capabilities: caps("drop"),
                ..Default::default()
            }),
            privileged: sc["privileged"].as_bool().unwrap_or(false),
            namespace_options: Some(namespaces()),
            run_as_user: Some(Int64Value {
                value: t.run_as_user,
            }),
            run_as_group: Some(Int64Value {
                value: t.run_as_group,
            }),
            readonly_rootfs: sc["readOnlyRootFilesystem"].as_bool().unwrap_or(false),
            supplemental_groups: vec![t.fs_group],
            no_new_privs: sc["allowPrivilegeEscalation"] == false,
            seccomp: self.seccomp(),
            ..Default::default()
        }
    }

    async fn create_and_start(&self, pod: &Pod) -> String {
        let c = &self.template.container;
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default()
        };
        let mut labels = self.metadata_labels(pod);
        labels.insert(
            "io.kubernetes.container.name".into(),
            c["name"].as_str().unwrap().into(),
        );
        let config = v1::ContainerConfig {
            metadata: Some(v1::ContainerMetadata {
                name: c["name"].as_str().unwrap().to_owned(),
                attempt: pod.attempt,
            }),
            image: Some(v1::ImageSpec {
                image: self.template.image.clone(),
                ..Default::default()
            }),
            command: strings(&c["command"]),
            args: strings(&c["args"]),
            envs: self.envs(pod),
            mounts: self.mounts(pod),
            labels,
            log_path: format!("{}/{}.log", c["name"].as_str().unwrap(), pod.attempt),
            linux: Some(v1::LinuxContainerConfig {
                resources: Some(self.resources()),
                security_context: Some(self.security_context()),
            }),
            ..Default::default()
        };
        let mut runtime = self.node.runtime.clone();
        let id = runtime
            .create_container(v1::CreateContainerRequest {
                pod_sandbox_id: pod.sandbox.clone(),
                config: Some(config),
                sandbox_config: Some(self.sandbox_config(pod)),
            })
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "CreateContainer {}: {e}\n{}",
                    pod.name,
                    self.node.log_about("")
                )
            })
            .into_inner()
            .container_id;
        runtime
            .start_container(v1::StartContainerRequest {
                container_id: id.clone(),
            })
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "StartContainer {}: {e}\n{}",
                    pod.name,
                    self.node.log_about(&id)
                )
            });
        id
    }

    pub async fn status(&self, pod: &Pod) -> (v1::ContainerStatus, HashMap<String, String>) {
        let resp = self
            .node
            .runtime
            .clone()
            .container_status(v1::ContainerStatusRequest {
                container_id: pod.container.clone(),
                verbose: true,
            })
            .await
            .unwrap()
            .into_inner();
        (resp.status.unwrap(), resp.info)
    }

    /// `rounds` rounds of `n` concurrent `GET /`, each answered 200; the visits recorded. If
    /// any is not, the pod is diagnosed: a container killed under load (an OOM kill) says so.
    pub async fn visits_or_diagnose(&self, pod: &Pod, n: usize, rounds: usize) -> usize {
        let http = crate::support::client();
        let url = format!("http://127.0.0.1:{}/", pod.port);
        for round in 0..rounds {
            let answers = futures::future::join_all((0..n).map(|_| http.get(&url).send())).await;
            let failed: Vec<String> = answers
                .into_iter()
                .filter_map(|a| match a {
                    Ok(r) if r.status() == 200 => None,
                    Ok(r) => Some(format!("HTTP {}", r.status())),
                    Err(e) => Some(format!("{e:?}")),
                })
                .collect();
            if let Some(first) = failed.first() {
                // containerd notices a killed shim a moment after its clients do.
                let deadline = Instant::now() + Duration::from_secs(5);
                let mut status = self.status(pod).await.0;
                while status.state == v1::ContainerState::ContainerRunning as i32
                    && Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    status = self.status(pod).await.0;
                }
                panic!(
                    "{}",
                    diagnose(
                        self.node,
                        pod,
                        Some(&status),
                        &format!(
                            "round {round} of {n} concurrent visits: {} failed, the first with {first}",
                            failed.len()
                        )
                    )
                );
            }
        }
        n * rounds
    }

    /// The container's process on the node.
    pub async fn pid(&self, pod: &Pod) -> u32 {
        let (_, info) = self.status(pod).await;
        let info: Value = serde_json::from_str(&info["info"]).unwrap();
        info["pid"].as_u64().expect("a running container has a pid") as u32
    }

    /// One probe, checked the way kubelet's prober does: the container must still run.
    async fn probe(&self, pod: &Pod, probe: &Probe) -> Result<(), String> {
        let (status, _) = self.status(pod).await;
        if status.state != v1::ContainerState::ContainerRunning as i32 {
            panic!(
                "{}",
                diagnose(
                    self.node,
                    pod,
                    Some(&status),
                    "the container is not running"
                )
            );
        }
        // The probes name the container port; on the node's network it is the pod's port.
        probe.run_once(pod.port).await
    }

    /// Runs `probe` every period until it succeeds (returns when) or fails `threshold`
    /// times in a row (panics with the container's log and containerd's errors).
    async fn until_success(&self, pod: &Pod, probe: &Probe, what: &str) -> Instant {
        let mut failures = 0;
        loop {
            let tick = Instant::now();
            let last = match self.probe(pod, probe).await {
                Ok(()) => return Instant::now(),
                Err(e) => e,
            };
            failures += 1;
            if failures >= probe.failure_threshold {
                panic!(
                    "{}",
                    diagnose(
                        self.node,
                        pod,
                        Some(&self.status(pod).await.0),
                        &format!("{what} probe failed {failures} times in a row: {last}")
                    )
                );
            }
            tokio::time::sleep(probe.period.saturating_sub(tick.elapsed())).await;
        }
    }

    /// Startup probe until it succeeds, then readiness until the pod is Ready.
    pub async fn until_ready(&self, pod: &Pod) -> Instant {
        if let Some(startup) = &self.template.startup {
            self.until_success(pod, startup, "startup").await;
        }
        // kubelet keeps probing a pod that is not ready; here, once started, a pod that
        // fails readiness `failureThreshold` times is a failure of the tier.
        self.until_success(pod, &self.template.readiness, "readiness")
            .await
    }

    /// kubelet's restart of one container: StopContainer with the grace period, remove it,
    /// a new attempt in the same sandbox on the same claim. Returns how long the stop took.
    pub async fn restart(&self, pod: &mut Pod) -> Duration {
        let mut runtime = self.node.runtime.clone();
        let stopping = Instant::now();
        runtime
            .stop_container(v1::StopContainerRequest {
                container_id: pod.container.clone(),
                timeout: self.template.grace_period,
            })
            .await
            .unwrap();
        let stopped = stopping.elapsed();
        let (status, _) = self.status(pod).await;
        assert_eq!(status.state, v1::ContainerState::ContainerExited as i32);
        self.replace_exited(pod).await;
        stopped
    }

    /// kubelet after a container died by itself (`restartPolicy: Always`): once CRI reports
    /// it exited, remove it and start a new attempt in the same sandbox on the same claim.
    /// Returns the exit code CRI reported.
    pub async fn restart_after_exit(&self, pod: &mut Pod) -> i32 {
        // containerd notices a killed shim a moment after its clients do.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut status = self.status(pod).await.0;
        while status.state != v1::ContainerState::ContainerExited as i32 {
            assert!(
                Instant::now() < deadline,
                "{}: never reported exited",
                pod.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            status = self.status(pod).await.0;
        }
        self.replace_exited(pod).await;
        status.exit_code
    }

    /// kubelet's next attempt after a container exited: remove it, create and start a new one
    /// in the same sandbox on the same claim.
    async fn replace_exited(&self, pod: &mut Pod) {
        let mut runtime = self.node.runtime.clone();
        runtime
            .remove_container(v1::RemoveContainerRequest {
                container_id: pod.container.clone(),
            })
            .await
            .unwrap();
        pod.attempt += 1;
        pod.container = self.create_and_start(pod).await;
    }

    /// kubelet's pod deletion: stop and remove the sandbox (and its containers).
    pub async fn remove(&self, pod: &Pod) {
        let mut runtime = self.node.runtime.clone();
        let _ = runtime
            .stop_container(v1::StopContainerRequest {
                container_id: pod.container.clone(),
                timeout: self.template.grace_period,
            })
            .await;
        let _ = runtime
            .stop_pod_sandbox(v1::StopPodSandboxRequest {
                pod_sandbox_id: pod.sandbox.clone(),
            })
            .await;
        let _ = runtime
            .remove_pod_sandbox(v1::RemovePodSandboxRequest {
                pod_sandbox_id: pod.sandbox.clone(),
            })
            .await;
    }
}

/// The node's network (no CNI here), the pod's IPC, the container's own PIDs (kubelet's
/// default without shareProcessNamespace).
fn namespaces() -> v1::NamespaceOption {
    v1::NamespaceOption {
        network: v1::NamespaceMode::Node as i32,
        pid: v1::NamespaceMode::Container as i32,
        ipc: v1::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// "50m" or "0.5" or "1" CPU, in millicores.
fn quantity_millicpu(q: &str) -> i64 {
    match q.strip_suffix('m') {
        Some(m) => m.parse().unwrap(),
        None => (q.parse::<f64>().unwrap() * 1000.0) as i64,
    }
}

/// "128Mi", "1Gi", "500M" or plain bytes.
pub fn quantity_bytes(q: &str) -> i64 {
    let units = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("K", 1000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    for (suffix, factor) in units {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<i64>().unwrap() * factor;
        }
    }
    q.parse().unwrap()
}

fn machine_memory_bytes() -> i64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: i64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .unwrap();
    kib * 1024
}

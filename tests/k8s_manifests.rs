//! Cross-references in the rendered `k8s/` base that no schema validator checks: selectors,
//! serviceName, runtimeClassName, ports, volumes, probes, and the runtime config's store path.
//! Renders with `kubectl kustomize` (KUBECTL or `kubectl` on PATH; CI installs it).

mod support;

use std::collections::BTreeMap;

use serde_json::Value;
use support::k8s::{labels, Rendered};
use support::repo_root;

/// A selector matches the pods when every one of its labels is on them (and it has some).
fn assert_selects_pods(selector: &Value, pods: &BTreeMap<String, String>, what: &str) {
    let selector = labels(selector);
    assert!(
        !selector.is_empty(),
        "{what}: empty selector would select every pod"
    );
    for (k, v) in &selector {
        assert_eq!(
            pods.get(k),
            Some(v),
            "{what}: selector {k}={v} is not on the pods {pods:?}"
        );
    }
}

fn port_names(container: &Value) -> Vec<(String, u64)> {
    container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// A Service/probe/policy port reference: a container port's name or number.
fn assert_is_container_port(port: &Value, container: &Value, what: &str) {
    let ports = port_names(container);
    let ok = match port {
        Value::String(name) => ports.iter().any(|(n, _)| n == name),
        Value::Number(n) => ports.iter().any(|(_, p)| Some(*p) == n.as_u64()),
        _ => false,
    };
    assert!(ok, "{what}: port {port} is not a container port {ports:?}");
}

#[test]
#[cfg_attr(
    no_kubectl,
    ignore = "needs kubectl >= 1.25: .ci/install-k8s-tools, or KUBECTL"
)]
fn every_selector_selects_the_statefulset_pods() {
    let Some(r) = Rendered::load() else { return };
    let pods = r.pod_labels();
    assert_selects_pods(
        &r.statefulset()["spec"]["selector"]["matchLabels"],
        &pods,
        "StatefulSet",
    );
    for svc in r.all("Service") {
        assert_selects_pods(
            &svc["spec"]["selector"],
            &pods,
            &format!("Service {}", svc["metadata"]["name"]),
        );
    }
    for kind in ["PodDisruptionBudget"] {
        for o in r.all(kind) {
            assert_selects_pods(&o["spec"]["selector"]["matchLabels"], &pods, kind);
        }
    }
    for np in r.all("NetworkPolicy") {
        assert_selects_pods(
            &np["spec"]["podSelector"]["matchLabels"],
            &pods,
            "NetworkPolicy",
        );
    }
}

#[test]
#[cfg_attr(
    no_kubectl,
    ignore = "needs kubectl >= 1.25: .ci/install-k8s-tools, or KUBECTL"
)]
fn statefulset_names_a_headless_service_and_a_spin_runtime_class() {
    let Some(r) = Rendered::load() else { return };
    let spec = &r.statefulset()["spec"];
    let governing = r.one("Service", spec["serviceName"].as_str().unwrap());
    assert_eq!(
        governing["spec"]["clusterIP"], "None",
        "serviceName must be headless"
    );
    // Cluster-wide objects stay out of the base: other apps share them, and
    // `kubectl delete -k k8s/` must not remove them.
    for o in &r.0 {
        assert!(
            !o["metadata"]["namespace"].is_string() && o["kind"] != "RuntimeClass",
            "{} in the base",
            o["kind"]
        );
    }
    let Some(optional) = Rendered::load_dir("k8s/runtimeclass") else {
        return;
    };
    let class = optional.one(
        "RuntimeClass",
        spec["template"]["spec"]["runtimeClassName"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        class["handler"], "spin-v2",
        "runtime-class-manager's handler for containerd-shim-spin"
    );
    // The containerd snippets in k8s/README.md register a runtime of that name.
    let readme = std::fs::read_to_string(repo_root().join("k8s/README.md")).unwrap();
    for table in [
        "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.spin-v2]",
        "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.spin-v2]",
    ] {
        assert!(readme.contains(table), "k8s/README.md lacks {table}");
    }
    assert_eq!(spec["replicas"], 3);
    assert_eq!(spec["podManagementPolicy"], "Parallel");
}

#[test]
#[cfg_attr(
    no_kubectl,
    ignore = "needs kubectl >= 1.25: .ci/install-k8s-tools, or KUBECTL"
)]
fn every_service_and_policy_port_is_a_container_port() {
    let Some(r) = Rendered::load() else { return };
    let container = r.container();
    for svc in r.all("Service") {
        for port in svc["spec"]["ports"].as_array().unwrap() {
            assert_is_container_port(&port["targetPort"], container, "Service targetPort");
        }
    }
    let front = r.one("Service", "app-wasm");
    assert_eq!(front["spec"]["type"], "LoadBalancer");
    assert_eq!(front["spec"]["ports"][0]["port"], 8080);
    for np in r.all("NetworkPolicy") {
        for rule in np["spec"]["ingress"].as_array().unwrap() {
            for port in rule["ports"].as_array().unwrap() {
                assert_is_container_port(&port["port"], container, "NetworkPolicy port");
            }
        }
        assert_eq!(np["spec"]["egress"], serde_json::json!([]), "no egress");
    }
    // The shim's listen address must be the port the Services send to.
    let listen = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "SPIN_HTTP_LISTEN_ADDR")
        .map(|e| e["value"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| "0.0.0.0:80".into());
    let listen_port: u64 = listen.rsplit(':').next().unwrap().parse().unwrap();
    assert!(port_names(container)
        .iter()
        .any(|(n, p)| n == "http" && *p == listen_port));
    // The headless Service's names resolve to pod IPs: its port is the one the pods serve.
    let headless = r.one("Service", "app-wasm-headless");
    assert_eq!(headless["spec"]["ports"][0]["port"], listen_port);
}

#[test]
#[cfg_attr(
    no_kubectl,
    ignore = "needs kubectl >= 1.25: .ci/install-k8s-tools, or KUBECTL"
)]
fn probes_use_health_routes_never_the_visit_route() {
    let Some(r) = Rendered::load() else { return };
    let container = r.container();
    for (probe, path) in [
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_ne!(
            get["path"], "/",
            "{probe} would record a visit every period"
        );
        assert_is_container_port(&get["port"], container, probe);
    }
}

#[test]
#[cfg_attr(
    no_kubectl,
    ignore = "needs kubectl >= 1.25: .ci/install-k8s-tools, or KUBECTL"
)]
fn every_volume_mount_is_backed_and_the_store_lives_on_the_claim() {
    let Some(r) = Rendered::load() else { return };
    let pod = &r.statefulset()["spec"]["template"]["spec"];
    let claims: Vec<&Value> = r.statefulset()["spec"]["volumeClaimTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(claims.len(), 1);
    let claim = claims[0];
    assert_eq!(claim["metadata"]["name"], "visits-volume-template");
    assert_eq!(
        claim["spec"]["accessModes"],
        serde_json::json!(["ReadWriteOnce"])
    );
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "128Mi");

    let volumes = pod["volumes"].as_array().unwrap();
    let mut claim_mount = None;
    let mut config_mount = None;
    for mount in r.container()["volumeMounts"].as_array().unwrap() {
        let name = mount["name"].as_str().unwrap();
        if name == "visits-volume-template" {
            claim_mount = Some(mount["mountPath"].as_str().unwrap().to_owned());
            continue;
        }
        let volume = volumes
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("volumeMount {name} has no volume or claim template"));
        if let Some(cm) = volume["configMap"]["name"].as_str() {
            let config = r.one("ConfigMap", cm);
            let key = mount["subPath"]
                .as_str()
                .expect("runtime config mounted as one file");
            config_mount = Some((
                mount["mountPath"].as_str().unwrap().to_owned(),
                config["data"][key].clone(),
            ));
        }
    }
    let claim_mount = claim_mount.expect("the claim is mounted");
    let (config_path, config) = config_mount.expect("a ConfigMap file is mounted");
    assert_eq!(
        config_path, "/runtime-config.toml",
        "where containerd-shim-spin reads it"
    );
    // The ConfigMap carries k8s/runtime-config.toml verbatim: the file the Spin tests use.
    let source = std::fs::read_to_string(repo_root().join("k8s/runtime-config.toml")).unwrap();
    assert_eq!(config.as_str().unwrap(), source);
    // Everything Spin writes lies on the claim: the root is read-only. state_dir holds the
    // default key-value store Spin creates at start.
    for key in ["state_dir = ", "path = "] {
        let path = source
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .unwrap_or_else(|| panic!("the runtime config sets {key}"))
            .trim_matches('"');
        assert!(
            path.starts_with(&format!("{}/", claim_mount.trim_end_matches('/'))),
            "{key}{path} is not on the claim mounted at {claim_mount}"
        );
    }
}

#[test]
#[cfg_attr(
    no_kubectl,
    ignore = "needs kubectl >= 1.25: .ci/install-k8s-tools, or KUBECTL"
)]
fn pods_run_locked_down() {
    let Some(r) = Rendered::load() else { return };
    let pod = &r.statefulset()["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["automountServiceAccountToken"], false);
    let sc = &r.container()["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    // Non-empty, or the shim applies no capability set at all (k8s/README.md).
    assert_eq!(
        sc["capabilities"]["add"],
        serde_json::json!(["NET_BIND_SERVICE"])
    );
    assert_eq!(
        pod["securityContext"]["fsGroupChangePolicy"],
        "OnRootMismatch"
    );
    let limits = &r.container()["resources"]["limits"];
    assert!(limits["memory"].is_string() && limits["cpu"].is_string());
}

/// `overlays/monitoring` (the base plus `k8s/monitoring`): the PodMonitor and the annotations
/// scrape each pod's `/metrics` on the container's http port, its NetworkPolicy admits that
/// port, and the base is otherwise unchanged.
#[test]
#[cfg_attr(
    no_kubectl,
    ignore = "needs kubectl >= 1.25: .ci/install-k8s-tools, or KUBECTL"
)]
fn the_monitoring_component_scrapes_every_pods_metrics_port() {
    let (Some(base), Some(r)) = (Rendered::load(), Rendered::load_dir("overlays/monitoring"))
    else {
        return;
    };
    let container = r.container();
    let pods = r.pod_labels();
    let monitor = r.one("PodMonitor", "app-wasm");
    assert_selects_pods(
        &monitor["spec"]["selector"]["matchLabels"],
        &pods,
        "PodMonitor",
    );
    let endpoints = monitor["spec"]["podMetricsEndpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["path"], "/metrics");
    assert_is_container_port(&endpoints[0]["port"], container, "PodMonitor port");

    let annotations = &r.statefulset()["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    let port: u64 = annotations["prometheus.io/port"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        port_names(container).contains(&("http".to_owned(), port)),
        "prometheus.io/port {port} is not the http port"
    );

    let policy = r.one("NetworkPolicy", "app-wasm-prometheus");
    assert_selects_pods(
        &policy["spec"]["podSelector"]["matchLabels"],
        &pods,
        "policy",
    );
    for rule in policy["spec"]["ingress"].as_array().unwrap() {
        assert!(
            rule["from"].as_array().is_some_and(|f| !f.is_empty()),
            "{rule}"
        );
        for port in rule["ports"].as_array().unwrap() {
            assert_is_container_port(&port["port"], container, "scrape policy port");
        }
    }
    // Nothing else changed: the same objects as the base, plus the two.
    let names = |r: &Rendered| -> Vec<String> {
        r.0.iter()
            .map(|o| {
                let (kind, name) = (&o["kind"], &o["metadata"]["name"]);
                format!("{}/{}", kind.as_str().unwrap(), name.as_str().unwrap())
            })
            .collect()
    };
    let mut want = names(&base);
    want.extend([
        "PodMonitor/app-wasm".to_owned(),
        "NetworkPolicy/app-wasm-prometheus".to_owned(),
    ]);
    let (mut want, mut got) = (want, names(&r));
    want.sort();
    got.sort();
    assert_eq!(got, want);
}

/// `overlays/otel` (the base plus `k8s/otel`): the container gets Spin's OTLP variables, every
/// `$(VAR)` they use is defined earlier in the list (Kubernetes expands no other), and the one
/// egress policy it adds opens only the collector's OTLP/HTTP port and DNS.
#[test]
#[cfg_attr(
    no_kubectl,
    ignore = "needs kubectl >= 1.25: .ci/install-k8s-tools, or KUBECTL"
)]
fn the_otel_component_sets_spins_otlp_variables_and_opens_only_their_egress() {
    let Some(r) = Rendered::load_dir("overlays/otel") else {
        return;
    };
    let env = r.container()["env"].as_array().unwrap();
    let value = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
            .unwrap_or_else(|| panic!("no {name} in {env:?}"))
    };
    let endpoint = value("OTEL_EXPORTER_OTLP_ENDPOINT");
    assert!(
        endpoint.starts_with("http://") && endpoint.ends_with(":4318"),
        "{endpoint}"
    );
    assert_eq!(value("OTEL_EXPORTER_OTLP_PROTOCOL"), "http/protobuf");
    assert_eq!(value("OTEL_SERVICE_NAME"), "app-wasm");
    for (i, var) in env.iter().enumerate() {
        let Some(text) = var["value"].as_str() else {
            continue;
        };
        for reference in text.split("$(").skip(1) {
            let name = reference.split(')').next().unwrap();
            assert!(
                env[..i].iter().any(|e| e["name"] == name),
                "{} uses $({name}), which is not defined before it",
                var["name"]
            );
        }
    }
    let policy = r.one("NetworkPolicy", "app-wasm-otlp");
    assert_selects_pods(
        &policy["spec"]["podSelector"]["matchLabels"],
        &r.pod_labels(),
        "otlp",
    );
    assert_eq!(policy["spec"]["policyTypes"], serde_json::json!(["Egress"]));
    let mut ports: Vec<(u64, String)> = Vec::new();
    for rule in policy["spec"]["egress"].as_array().unwrap() {
        assert!(
            rule["to"].as_array().is_some_and(|t| !t.is_empty()),
            "{rule}"
        );
        for port in rule["ports"].as_array().unwrap() {
            let protocol = port["protocol"].as_str().unwrap().to_owned();
            ports.push((port["port"].as_u64().unwrap(), protocol));
        }
    }
    ports.sort();
    let want = [(53, "TCP"), (53, "UDP"), (4318, "TCP")].map(|(p, t)| (p, t.to_owned()));
    assert_eq!(ports, want);
    // The base's deny-all stays: it is still there, unchanged.
    let base = r.one("NetworkPolicy", "app-wasm");
    assert_eq!(base["spec"]["egress"], serde_json::json!([]));
}

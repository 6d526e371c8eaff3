#!/usr/bin/env python3
"""Side-by-side benchmark of app-wasm against the seed's FastAPI app and the runtime's ceiling.

Starts every contender itself on 127.0.0.1, drives it with wrk (bounded duration), stops it,
and prints one table; writes target/bench/results.json and docs/bench.svg. Run it through
bench/run, which installs wrk and FastAPI and builds what is measured.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "target/release/app-wasm")
APP = os.path.join(ROOT, "target/wasm32-wasip2/release/app_wasm.wasm")
HELLO = os.path.join(ROOT, "target/wasm32-wasip2/release/app_wasm_hello.wasm")
VENV = os.path.join(ROOT, "target/bench/venv")
# The Spin CLI the tests run (3.6.3, the Spin inside containerd-shim-spin 0.24.0), and the
# Kubernetes flavour (SQLite store) staged by k8s/image/build.sh.
SPIN = os.environ.get("SPIN_BIN", os.path.join(ROOT, "../shared/bin/spin"))
IMAGE = os.path.join(ROOT, "target/image")
LUA = os.path.join(ROOT, "bench/wrk-report.lua")
RECORD = b"2026-11-27T08:03:19.12345+03:00\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=60.0, proc=None):
    """Polls url until it answers 200; returns seconds waited."""
    start = time.perf_counter()
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.perf_counter() - start
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        if time.perf_counter() - start > timeout:
            raise RuntimeError(f"{url} did not answer within {timeout}s")
        time.sleep(0.001)


def manifest_limits():
    """The container's resources.limits in k8s/statefulset.yaml: (millicores, bytes)."""
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
    cpu = memory = None
    in_limits = False
    with open(os.path.join(ROOT, "k8s/statefulset.yaml")) as f:
        for line in f:
            key = line.strip()
            if key == "limits:":
                in_limits = True
            elif in_limits and key.startswith("cpu:"):
                v = key.split(":", 1)[1].strip().strip('"')
                cpu = int(v[:-1]) if v.endswith("m") else int(float(v) * 1000)
            elif in_limits and key.startswith("memory:"):
                v = key.split(":", 1)[1].strip().strip('"')
                memory = int(v[:-2]) * units[v[-2:]]
            elif in_limits and not key.startswith(("cpu", "memory")):
                in_limits = False
    assert cpu and memory, "limits.cpu and limits.memory in k8s/statefulset.yaml"
    return cpu, memory


class Cgroup:
    """A cgroup with a pod's cpu quota and memory limit (v1 or v2), as kubelet gives a
    container: the seed app's process runs in it, and its memory peak is read from it."""

    def __init__(self, name, millicores, memory):
        self.v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
        period = 100_000
        quota = millicores * period // 1000
        if self.v2:
            self.dirs = [f"/sys/fs/cgroup/{name}"]
            os.makedirs(self.dirs[0], exist_ok=True)
            self._write(self.dirs[0], "cpu.max", f"{quota} {period}")
            self._write(self.dirs[0], "memory.max", str(memory))
        else:
            self.dirs = [f"/sys/fs/cgroup/cpu/{name}", f"/sys/fs/cgroup/memory/{name}"]
            for d in self.dirs:
                os.makedirs(d, exist_ok=True)
            self._write(self.dirs[0], "cpu.cfs_period_us", str(period))
            self._write(self.dirs[0], "cpu.cfs_quota_us", str(quota))
            self._write(self.dirs[1], "memory.limit_in_bytes", str(memory))

    @staticmethod
    def _write(d, f, v):
        with open(os.path.join(d, f), "w") as fh:
            fh.write(v)

    def wrap(self, command):
        """`command`, started inside this cgroup (the shell joins it, then execs)."""
        joins = "; ".join(f"echo $$ > {d}/cgroup.procs" for d in self.dirs)
        return ["sh", "-c", f'{joins}; exec "$@"', "sh", *command]

    def peak_bytes(self):
        mem = self.dirs[-1]
        f = "memory.peak" if self.v2 else "memory.max_usage_in_bytes"
        with open(os.path.join(mem, f)) as fh:
            return int(fh.read())

    def remove(self):
        for d in self.dirs:
            try:
                os.rmdir(d)
            except OSError:
                pass


def tree_rss_kib(pid):
    """Resident memory of pid and all its descendants (uvicorn's workers), in KiB."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class Contender:
    def __init__(self, key, label, command, data_dir, env=None, cwd=None, ready="/",
                 cgroup=None):
        self.key, self.label, self.command = key, label, command
        self.data_dir, self.env, self.cwd, self.ready = data_dir, env, cwd, ready
        self.cgroup = cgroup
        self.port = free_port()
        self.proc = None

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        cmd = [a.replace("{port}", str(self.port)) for a in self.command]
        if self.cgroup:
            cmd = self.cgroup.wrap(cmd)
        env = dict(os.environ, **(self.env or {}))
        # As deployed: backtraces off. With RUST_BACKTRACE=1 every error value the runtimes
        # create on the normal path (wasmtime-wasi-http makes some per request) walks the
        # stack: 5% of the CPU in libgcc's unwinder for the hello component.
        for var in ["RUST_BACKTRACE", "RUST_LIB_BACKTRACE"]:
            env.pop(var, None)
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd, cwd=self.cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        wait_http(self.base + self.ready, proc=self.proc)
        return time.perf_counter() - started

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.cgroup:
            self.cgroup.remove()


def wrk(url, connections, seconds, rss_of=None, cgroup=None):
    threads = max(1, min(connections, 2))
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
           "--timeout", "5s", "-s", LUA, url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        if rss_of:
            peak = max(peak, tree_rss_kib(rss_of))
        time.sleep(0.1)
    out, err = proc.communicate()
    lines = [l for l in out.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError(f"wrk printed no report: {out} {err}")
    result = json.loads(lines[-1])
    if cgroup and rss_of:
        peak = cgroup.peak_bytes() // 1024  # what the limit applies to, page cache included
    result["peak_rss_kib"] = peak
    return result


def pod_contender(results, conn_levels, seconds, work):
    """The SQLite flavour as a pod runs it: containerd with its CRI plugin and
    containerd-shim-spin, one pod of the rendered StatefulSet started by the CRI tier's
    kubelet stand-in (tests/kubelet_cri, its ignored bench test), driven by wrk the same way.
    Memory is the pod's cgroup peak. Needs root and the CRI tier's tools."""
    if os.geteuid() != 0 or not shutil.which("containerd-shim-spin-v2"):
        print("not root or no containerd-shim-spin-v2: skipping the pod contender", file=sys.stderr)
        return
    out = os.path.join(work, "pod.json")
    env = dict(os.environ, APP_WASM_BENCH_POD_JSON=out, APP_WASM_BENCH_SECONDS=str(seconds),
               APP_WASM_BENCH_CONNS=",".join(map(str, conn_levels)))
    # --workspace: the same build as the README's test command, so nothing is rebuilt.
    cmd = ["cargo", "test", "-q", "--release", "--workspace", "--test", "kubelet_cri", "--",
           "--ignored", "--exact", "bench_one_pod_under_the_shim", "--nocapture"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    if done.returncode != 0 or not os.path.exists(out):
        print(f"the pod contender failed; skipping it:\n{done.stdout[-3000:]}", file=sys.stderr)
        return
    with open(out) as f:
        doc = json.load(f)
    for key, pod in doc["pods"].items():
        label = {"shim": "app-wasm SQLite, containerd-shim-spin pod",
                 "hello_pod": "hello-world, containerd-shim-spin pod (pod ceiling)"}[key]
        results["contenders"][key] = {"label": label, "class": "pod",
                                      "start_to_ready_ms": pod["start_to_ready_ms"]}
        for r in pod["runs"]:
            r["contender"] = key
            if r["connections"] != conn_levels[-1]:
                r["peak_rss_kib"] = 0  # like the others: memory at the top level only
            results["runs"].append(r)
            print_run(label, r)


def print_run(label, r):
    print(f"{label:<36} GET {r['path']:<8} c={r['connections']:<3} {r['rps']:>9.0f} req/s  "
          f"p50 {r['p50_us']/1000:.2f} ms  p99 {r['p99_us']/1000:.2f} ms  "
          f"p99.9 {r['p999_us']/1000:.2f} ms  errors {r['errors'] + r['non_2xx']}", flush=True)


def spin_contenders(data):
    """`spin up` on the same .wasm with the file store (the repo's spin.toml, data/ mounted
    writable), and on the SQLite flavour with the pods' runtime config, its store moved to a
    bench volume: what a user meets on a laptop, and what a pod runs (minus containerd)."""
    env = {"SPIN_DISABLE_TELEMETRY": "1"}
    app = data("spin-file")
    shutil.copy(os.path.join(ROOT, "spin.toml"), app)
    os.makedirs(os.path.join(app, "target/wasm32-wasip2/release"), exist_ok=True)
    shutil.copy(APP, os.path.join(app, "target/wasm32-wasip2/release/app_wasm.wasm"))
    os.makedirs(os.path.join(app, "data"), exist_ok=True)
    file_flavour = Contender(
        "spin_file", "app-wasm, spin up (file store)",
        [SPIN, "up", "--direct-mounts", "--allow-transient-write", "--listen", "127.0.0.1:{port}"],
        os.path.join(app, "data"), env=env, cwd=app, ready="/healthz")

    app, volume = data("spin-sqlite"), data("spin-sqlite-volume")
    for f in ["spin.toml", "app_wasm.wasm"]:
        shutil.copy(os.path.join(IMAGE, f), app)
    with open(os.path.join(ROOT, "k8s/runtime-config.toml")) as f:
        config = f.read().replace('"/data/', f'"{volume}/')
    with open(os.path.join(app, "runtime-config.toml"), "w") as f:
        f.write(config)
    sqlite_flavour = Contender(
        "spin_sqlite", "app-wasm SQLite, spin up (as in pods)",
        [SPIN, "up", "--listen", "127.0.0.1:{port}", "--runtime-config-file",
         "runtime-config.toml", "--log-dir", ""],
        None, env=env, cwd=app, ready="/healthz")
    return [file_flavour, sqlite_flavour]


def cold_starts(make, repeat):
    """Process start to first 200, `repeat` times: the median and every sample, in ms."""
    samples = []
    for _ in range(repeat):
        c = make()
        try:
            samples.append(c.start() * 1000)
        finally:
            c.stop()
    return {"median_ms": statistics.median(samples), "samples_ms": samples}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--smoke", action="store_true",
                    help="seconds, not minutes: 1 s runs, fewer settings (what CI runs)")
    ap.add_argument("--seconds", type=int, default=5, help="duration of each wrk run")
    ap.add_argument("--json", default=os.path.join(ROOT, "target/bench/results.json"))
    ap.add_argument("--svg", default=os.path.join(ROOT, "docs/bench.svg"))
    args = ap.parse_args()
    seconds = 1 if args.smoke else args.seconds
    conn_levels = [1, 16] if args.smoke else [1, 16, 64]
    big_log = 100_000 if args.smoke else 10_000_000
    repeat = 1 if args.smoke else 5
    work = tempfile.mkdtemp(prefix="app-wasm-bench-")
    cpus = os.cpu_count() or 1
    cache = os.path.join(work, "cache")

    def data(name):
        d = os.path.join(work, name)
        os.makedirs(d, exist_ok=True)
        return d

    def ours(key, label, wasm, extra=(), quiet=True):
        d = data(key)
        # Logging on: one info line per request to stderr (/dev/null here). RUST_LOG is set
        # either way: a user's own RUST_LOG would override --quiet.
        log = ["--quiet"] if quiet else []
        return Contender(key, label, [RUNNER, "up", *log, "--listen", "127.0.0.1:{port}",
                                      "--data", d, "--wasm", wasm, "--cache-dir", cache, *extra],
                         os.path.join(d, "app-wasm-0"), ready="/healthz",
                         env={"RUST_LOG": "warn" if quiet else "info"})

    contenders = [
        ours("host", "app-wasm, our host", APP),
        # Every 200 waits for fdatasync by default; the same runner without it, side by side.
        ours("host_nosync", "app-wasm, our host, --sync none", APP, ["--sync", "none"]),
        ours("host_logging", "app-wasm, our host, request log on", APP, quiet=False),
        ours("host_on_demand", "app-wasm, our host, no pooling", APP, ["--allocator", "on-demand"]),
        ours("hello", "hello-world, our host (ceiling)", HELLO),
    ]
    if os.access(SPIN, os.X_OK):
        contenders += spin_contenders(data)
    else:
        print(f"no Spin CLI at {SPIN} (set SPIN_BIN): skipping the spin up contenders",
              file=sys.stderr)
    if shutil.which("wasmtime"):
        d = data("wasmtime")
        contenders.append(Contender(
            "wasmtime", "app-wasm, wasmtime serve", ["wasmtime", "serve", "--addr",
            "127.0.0.1:{port}", "-S", "cli", "--dir", f"{d}::/data", APP], d, ready="/healthz"))
    else:
        print("wasmtime not on PATH: skipping the wasmtime serve contender", file=sys.stderr)
    d = data("seed")
    contenders.append(Contender(
        "seed", f"seed app, FastAPI + uvicorn x{cpus}",
        [os.path.join(VENV, "bin/uvicorn"), "main:app", "--host", "127.0.0.1", "--port", "{port}",
         "--workers", str(cpus), "--log-level", "warning", "--no-access-log"],
        d, env={"VISITS_DIR": d}, cwd=os.path.join(ROOT, "bench/seed_app"), ready="/visits"))

    # The seed as a pod runs it: one uvicorn worker (one per pod, scaled by replicas) in a
    # cgroup with the StatefulSet's cpu and memory limits, as kubelet confines a container.
    if os.geteuid() == 0:
        millicores, memory = manifest_limits()
        d = data("seed-pod")
        contenders.append(Contender(
            "seed_pod", f"seed app, 1 uvicorn worker at {millicores}m, {memory >> 20}Mi (pod)",
            [os.path.join(VENV, "bin/uvicorn"), "main:app", "--host", "127.0.0.1", "--port",
             "{port}", "--workers", "1", "--log-level", "warning", "--no-access-log"],
            d, env={"VISITS_DIR": d}, cwd=os.path.join(ROOT, "bench/seed_app"), ready="/visits",
            cgroup=Cgroup(f"app-wasm-bench-seed-pod-{os.getpid()}", millicores, memory)))
    else:
        print("not root: skipping the seed pod contender (it needs a cgroup)", file=sys.stderr)

    results = {"machine": {"cpus": cpus}, "seconds": seconds, "runs": [], "contenders": {}}
    for c in contenders:
        ready_ms = c.start() * 1000
        try:
            for path in ["/", "/visits"]:
                for conns in conn_levels:
                    r = wrk(c.base + path, conns, seconds,
                            rss_of=c.proc.pid if conns == conn_levels[-1] else None,
                            cgroup=c.cgroup)
                    r.update(contender=c.key, path=path, connections=conns)
                    results["runs"].append(r)
                    print_run(c.label, r)
        finally:
            c.stop()
        results["contenders"][c.key] = {"label": c.label, "start_to_ready_ms": ready_ms,
                                        "class": "pod" if c.cgroup else "local"}

    pod_contender(results, conn_levels, seconds, work)

    # Cold start: process start to the first 200, without and with a warm code cache.
    def fresh_host(cache_dir):
        return Contender("cold", "", [RUNNER, "up", "--quiet", "--listen", "127.0.0.1:{port}",
                                      "--data", data("cold"), "--wasm", APP, "--cache-dir",
                                      cache_dir], None, ready="/healthz")
    cold = {}
    cold["host_no_cache"] = cold_starts(
        lambda: fresh_host(tempfile.mkdtemp(dir=work)), repeat)
    warm = os.path.join(work, "warm-cache")
    filler = fresh_host(warm)  # its start compiles and fills the cache
    filler.start()
    filler.stop()
    cold["host_warm_cache"] = cold_starts(lambda: fresh_host(warm), repeat)
    cold["seed"] = cold_starts(lambda: Contender(
        "seed", "", [os.path.join(VENV, "bin/uvicorn"), "main:app", "--host", "127.0.0.1",
                     "--port", "{port}", "--log-level", "warning"], None,
        env={"VISITS_DIR": data("seed-cold")}, cwd=os.path.join(ROOT, "bench/seed_app"),
        ready="/visits"), repeat)
    results["cold_start"] = cold

    # Per-request instantiation inside the host, measured by the host itself.
    out = subprocess.run([RUNNER, "bench-instantiate", "--wasm", APP, "-n",
                          "500" if args.smoke else "5000"], capture_output=True, text=True,
                         check=True)
    results["instantiation"] = json.loads(out.stdout)

    # GET /visits on a big log (generated here, never committed): the count is O(1).
    big = data("big")
    os.makedirs(os.path.join(big, "app-wasm-0"), exist_ok=True)
    with open(os.path.join(big, "app-wasm-0", "visits.txt"), "wb") as f:
        chunk = RECORD * 100_000
        for _ in range(big_log // 100_000):
            f.write(chunk)
    c = Contender("big", "", [RUNNER, "up", "--quiet", "--listen", "127.0.0.1:{port}",
                              "--data", big, "--wasm", APP, "--cache-dir", cache], None,
                  ready="/healthz")
    c.start()
    try:
        with urllib.request.urlopen(c.base + "/visits") as r:
            count = json.load(r)["visits"]
        assert count == big_log, (count, big_log)
        r = wrk(c.base + "/visits", 1, seconds)
    finally:
        c.stop()
    results["big_log"] = {"records": big_log, "p50_us": r["p50_us"], "p99_us": r["p99_us"],
                          "rps": r["rps"]}
    results["component_bytes"] = os.path.getsize(APP)
    results["hello_bytes"] = os.path.getsize(HELLO)
    shutil.rmtree(work, ignore_errors=True)

    report(results, conn_levels)
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)
    if not args.smoke or args.svg != ap.get_default("svg"):
        os.makedirs(os.path.dirname(args.svg), exist_ok=True)
        with open(args.svg, "w") as f:
            f.write(chart(results, conn_levels[-1]))
        print(f"chart: {os.path.relpath(args.svg, ROOT)}")
    print(f"results: {os.path.relpath(args.json, ROOT)}")


def find(results, key, path, conns):
    for r in results["runs"]:
        if (r["contender"], r["path"], r["connections"]) == (key, path, conns):
            return r
    return None


def report(results, conn_levels):
    """One table; a pod's row compares with the seed pod and the hello pod, a local one with
    the seed app on every core and the hello component on our runner."""
    print()
    print("| contender | path | conns | req/s | p50 ms | p99 ms | p99.9 ms | non-2xx | vs seed "
          "| vs ceiling | peak memory MiB | start to ready ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results["runs"]:
        contender = results["contenders"][r["contender"]]
        pod = contender.get("class") == "pod"
        base_seed = find(results, "seed_pod" if pod else "seed", r["path"], r["connections"])
        base_ceiling = find(results, "hello_pod" if pod else "hello", "/", r["connections"])
        vs_seed = f"{r['rps'] / base_seed['rps']:.2f}x" if base_seed and base_seed["rps"] else "-"
        vs_ceiling = (f"{100 * r['rps'] / base_ceiling['rps']:.0f}%"
                      if base_ceiling and base_ceiling["rps"] else "-")
        rss = f"{r['peak_rss_kib'] / 1024:.1f}" if r["peak_rss_kib"] else ""
        first = r["path"] == "/" and r["connections"] == conn_levels[0]
        ready = f"{contender['start_to_ready_ms']:.0f}" if first else ""
        print(f"| {contender['label']} | {r['path']} | {r['connections']} | {r['rps']:.0f} | "
              f"{r['p50_us']/1000:.2f} | {r['p99_us']/1000:.2f} | {r['p999_us']/1000:.2f} | "
              f"{r['non_2xx'] + r['errors']} | {vs_seed} | {vs_ceiling} | {rss} | {ready} |")
    print()
    print("(pods: vs the seed pod and the hello pod; the rest: vs the seed app on every core "
          "and the hello component on our runner. Memory: cgroup peak for pods, RSS otherwise.)")
    # The targets, as ratios within this run: GET / of our host and of the pod against peers.
    for conns in conn_levels:
        host = find(results, "host", "/", conns)
        if not host:
            continue
        ratios = []
        for key, name in [("hello", "the ceiling"), ("seed", "the seed"),
                          ("wasmtime", "wasmtime serve"), ("spin_file", "spin up")]:
            peer = find(results, key, "/", conns)
            if peer and peer["rps"]:
                ratios.append(f"{host['rps'] / peer['rps']:.2f}x {name}")
        print(f"GET / at {conns} connections: our host {host['rps']:.0f} req/s, p99 "
              f"{host['p99_us'] / 1000:.2f} ms = " + ", ".join(ratios))
    for conns in conn_levels:
        pod = find(results, "shim", "/", conns)
        if not pod:
            continue
        ratios = []
        for key, name in [("seed_pod", "the seed pod"), ("hello_pod", "the hello pod")]:
            peer = find(results, key, "/", conns)
            if peer and peer["rps"]:
                ratios.append(f"{pod['rps'] / peer['rps']:.2f}x {name}")
        print(f"GET / at {conns} connections: one pod {pod['rps']:.0f} req/s, p99 "
              f"{pod['p99_us'] / 1000:.2f} ms, non-2xx {pod['non_2xx'] + pod['errors']} = "
              + ", ".join(ratios))
    inst = results["instantiation"]
    print(f"per-request instantiation (pooling): median {inst['median_us']:.1f} us, "
          f"p99 {inst['p99_us']:.1f} us over {inst['n']}")
    cold = results["cold_start"]
    print(f"cold start to first 200: no cache {cold['host_no_cache']['median_ms']:.1f} ms, "
          f"warm cache {cold['host_warm_cache']['median_ms']:.1f} ms, "
          f"seed app {cold['seed']['median_ms']:.1f} ms (medians)")
    big = results["big_log"]
    print(f"GET /visits with {big['records']:,} records: p50 {big['p50_us'] / 1000:.2f} ms, "
          f"p99 {big['p99_us'] / 1000:.2f} ms")
    print(f"component: {results['component_bytes']:,} bytes; hello: {results['hello_bytes']:,} bytes")


def chart(results, conns):
    """Two horizontal bar charts: req/s and p99 for GET / at `conns` connections."""
    rows = [(results["contenders"][r["contender"]]["label"], r["rps"], r["p99_us"] / 1000)
            for r in results["runs"] if r["path"] == "/" and r["connections"] == conns]
    width, bar_h, gap, label_w = 900, 22, 8, 300
    panel_h = len(rows) * (bar_h + gap) + 40
    height = 2 * panel_h + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="13">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="10" y="20" font-size="15" font-weight="bold">GET / at {conns} connections, '
           f'{results["machine"]["cpus"]} cores, {results["seconds"]} s per run (bench/run)</text>']
    for p, (title, idx, unit, fmt) in enumerate([("requests per second (higher is better)", 1, "req/s", "{:.0f}"),
                                                  ("p99 latency (lower is better)", 2, "ms", "{:.2f}")]):
        top = 40 + p * panel_h
        out.append(f'<text x="10" y="{top + 14}" font-weight="bold">{title}</text>')
        peak = max(r[idx] for r in rows) or 1
        for i, r in enumerate(rows):
            y = top + 24 + i * (bar_h + gap)
            w = max(1, (width - label_w - 120) * r[idx] / peak)
            colour = "#888" if r[0].startswith("seed") else "#3a7bd5" if "hello" not in r[0] else "#9cc3f5"
            out.append(f'<text x="10" y="{y + 16}">{r[0]}</text>')
            out.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}"/>')
            out.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 16}">{fmt.format(r[idx])} {unit}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()

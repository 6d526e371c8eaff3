"""Store designs side by side: each candidate component under `spin up` 3.6.3 (the Spin inside
containerd-shim-spin 0.24.0) with the pod's env, in a cgroup with the pod's limits (500m,
128Mi), on a fresh store on disk; wrk GET / at each connection count, rounds alternated.
usage (root, after make.py): run.py NAMES SECONDS ROUNDS > LOG; table.py LOG
env: CONNS=1,16,64  SPINENV=K=V,...  VOL=/var/tmp (the volume's parent)  MILLI=500
     NEIGHBOUR=1: a neighbour on the same filesystem writes 256 KiB + fdatasync in a loop
     (outside the cgroup) during every cell, as another pod's volume on the node's disk would"""
import json, os, shutil, signal, subprocess, sys, tempfile, time, urllib.request
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import bench  # Cgroup, free_port, wait_http
SPIN = bench.SPIN; LUA = f"{ROOT}/bench/wrk-report.lua"; WASM = f"{ROOT}/target/store-designs"
names = sys.argv[1].split(","); secs = int(sys.argv[2]); rounds = int(sys.argv[3])
conns = [int(c) for c in os.environ.get("CONNS", "1,16,64").split(",")]
extra = dict(kv.split("=", 1) for kv in os.environ.get("SPINENV", "").split(",") if kv)
POD_ENV = {"SPIN_WASMTIME_POOLING": "0",
           "SPIN_VARIABLE_REPLICA": "app-wasm-0", "SPIN_DISABLE_TELEMETRY": "1", **extra}

def cpu_stat(cg):
    """CFS throttling so far: periods throttled and ns throttled (cgroup v1 or v2)."""
    st = dict(l.split() for l in open(f"{cg.dirs[0]}/cpu.stat"))
    ns = int(st["throttled_time"]) if "throttled_time" in st else int(st["throttled_usec"]) * 1000
    return {"nr_throttled": st["nr_throttled"], "throttled_time": ns}

NEIGHBOUR = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC); buf = b"x" * (256 << 10)
while True:
    os.write(fd, buf); os.fdatasync(fd)
    if os.lseek(fd, 0, os.SEEK_CUR) > (64 << 20): os.lseek(fd, 0, os.SEEK_SET)
"""

def neighbour(vol):
    """The busy-disk load, or None for a quiet disk."""
    if not os.environ.get("NEIGHBOUR"):
        return None
    return subprocess.Popen([sys.executable, "-c", NEIGHBOUR, f"{vol}.neighbour"])

def one(name, rnd):
    app = tempfile.mkdtemp(dir="/var/tmp"); vol = tempfile.mkdtemp(dir=os.environ.get("VOL", "/var/tmp"))
    # The image's manifest and runtime config: both name the key-value store on the SQLite
    # file (HEAD writes through it; keepwal and keepretry open it; the others leave it unused).
    manifest = open(f"{ROOT}/k8s/image/spin.toml").read()
    open(f"{app}/spin.toml", "w").write(manifest)
    shutil.copy(f"{WASM}/{name}.wasm", f"{app}/app_wasm.wasm")
    cfg = open(f"{ROOT}/k8s/runtime-config.toml").read()
    cfg = cfg.replace('"/data/', f'"{vol}/')
    open(f"{app}/rc.toml", "w").write(cfg)
    port = bench.free_port()
    cg = bench.Cgroup(f"cand-{name}-{os.getpid()}-{rnd}", int(os.environ.get("MILLI", "500")), 128 << 20)
    cmd = cg.wrap([SPIN, "up", "--listen", f"127.0.0.1:{port}", "--runtime-config-file",
                   f"{app}/rc.toml", "--log-dir", ""])
    # Its own process group: `spin up` forks `spin trigger http`, which a kill of `spin up`
    # alone would leave running.
    p = subprocess.Popen(cmd, cwd=app, env=dict(os.environ, **POD_ENV), start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    busy = neighbour(vol)
    try:
        bench.wait_http(base + "/readyz", proc=p)
        out = []
        if not os.environ.get("NOWARM"):
            subprocess.run(["wrk", "-t2", "-c16", "-d2s", base + "/"], capture_output=True)
        for c in conns:
            before = cpu_stat(cg)
            w = subprocess.run(["wrk", "-t", str(min(c, 2)), "-c", str(c), "-d", f"{secs}s",
                                "--timeout", "5s", "-s", LUA, base + "/"],
                               capture_output=True, text=True)
            r = json.loads([l for l in w.stdout.splitlines() if l.startswith("{")][-1])
            after = cpu_stat(cg)
            r["throttled_ms"] = (int(after["throttled_time"]) - int(before["throttled_time"])) / 1e6
            r["nr_throttled"] = int(after["nr_throttled"]) - int(before["nr_throttled"])
            r["peak_mib"] = cg.peak_bytes() / (1 << 20)
            r["alive"] = p.poll() is None
            r.update(name=name, round=rnd, c=c)
            out.append(r)
            print(json.dumps(r), flush=True)

        return out
    finally:
        os.killpg(p.pid, signal.SIGKILL); p.wait(); cg.remove()
        if busy:
            busy.kill(); busy.wait(); os.remove(f"{vol}.neighbour")
        shutil.rmtree(app); shutil.rmtree(vol)

rows = []
for rnd in range(rounds):
    for n in names:
        rows += one(n, rnd)
json.dump(rows, open(os.environ.get("OUT", f"{WASM}/rows.json"), "w"))

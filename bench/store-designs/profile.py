"""Profile of the pod's visit path: the staged SQLite flavour (target/image, k8s/image/build.sh)
under `spin up` with the manifest's env in a 500m/128Mi cgroup, wrk GET / at 16 connections,
`perf record -g` on the `spin trigger http` process for 6 s into target/perf.data; prints
wrk's req/s and the cgroup's cpu.stat deltas. Root. Then:
perf report -i target/perf.data --no-children --sort dso -g none"""
import os, sys, shutil, subprocess, tempfile, time, signal
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT+"/bench"); import bench
app=tempfile.mkdtemp(dir="/var/tmp"); vol=tempfile.mkdtemp(dir="/var/tmp")
shutil.copy(ROOT+"/k8s/image/spin.toml", app+"/spin.toml"); shutil.copy(ROOT+"/target/image/app_wasm.wasm", app+"/app_wasm.wasm")
open(app+"/rc.toml","w").write(open(ROOT+"/k8s/runtime-config.toml").read().replace('"/data/', f'"{vol}/'))
port=bench.free_port(); cg=bench.Cgroup(f"prof-{os.getpid()}", 500, 128<<20)
env=dict(os.environ, SPIN_WASMTIME_POOLING="0", SPIN_VARIABLE_REPLICA="app-wasm-0", SPIN_DISABLE_TELEMETRY="1")
p=subprocess.Popen(cg.wrap([bench.SPIN,"up","--listen",f"127.0.0.1:{port}","--runtime-config-file",app+"/rc.toml","--log-dir",""]), cwd=app, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    bench.wait_http(f"http://127.0.0.1:{port}/readyz", proc=p)
    trig=subprocess.run(["pgrep","-f",f"trigger http --listen 127.0.0.1:{port}"],capture_output=True,text=True).stdout.split()[0]
    st0=dict(l.split() for l in open(f"{cg.dirs[0]}/cpu.stat"))
    w=subprocess.Popen(["wrk","-t2","-c16","-d9s",f"http://127.0.0.1:{port}/"],stdout=subprocess.PIPE,text=True)
    time.sleep(1.5)
    subprocess.run(["perf","record","-q","-g","-o",ROOT + "/target/perf.data","-p",trig,"--","sleep","6"],capture_output=True)
    out=w.communicate()[0]; st1=dict(l.split() for l in open(f"{cg.dirs[0]}/cpu.stat"))
    print([l for l in out.splitlines() if "Requests/sec" in l])
    print({k:int(st1[k])-int(st0[k]) for k in st1 if k in ("nr_periods","nr_throttled","throttled_time","throttled_usec")})
finally:
    os.killpg(p.pid, signal.SIGKILL); p.wait(); cg.remove(); shutil.rmtree(app); shutil.rmtree(vol)

"""The markdown table of run.py's JSON lines: medians (min-max) per design and connections."""
import json, statistics as st, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
names = list(dict.fromkeys(r["name"] for r in rows)); conns = sorted({r["c"] for r in rows})
print("| design | " + " | ".join(f"c={c} req/s | c={c} p99 ms" for c in conns) + " | non-2xx | peak MiB | throttled periods |")
print("|---" * (2 + 2 * len(conns) + 2) + "|")
for n in names:
    cells = []
    for c in conns:
        rs = [r for r in rows if r["name"] == n and r["c"] == c]
        rps = [r["rps"] for r in rs]; p99 = [r["p99_us"] / 1000 for r in rs]
        cells += [f"{st.median(rps):,.0f} ({min(rps):,.0f}–{max(rps):,.0f})", f"{st.median(p99):,.0f} ({min(p99):,.0f}–{max(p99):,.0f})"]
    mine = [r for r in rows if r["name"] == n]
    bad = sum(r["non_2xx"] + r["errors"] for r in mine)
    peak = max(r["peak_mib"] for r in mine)
    thr = sum(r["nr_throttled"] for r in mine); per = sum(r["seconds"] for r in mine) * 10
    print(f"| {n} | " + " | ".join(cells) + f" | {bad} | {peak:.0f} | {thr}/{per:.0f} |")

#!/usr/bin/env python3
"""Summarize the raw wrk outputs of run.sh into markdown tables (medians over reps)."""
import os
import re
import statistics
import sys
from pathlib import Path

OUT = Path(sys.argv[1])
UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}
TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")


def ms(tok):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", tok)
    return float(m.group(1)) * UNIT[m.group(2)] if m else float("nan")


def parse_wrk(path):
    t = path.read_text()
    r = {"rps": float("nan"), "errors": 0, "non2xx": 0, "requests": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", t)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", t)
    if m:
        r["requests"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    if m:
        r["errors"] = sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    if m:
        r["non2xx"] = int(m.group(1))
    for p in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{p}%\s+(\S+)", t, re.M)
        r[f"p{p}"] = ms(m.group(1)) if m else float("nan")
    return r


def cpu(cb, ca, ob, oa, target):
    """CPU use during one run, in % of one core: proxy, backends, load generator, other processes."""
    def cores(s):
        f = s.split()
        return {f[i]: [int(x) for x in f[i + 1:i + 5]] for i in range(0, len(f), 5)}

    def own(s):
        return {k: int(v) for k, v in (kv.split("=") for kv in s.split())}
    b, a = cores(cb), cores(ca)
    d = {c: [a[c][k] - b[c][k] for k in range(4)] for c in b}
    elapsed = statistics.mean(sum(v) for v in d.values()) or 1   # ticks per core during the run
    usersys = sum(v[0] for v in d.values())
    steal = max(v[3] for v in d.values())
    o0, o1 = own(ob), own(oa)
    do = {k: o1[k] - o0.get(k, 0) for k in o1}
    pct = lambda x: 100.0 * x / elapsed
    if target == "direct":
        proxy, backends = 0, do["backend-stable"] + do["backend-canary"]
    else:
        proxy, backends = do[f"proxy-{target}"], do["backend-stable"] + do["backend-canary"]
    other = usersys - sum(do.values())
    sut = do["backend-stable"] if target == "direct" else proxy   # the hop under test
    return {"proxy": pct(proxy), "backends": pct(backends), "loadgen": pct(do["loadgen"]),
            "other": max(0.0, pct(other)), "steal": pct(steal), "sut_ticks": sut}


def med(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


runs = {}
TARGETS = []   # in the order run.sh first measured them; a proxy target T must be started as "proxy-T"
for line in (OUT / "runs.tsv").read_text().splitlines()[1:]:
    phase, rep, target, st, ca, cb, caft, ob, oa, _waited = line.split("\t")
    if target not in TARGETS:
        TARGETS.append(target)
    c = cpu(cb, caft, ob, oa, target)
    n = int(st) + int(ca)
    c["us_per_req"] = c["sut_ticks"] * TICK_US / n if n else float("nan")
    runs[(phase, rep, target)] = (int(st), int(ca), c)


SUMMARY = {}   # (phase, target) -> medians, for the targets check


def table(phase, title, note):
    print(f"### {title}\n\n{note}\n")
    print("| target | req/s median (min-max) | p50 ms | p90 ms | p99 ms | vs direct | CPU us/req of the hop (proxy; direct: backend) "
          "| split stable/canary seen by backends | CPU % of a core: proxy / backends / wrk / other processes | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    base = None
    for t in TARGETS:
        files = sorted(OUT.glob(f"{phase}-{t}-*.txt"))
        if not files:
            continue
        rs = [parse_wrk(f) for f in files]
        reps = [f.stem.rsplit("-", 1)[1] for f in files]
        rps = [r["rps"] for r in rs]
        m = med(rps)
        if t == "direct":
            base = m
        st = sum(runs[(phase, rp, t)][0] for rp in reps)
        ca = sum(runs[(phase, rp, t)][1] for rp in reps)
        split = f"{100.0 * st / (st + ca):.2f} / {100.0 * ca / (st + ca):.2f} (n={st + ca:,})" if st + ca else "-"
        cpus = [runs[(phase, rp, t)][2] for rp in reps]
        c = {k: med([x[k] for x in cpus]) for k in cpus[0]}
        other_max = max(x["other"] for x in cpus)
        errs = sum(r["errors"] + r["non2xx"] for r in rs)
        rel = f"{100.0 * m / base:.0f}%" if base else "-"
        proxy = "-" if t == "direct" else f"{c['proxy']:.0f}"
        SUMMARY[(phase, t)] = {"us_per_req": c["us_per_req"], "p50": med([r["p50"] for r in rs])}
        print(f"| {t} | {m:,.0f} ({min(rps):,.0f}-{max(rps):,.0f}) | {med([r['p50'] for r in rs]):.3f} | "
              f"{med([r['p90'] for r in rs]):.3f} | {med([r['p99'] for r in rs]):.3f} | {rel} | {c['us_per_req']:.1f} | {split} | "
              f"{proxy} / {c['backends']:.0f} / {c['loadgen']:.0f} / {c['other']:.0f} (max {other_max:.0f}) | {errs} |")
    print()


print("## Results (medians over interleaved reps; latency from wrk --latency)\n")
print("CPU columns: median over reps, % of one core (2 cores = 200%); 'other processes' is CPU used on the machine "
      "by anything not started by run.sh (noise), median and worst rep. 'CPU us/req of the hop' is the proxy's own "
      "CPU time per request (for direct: the backend's), the figure least disturbed by other load; "
      "1e6 / it ~ requests/s one core could carry.\n")
table("sat", "Saturating: wrk -t1 -c50 (closed loop, max throughput)",
      "Latency here is mostly queueing at saturation (50 in flight); compare req/s first.")
table("paced", "Paced: wrk -t1 -c10 with a fixed think time per connection (moderate load)",
      "Offered load ~ connections / (think time + latency); the proxy core is far from saturated, "
      "so these latencies are the per-hop cost.")

if ("sat", "sluice") in SUMMARY and ("sat", "nginx") in SUMMARY:
    sat_ratio = SUMMARY[("sat", "sluice")]["us_per_req"] / SUMMARY[("sat", "nginx")]["us_per_req"]
    print("### Targets\n")
    print(f"- Saturating hop CPU per request, sluice / nginx: {SUMMARY[('sat', 'sluice')]['us_per_req']:.1f} / "
          f"{SUMMARY[('sat', 'nginx')]['us_per_req']:.1f} us = **{sat_ratio:.2f}** (target <= 0.80)")
    if ("paced", "direct") in SUMMARY and ("paced", "sluice") in SUMMARY and ("paced", "nginx") in SUMMARY:
        base = SUMMARY[("paced", "direct")]["p50"]
        added = {t: SUMMARY[("paced", t)]["p50"] - base for t in ("sluice", "nginx")}
        print(f"- Paced added p50 over direct, sluice vs nginx: {added['sluice']:+.3f} ms vs {added['nginx']:+.3f} ms "
              f"(target: sluice <= nginx)")
    print()

print("### Every rep (in run order), to judge the noise\n")
print("| phase | rep | target | req/s | p50 ms | p90 ms | p99 ms | proxy CPU % | hop CPU us/req | other processes CPU % | waited for quiet s |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for line in (OUT / "runs.tsv").read_text().splitlines()[1:]:
    f = line.split("\t")
    phase, rep, target, waited = f[0], f[1], f[2], int(f[9])
    if phase == "warm":
        continue
    r = parse_wrk(OUT / f"{phase}-{target}-{rep}.txt")
    c = runs[(phase, rep, target)][2]
    proxy = "-" if target == "direct" else f"{c['proxy']:.0f}"
    print(f"| {phase} | {rep} | {target} | {r['rps']:,.0f} | {r['p50']:.3f} | {r['p90']:.3f} | {r['p99']:.3f} | "
          f"{proxy} | {c['us_per_req']:.1f} | {c['other']:.0f} | {waited / 10:.1f} |")
print()

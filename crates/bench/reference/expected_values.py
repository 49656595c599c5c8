#!/usr/bin/env python3
"""Prints the expected values hard-coded in the Rust tests of `sluice_analysis::stats` and `sluice_bench`.

They come from the benchmark's independent reference implementation (`reference_sim.py`, standard library
only) where it has the computation, and from small standard-library formulas written here where it has not
(tolerance and not-worse e-processes, wilcox.test p-values, the Robbins confidence sequence).

    python3 crates/bench/reference/expected_values.py [path/to/reference_sim.py]

The default path is the shared suite beside the repository: ../shared/bench/analysis/reference_sim.py.
"""
import math
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, "..", "..", "..", "..", "shared", "bench", "analysis", "reference_sim.py")
path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
import reference_sim as R  # noqa: E402


def section(title):
    print(f"\n## {title}")


section("stats::histogram — histogram_quantile(q) for q = 0, .25, .5, .9, .99, 1")
for counts in ([0, 10, 20, 30, 20, 10, 5, 3, 1, 1, 0, 0, 0, 0], [1] + [0] * 12 + [5], [4] + [0] * 13,
               [0, 0, 0, 7] + [0] * 10, [0] * 13 + [3], [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7]):
    print(counts, [R.histogram_quantile(q, counts) for q in (0.0, 0.25, 0.5, 0.9, 0.99, 1.0)])


def log_mean_exp(values):
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values) / len(values))


section("stats::eprocess — error stream of reference_sim.EProcess, ln E after each window")
process = R.EProcess()
for q, x, y in [(0.1, 3, 20), (0.1, 0, 15), (0.2, 5, 11), (0.3, 0, 0), (0.05, 2, 30), (0.5, 9, 4), (0.1, 1, 25)]:
    process.update(q, x, [0] * R.NB, y, [0] * R.NB)
    print((q, x, y), log_mean_exp(process.logm[0]))

section("stats::eprocess — reference_sim.EProcess.value() fed random bucket counts")
rng = random.Random(7)
process = R.EProcess()
for q in [0.1, 0.2, 0.3, 0.4, 0.5, 0.5]:
    canary = [rng.randrange(0, 6) for _ in range(R.NB)]
    control = [rng.randrange(0, 30) for _ in range(R.NB)]
    canary_errors, control_errors = rng.randrange(0, 4), rng.randrange(0, 8)
    process.update(q, canary_errors, canary, control_errors, control)
    print((q, canary_errors, canary, control_errors, control), process.value())

section("stats::eprocess — direct likelihood ratio against theta0 = 1 + tolerance, ln E after each window")


def direct(windows, tolerance, direction):
    theta0 = 1.0 + tolerance
    log_wealth = [0.0] * len(R.THETA_GRID)
    out = []
    for q, x, y in windows:
        for i, g in enumerate(R.THETA_GRID):
            theta = theta0 * g if direction == "regression" else theta0 / g
            log_wealth[i] += x * math.log(theta / theta0) - (x + y) * math.log(
                (theta * q + 1 - q) / (theta0 * q + 1 - q))
        out.append(log_mean_exp(log_wealth))
    return out


WORSE = [(0.1, 4, 10), (0.1, 6, 12), (0.2, 9, 14), (0.2, 7, 9), (0.3, 12, 10)]
BETTER = [(0.1, 2, 60), (0.2, 3, 50), (0.3, 5, 45), (0.5, 10, 40), (0.5, 8, 42)]
for name, windows in (("worse", WORSE), ("better", BETTER)):
    for tolerance in (0.0, 0.25):
        for direction in ("regression", "not-worse"):
            print(name, tolerance, direction, direct(windows, tolerance, direction))

section("stats::mann_whitney — series")
rng = random.Random(11)
A = [round(100 * math.exp(0.3 * rng.gauss(0, 1)), 1) for _ in range(20)]
B = [round(105 * math.exp(0.3 * rng.gauss(0, 1)), 1) for _ in range(20)]
C = [round(140 * math.exp(0.3 * rng.gauss(0, 1)), 1) for _ in range(20)]
print("A =", A)
print("B =", B)
print("C =", C)


def midranks(values):
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def wilcox_test(x, y, alternative):
    """R's wilcox.test(x, y, exact = FALSE, correct = TRUE): (W, z, p-value)."""
    nx, ny = len(x), len(y)
    w = sum(midranks(list(x) + list(y))[:nx]) - nx * (nx + 1) / 2
    centred = w - nx * ny / 2
    counts = {}
    for v in list(x) + list(y):
        counts[v] = counts.get(v, 0) + 1
    ties = sum(t ** 3 - t for t in counts.values())
    sigma = math.sqrt(nx * ny / 12 * ((nx + ny + 1) - ties / ((nx + ny) * (nx + ny - 1))))
    correction = {"two-sided": math.copysign(0.5, centred) if centred else 0.0, "greater": 0.5, "less": -0.5}
    z = (centred - correction[alternative]) / sigma
    cdf = R.ND.cdf
    p = {"two-sided": 2 * min(cdf(z), 1 - cdf(z)), "greater": 1 - cdf(z), "less": cdf(z)}[alternative]
    return w, z, p


CASES = {
    "small": ([1.2, 3.4, 2.2, 5.1, 4.4, 3.3, 2.8], [1.0, 2.1, 1.9, 3.0, 2.5, 1.7]),
    "ties": ([1, 2, 2, 3, 3, 3, 4, 5], [1, 1, 2, 2, 3]),
    "B vs A": (B, A),
    "C vs A": (C, A),
}
section("stats::mann_whitney — mann_whitney_ci (lower, upper, estimate), wilcox.test, kayenta_classify")
for name, (x, y) in CASES.items():
    for confidence in (0.95, 0.98):
        print(name, confidence, R.mann_whitney_ci(x, y, confidence))
    for alternative in ("two-sided", "greater", "less"):
        print(name, alternative, wilcox_test(x, y, alternative))
    print(name, "kayenta", R.kayenta_classify(random.Random(0), x, y))

section("stats::bounds — Robbins set {p : (n+1)·C(n,s)·p^s·(1-p)^(n-s) > alpha}, alpha = 0.05")


def log_wealth_inverse(s, n, p):
    value = math.log(n + 1) + math.lgamma(n + 1) - math.lgamma(s + 1) - math.lgamma(n - s + 1)
    if s:
        value += s * math.log(p)
    if n - s:
        value += (n - s) * math.log1p(-p)
    return value


def robbins(s, n, alpha=0.05):
    if n == 0:
        return 0.0, 1.0
    threshold, estimate = math.log(alpha), s / n
    lower, upper = 0.0, 1.0
    if s:
        a, b = 0.0, estimate
        for _ in range(200):
            m = (a + b) / 2
            a, b = (a, m) if log_wealth_inverse(s, n, m) > threshold else (m, b)
        lower = b
    if s < n:
        a, b = estimate, 1.0
        for _ in range(200):
            m = (a + b) / 2
            a, b = (m, b) if log_wealth_inverse(s, n, m) > threshold else (a, m)
        upper = a
    return lower, upper


for s, n in [(0, 0), (5, 5), (4, 5), (0, 1), (1, 1), (99, 100), (990, 1000), (9950, 10000), (999000, 1000000),
             (1000, 1000), (0, 10)]:
    print((s, n), robbins(s, n))

section("bench latency — reference_sim.bucket_probs(model, transform, load multiplier)")
for name, model, transform, load in [
    ("LN", R.LN, ("none",), 1.0), ("LN tailwarp 1.5", R.LN, ("tailwarp", 1.5), 1.0),
    ("LN tailwarp 1.1", R.LN, ("tailwarp", 1.1), 1.0), ("LN shift 5", R.LN, ("shift", 5.0), 1.0),
    ("HT", R.HT, ("none",), 1.0), ("HT tailwarp 1.5", R.HT, ("tailwarp", 1.5), 1.0),
    ("LN load 1.2", R.LN, ("none",), 1.2), ("LN tailwarp 1.5 load 0.8", R.LN, ("tailwarp", 1.5), 0.8),
]:
    print(name, R.bucket_probs(model, transform, load))
for u in (0.5, 0.9, 0.99, 0.999):
    print("quantile", u, R.base_quantile(R.LN, u), R.base_quantile(R.HT, u))
print("run seed (20240601, 3, 7):", 20240601 * 1000000007 + 3 * 100003 + 7)

"""The figures of a device run as the README's tables, with every ratio taken inside the run.

After a device `run` of .device/run.sh (benches/device_plan.sh), unpack its results.tgz and
  python3 benches/device_report.py RESULTS_DIR > device_tables.md
prints, in Markdown:
  - the training step of MLP 784-1024-1024-10 against PyTorch eager and CUDA graph
    (sweep/, sweep_tuned/, peers.csv), as issue 13's table;
  - the GEMM table (gemm/gemm.csv, whose peer columns hold cuBLAS from peers_gemm.csv);
  - f32 against f16 against PyTorch AMP per batch size (sweep_precision/, peers.csv);
  - the wide model 784-4096-4096-10 per batch size (sweep_wide/), for the cliff;
  - the kernel checks (every timed product against the exact reference), and what wgpu's
    shader runtime checks cost (gemm_checked/, profile_checked/ against profile_trusted/);
  - each goal of issues 13 and 16 with the measured figure and whether it is met.
A file that is missing (a stage skipped or failed) gives "not measured" where it was needed."""
import csv
import json
import os
import sys


def rows(path):
    if not os.path.isfile(path):
        return None
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def num(s):
    try:
        v = float(s)
    except (TypeError, ValueError):
        return None
    return v if v == v and v not in (float("inf"), float("-inf")) else None


def fmt(v, digits=None):
    if v is None:
        return "—"
    if digits is not None:
        return f"{v:.{digits}f}"
    if v >= 1000:
        return f"{v:,.0f}".replace(",", " ")
    return f"{v:.3g}"


def sweep(path, precision=None):
    """batch -> (examples/s, ms/step) of the rows that ran (and of `precision`, if given)."""
    out = {}
    for r in rows(path) or []:
        if r.get("skipped"):
            continue
        if precision is not None and r.get("precision", "f32") != precision:
            continue
        b, eps, ms = num(r.get("batch")), num(r.get("examples_per_s")), num(r.get("ms_per_step_median"))
        if b is not None and eps is not None:
            out[int(b)] = (eps, ms)
    return out


def peers(path):
    """(what, size) -> value for every finite figure of a peer_ref.py / peer_gemm.py CSV."""
    out = {}
    for r in rows(path) or []:
        v, s = num(r.get("value")), num(r.get("size_or_batch"))
        if v is not None and s is not None:
            out[(r["what"], int(s))] = v
    return out


def ratio(a, b):
    return a / b if a is not None and b else None


def section(title, have, missing, columns):
    """The section's title, then its table header, or "not measured" (False) without data."""
    print(f"### {title}\n")
    if not have:
        print(f"not measured ({missing} missing)\n")
        return False
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    return True


def step_table(res, p, goals):
    base = sweep(os.path.join(res, "sweep", "sweep.csv"))
    tuned = sweep(os.path.join(res, "sweep_tuned", "sweep.csv"))
    if not section("Training step, MLP 784-1024-1024-10, examples/s (one device run)", base,
                   "sweep/sweep.csv", ["B", "batchscope", "batchscope, autotune cached",
                                       "PyTorch eager", "ratio", "PyTorch CUDA graph", "ratio"]):
        return
    for b in sorted(base):
        ours = base[b][0]
        best = max(ours, tuned.get(b, (0, None))[0])
        eager, graph = p.get(("mlp_torch_eager", b)), p.get(("mlp_torch_graph", b))
        t = tuned.get(b, (None, None))[0]
        print(f"| {b} | {fmt(ours)} | {fmt(t)} | {fmt(eager)} | {fmt(ratio(best, eager), 2)} | "
              f"{fmt(graph)} | {fmt(ratio(best, graph), 2)} |")
        if eager:
            goals.append((f"step B = {b} ≥ 1.0× PyTorch eager", ratio(best, eager), 1.0))
        if graph and b <= 32:
            goals.append((f"step B = {b} ≥ 1.0× PyTorch CUDA graph", ratio(best, graph), 1.0))
        elif graph and b >= 512:
            goals.append((f"step B = {b} ≥ 0.8× PyTorch CUDA graph", ratio(best, graph), 0.8))
    print("\n(ratios: the better of the two batchscope columns against the peer)\n")
    cliffs(base, "default model", goals)


def cliffs(s, what, goals):
    """ms/step non-decreasing in B, examples/s non-decreasing within 5 %."""
    bs = sorted(s)
    worst_ms, worst_eps = None, None
    for a, b in zip(bs, bs[1:]):
        (ea, ma), (eb, mb) = s[a], s[b]
        if ma is not None and mb is not None:
            worst_ms = min(worst_ms if worst_ms is not None else 9e9, mb / ma)
        worst_eps = min(worst_eps if worst_eps is not None else 9e9, eb / ea)
    goals.append((f"{what}: ms/step non-decreasing in B (least ratio of neighbours)", worst_ms, 1.0))
    goals.append((f"{what}: examples/s non-decreasing within 5 % (least ratio)", worst_eps, 0.95))


def gemm_table(res, goals):
    g = rows(os.path.join(res, "gemm", "gemm.csv"))
    if not section("GEMM, TFLOP/s against cuBLAS (TF32 off) in the same run", g, "gemm/gemm.csv",
                   ["precision", "layout", "m×n×k", "default kernel", "TFLOP/s", "fastest kernel",
                    "TFLOP/s", "% peak", "cuBLAS", "ratio"]):
        return
    products = {}
    for r in g:
        products.setdefault((r["precision"], r["layout"], r["m"], r["n"], r["k"]), []).append(r)
    for (prec, layout, m, n, k), cands in products.items():
        d = next((r for r in cands if r["default"] == "1"), None)
        f = next((r for r in cands if r["fastest"] == "1"), None)
        dt, ft = num(d and d["tflops"]), num(f and f["tflops"])
        peer = num(f and f["peer_tflops"])
        r_ = ratio(ft, peer)
        print(f"| {prec} | {layout} | {m}×{n}×{k} | {d and d['candidate']} | {fmt(dt)} | "
              f"{f and f['candidate']} | {fmt(ft)} | {fmt(num(f and f['pct_of_peak']), 1)} | {fmt(peer)} | {fmt(r_, 2)} |")
        # Kernels whose product disagreed with the exact reference (never the fastest).
        for r in cands:
            if r.get("verified") == "0" and r.get("ms"):
                print(f"| {prec} | {layout} | {m}×{n}×{k} | **{r['candidate']}: WRONG result** | | | | | | |")
        if m == n == k and int(n) in (4096, 8192):
            if prec == "f32":
                goals.append((f"sgemm {layout.upper()} {n}³ ≥ 0.9× cuBLAS", r_, 0.9))
            elif int(n) == 8192 and layout == "nn":
                goals.append((f"f16 GEMM {n}³ ≥ 0.5× cuBLAS HGEMM ({f and f['candidate']})", r_, 0.5))
    print()


def precision_table(res, p, goals):
    path = os.path.join(res, "sweep_precision", "sweep.csv")
    f32, f16 = sweep(path, "f32"), sweep(path, "f16")
    tuned_path = os.path.join(res, "sweep_precision_tuned", "sweep.csv")
    f32_t, f16_t = sweep(tuned_path, "f32"), sweep(tuned_path, "f16")
    if not section("f32 against f16 (mixed precision) against PyTorch AMP, examples/s", f16,
                   "sweep_precision/sweep.csv",
                   ["B", "batchscope f32", "batchscope f16", "f32, autotune on", "f16, autotune on",
                    "f16 / f32", "PyTorch AMP", "f16 / AMP"]):
        return
    for b in sorted(f16):
        at, ht = f32_t.get(b, (None, None))[0], f16_t.get(b, (None, None))[0]
        # Each precision at its better setting: the rule's kernels or the autotuned ones.
        a = max(v for v in (f32.get(b, (None, None))[0], at, 0) if v is not None) or None
        h = max(v for v in (f16[b][0], ht) if v is not None)
        amp = p.get(("mlp_torch_amp", b))
        print(f"| {b} | {fmt(f32.get(b, (None, None))[0])} | {fmt(f16[b][0])} | {fmt(at)} | {fmt(ht)} | "
              f"{fmt(ratio(h, a), 2)} | {fmt(amp)} | {fmt(ratio(h, amp), 2)} |")
        if b >= 4096:
            goals.append((f"f16 step B = {b} ≥ 1.0× PyTorch AMP", ratio(h, amp), 1.0))
            goals.append((f"f16 step B = {b} ≥ 2× batchscope f32", ratio(h, a), 2.0))
    print("\n(ratios: each precision at the better of its two settings)\n")


def wide_table(res, goals):
    s = sweep(os.path.join(res, "sweep_wide", "sweep.csv"))
    if not section("Wide model 784-4096-4096-10 (the B = 2048 cliff)", s, "sweep_wide/sweep.csv",
                   ["B", "ms/step", "examples/s"]):
        return
    for b in sorted(s):
        print(f"| {b} | {fmt(s[b][1])} | {fmt(s[b][0])} |")
    print()
    cliffs(s, "wide model", goals)


def kernel_checks(res):
    """Every timed kernel's product against the exact reference (gemm.csv, tune.csv)."""
    runs, wrong = 0, []
    for sub, name in (("gemm", "gemm.csv"), ("tune", "tune.csv")):
        for r in rows(os.path.join(res, sub, name)) or []:
            if not r.get("ms") or "verified" not in r:
                continue
            runs += 1
            if r["verified"] != "1":
                shape = r.get("shape") or f"{r.get('precision')} {r.get('layout')} {r['m']}×{r['n']}×{r['k']}"
                wrong.append(f"{sub}: {r['candidate']} on {shape}")
    if not section("Kernel checks: products against the exact reference", runs, "gemm.csv and tune.csv",
                   ["timed kernel runs", "exact", "wrong"]):
        return
    print(f"| {runs} | {runs - len(wrong)} | {len(wrong)} |\n")
    summary = os.path.join(res, "gemm", "summary.json")
    if os.path.isfile(summary):
        with open(summary) as f:
            tensor = json.load(f).get("tensor_cores")
        if tensor:
            print(f"Tensor-core kernels, first-use check: {tensor}\n")
    for w in wrong:
        print(f"- **WRONG**: {w}")
    if wrong:
        print()


def shader_checks(res):
    """What wgpu's shader runtime checks cost: the default kernel's GEMMs (gemm against
    gemm_checked) and the step (profile_trusted against profile_checked), the same run."""
    trusted, checked = rows(os.path.join(res, "gemm", "gemm.csv")), rows(os.path.join(res, "gemm_checked", "gemm.csv"))
    p_t, p_c = profile_ms(os.path.join(res, "profile_trusted")), profile_ms(os.path.join(res, "profile_checked"))
    if not section("Shader runtime checks: trusted modules (the default) against wgpu's checks", checked or p_c,
                   "gemm_checked/gemm.csv or profile_checked/summary.json",
                   ["what", "trusted", "wgpu's checks", "speed-up of trusted modules"]):
        return
    def default_tflops(rs):
        return {(r["precision"], r["layout"], r["m"]): num(r["tflops"]) for r in rs or [] if r.get("default") == "1"}
    t, c = default_tflops(trusted), default_tflops(checked)
    for key in sorted(c):
        if key in t:
            print(f"| {key[0]} {key[1]} {key[2]}³, default kernel, TFLOP/s | {fmt(t[key])} | {fmt(c[key])} | "
                  f"{fmt(ratio(t[key], c[key]), 2)} |")
    for b in sorted(p_c):
        if b in p_t:
            print(f"| step B = {b}, ms (GPU) | {fmt(p_t[b])} | {fmt(p_c[b])} | {fmt(ratio(p_c[b], p_t[b]), 2)} |")
    print()


def profile_ms(d):
    """B -> median step ms without per-dispatch queries, from a profile's summary.json."""
    path = os.path.join(d, "summary.json")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return {p["batch"]: p["step_ms_plain"] for p in json.load(f).get("batches", [])}


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        sys.exit("usage: python3 benches/device_report.py RESULTS_DIR (results.tgz unpacked)")
    res = sys.argv[1]
    p = peers(os.path.join(res, "peers.csv"))
    goals = []
    step_table(res, p, goals)
    gemm_table(res, goals)
    precision_table(res, p, goals)
    wide_table(res, goals)
    kernel_checks(res)
    shader_checks(res)
    section("Goals (issues 13 and 16)", True, "", ["goal", "measured", "met"])
    for what, v, need in goals:
        met = "—" if v is None else ("yes" if v >= need else "no")
        print(f"| {what} | {fmt(v, 2)} | {met} |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""batchscope's CPU backend beside PyTorch CPU and JAX jit, per power-of-two batch size, in one run.

One training step of the MLP 784-1024-1024-10 (ReLU, softmax cross-entropy, plain SGD unless
--momentum), examples/s. batchscope is timed by its own sweep (`sweep --backend cpu`, median of
the timed steps); the peers by wall time (median over >= 0.5 s after warm-up), each with the
threads this process is given (RAYON_NUM_THREADS / torch.set_num_threads / XLA's default, or
XLA's single-threaded Eigen with --threads 1).
A peer that is not importable is said so on its row and skipped; nothing is estimated.

The three are interleaved: for each round, for each B, batchscope (one `sweep` at that B), then
PyTorch, then JAX, and each keeps its best round. On a shared VM whose speed drifts by 2x over
minutes (seen on this project's machines), running the three minutes apart would measure the
drift; interleaving puts the three figures of one B seconds apart.

Usage: python3 benches/cpu_peers.py [--bin target/release/batchscope] [--max-batch 4096]
                                    [--threads N] [--momentum] [--csv OUT.csv]
                                    [--rounds 3]
"""
import argparse, csv, os, statistics, subprocess, sys, tempfile, time

SIZES = [784, 1024, 1024, 10]


def wall_ms(fn, sync, seconds=0.5, warmup=3):
    for _ in range(warmup):
        fn()
    sync()
    ts, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(ts) < 5:
        t = time.perf_counter()
        fn()
        sync()
        ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts)


def batchscope(bin_path, B, momentum, threads):
    """examples/s of batchscope's CPU step at batch B (one `sweep` over that batch alone)."""
    out = tempfile.mkdtemp(prefix="cpu_peers_")
    opt = "momentum" if momentum else "sgd"
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    cmd = [bin_path, "sweep", "--backend", "cpu", "--quiet", "--min-batch", str(B),
           "--max-batch", str(B), "--set", f'train.optimizer="{opt}"',
           "--set", "sweep.time_budget_s=0", "--set", f"data.n_train={max(8192, B)}",
           "--out", os.path.join(out, "sweep")]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "sweep", "sweep.csv")) as f:
        for r in csv.DictReader(f):
            if not r["skipped"] and int(r["batch"]) == B:
                return float(r["examples_per_s"])
    return None


def torch_peer(momentum, threads):
    """A function B -> examples/s of PyTorch's step, or None and why."""
    try:
        import torch
    except Exception as e:  # not installed, or a build that cannot load here
        return None, f"PyTorch not importable ({type(e).__name__}: {str(e)[:80]})"
    torch.set_num_threads(threads)
    layers = []
    for i in range(len(SIZES) - 1):
        layers.append(torch.nn.Linear(SIZES[i], SIZES[i + 1]))
        if i < len(SIZES) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9 if momentum else 0.0)

    def rate(B):
        x = torch.randn(B, SIZES[0])
        y = torch.randint(0, SIZES[-1], (B,))

        def step():
            opt.zero_grad(set_to_none=False)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

        return B / wall_ms(step, lambda: None) * 1e3
    return rate, f"PyTorch {torch.__version__} CPU eager, {torch.get_num_threads()} threads"


def jax_peer(momentum, threads):
    """A function B -> examples/s of JAX's jitted step, or None and why."""
    # XLA's CPU client sizes its pools from the core count; with one thread asked for, keep its
    # Eigen matmuls on one thread too (the flag must be set before jax is imported).
    if threads == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    try:
        import jax, jax.numpy as jnp
    except Exception as e:
        return None, f"JAX not importable ({type(e).__name__}: {str(e)[:80]})"

    def init(key):
        ps = []
        for i in range(len(SIZES) - 1):
            key, k = jax.random.split(key)
            ps.append((jax.random.normal(k, (SIZES[i], SIZES[i + 1])) / SIZES[i] ** 0.5,
                       jnp.zeros(SIZES[i + 1])))
        return ps

    def loss(ps, x, y):
        h = x
        for i, (w, b) in enumerate(ps):
            h = h @ w + b
            if i < len(ps) - 1:
                h = jax.nn.relu(h)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(h), y[:, None], axis=1))

    mu = 0.9 if momentum else 0.0

    @jax.jit
    def jstep(ps, vs, x, y):
        g = jax.grad(loss)(ps, x, y)
        vs = jax.tree_util.tree_map(lambda v, gg: mu * v + gg, vs, g)
        ps = jax.tree_util.tree_map(lambda p, v: p - 0.01 * v, ps, vs)
        return ps, vs

    ps = init(jax.random.PRNGKey(0))
    st = [ps, jax.tree_util.tree_map(jnp.zeros_like, ps)]

    def rate(B):
        with jax.default_matmul_precision("float32"):
            x = jax.random.normal(jax.random.PRNGKey(1), (B, SIZES[0]))
            y = jax.random.randint(jax.random.PRNGKey(2), (B,), 0, SIZES[-1])

            def f():
                st[0], st[1] = jstep(st[0], st[1], x, y)

            return B / wall_ms(f, lambda: jax.block_until_ready(st[0])) * 1e3
    return rate, f"JAX {jax.__version__} jit on {jax.devices()[0].platform}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/batchscope")
    ap.add_argument("--max-batch", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--momentum", action="store_true")
    ap.add_argument("--csv")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each keeps its best")
    ap.add_argument("--min-batch", type=int, default=1)
    a = ap.parse_args()
    batches = [1 << k for k in range(0, 17) if a.min_batch <= (1 << k) <= a.max_batch]
    pt_rate, pt_note = torch_peer(a.momentum, a.threads)
    jx_rate, jx_note = jax_peer(a.momentum, a.threads)
    bs, pt, jx = {}, ({} if pt_rate else None), ({} if jx_rate else None)
    best = lambda d, B, v: d.__setitem__(B, max(d.get(B) or 0.0, v or 0.0) or None)
    for _ in range(a.rounds):
        for B in batches:
            best(bs, B, batchscope(a.bin, B, a.momentum, a.threads))
            if pt_rate:
                best(pt, B, pt_rate(B))
            if jx_rate:
                best(jx, B, jx_rate(B))
    print(f"# MLP {'-'.join(map(str, SIZES))}, {'momentum 0.9' if a.momentum else 'plain SGD'}, "
          f"{a.threads} threads; examples/s, best of {a.rounds} interleaved rounds")
    print(f"# peers: {pt_note}; {jx_note}")
    header = ["B", "batchscope", "pytorch", "ratio_pt", "jax", "ratio_jax", "ratio_best"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    table = []
    for B in batches:
        b = bs.get(B)
        p = pt.get(B) if pt else None
        j = jx.get(B) if jx else None
        best = max([v for v in (p, j) if v is not None], default=None)
        row = [B, b, p, b / p if b and p else None, j, b / j if b and j else None,
               b / best if b and best else None]
        table.append(row)
        fmt = lambda v: "n/a" if v is None else (f"{v:.2f}" if isinstance(v, float) and v < 100 else f"{v:,.0f}" if isinstance(v, float) else str(v))
        print("| " + " | ".join(fmt(v) for v in row) + " |", flush=True)
    if a.csv:
        with open(a.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(table)


if __name__ == "__main__":
    sys.exit(main())

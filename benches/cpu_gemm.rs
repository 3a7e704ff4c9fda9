//! The CPU matmul kernels compared on the shapes the CPU backend runs: the `gemm` crate
//! (AVX-512 kernels, rayon pool), `matrixmultiply` (single-threaded), and the hand-written thin
//! kernels `rows` and `dot` — each where it supports the layout — beside the kernel the shape
//! table picks (`choose`).
//!
//! Shapes: every product of an MLP 784-1024-1024-10 train step (weights stored `[out, in]`) at
//! every power-of-two batch 1..4096. Throughput is in GFLOP/s (2·m·n·k per product).
//!
//! Criterion benches (B = 32 and 512) come first; then a summary table times the kernels
//! interleaved (round-robin, best of [`ROUNDS`]) so that load from other processes hits all
//! alike — on a shared machine that table is the fairer comparison. `-- nomatch` skips criterion
//! and prints only the summary; `CPU_GEMM_BATCHES=1,8,512` restricts it to some batches.
//!
//! Run: `cargo bench --bench cpu_gemm [-- nomatch]` (threads: `RAYON_NUM_THREADS`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use batchscope::backend::cpu::matmul::{choose, sgemm_with, Kernel};
use batchscope::backend::Gemm;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};

const LAYERS: [(usize, usize); 3] = [(784, 1024), (1024, 1024), (1024, 10)];

/// The products of one train step at batch `b`, named, for `Y = X Wᵀ`, `dW = dYᵀ X`, `dX = dY W`.
fn mlp_step(b: usize) -> Vec<(String, Gemm)> {
    let mut v = Vec::new();
    for (l, &(fan_in, fan_out)) in LAYERS.iter().enumerate() {
        // Forward: Y[B,out] = X[B,in] · W[out,in]ᵀ.
        v.push((
            format!("fwd{}_NT_{b}x{fan_out}x{fan_in}", l + 1),
            Gemm::nn(b, fan_out, fan_in).trans(false, true),
        ));
    }
    for (l, &(fan_in, fan_out)) in LAYERS.iter().enumerate() {
        // Weight gradient: dW[out,in] = dY[B,out]ᵀ · X[B,in].
        v.push((
            format!("dW{}_TN_{fan_out}x{fan_in}x{b}", l + 1),
            Gemm::nn(fan_out, fan_in, b).trans(true, false),
        ));
        // Input gradient (not needed for the first layer): dX[B,in] = dY[B,out] · W[out,in].
        if l > 0 {
            v.push((format!("dX{}_NN_{b}x{fan_in}x{fan_out}", l + 1), Gemm::nn(b, fan_in, fan_out)));
        }
    }
    v
}

/// Deterministic operands in [-1, 1).
fn operand(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

struct Bufs {
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
}

fn bufs(g: &Gemm) -> Bufs {
    Bufs { a: operand(g.m * g.k, 1), b: operand(g.k * g.n, 2), c: vec![0.0; g.m * g.n] }
}

/// One product with `which`, or with the table's choice when `which` is `None`.
fn run(which: Option<Kernel>, g: &Gemm, x: &mut Bufs) {
    let k = which.unwrap_or_else(|| choose(g));
    if let Err(e) = sgemm_with(k, g, black_box(&x.a), black_box(&x.b), &mut x.c) {
        panic!("{e}");
    }
    black_box(&x.c);
}

fn bench_shapes(c: &mut Criterion) {
    for b in [32, 512] {
        for (name, g) in mlp_step(b) {
            let mut group = c.benchmark_group(format!("sgemm/B{b}/{name}"));
            group.throughput(Throughput::Elements(g.flops() as u64));
            group.sample_size(10).warm_up_time(Duration::from_millis(300));
            group.measurement_time(Duration::from_secs(1));
            let mut x = bufs(&g);
            for which in Kernel::ALL.into_iter().filter(|k| k.supports(&g)) {
                group.bench_function(BenchmarkId::from_parameter(which.name()), |bch| {
                    bch.iter(|| run(Some(which), &g, &mut x))
                });
            }
            group.finish();
        }
    }
}

/// Interleaved rounds per shape in the summary table.
const ROUNDS: usize = 7;
/// Target duration of one timed batch of calls in the summary table.
const BATCH: Duration = Duration::from_millis(20);

/// Seconds per run of `work` with `which` (`None`: the table), over one batch of `reps` runs.
fn time_batch(which: Option<Kernel>, work: &[Gemm], bufs: &mut [Bufs], reps: usize) -> f64 {
    let t = Instant::now();
    for _ in 0..reps {
        for (g, x) in work.iter().zip(bufs.iter_mut()) {
            run(which, g, x);
        }
    }
    t.elapsed().as_secs_f64() / reps as f64
}

/// Best seconds per run of `work` for each candidate, measured round-robin.
fn race(cands: &[Option<Kernel>], work: &[Gemm]) -> Vec<f64> {
    let mut bufs: Vec<Bufs> = work.iter().map(bufs).collect();
    let once: Vec<f64> = cands.iter().map(|&w| time_batch(w, work, &mut bufs, 1)).collect();
    let fastest = once.iter().cloned().fold(f64::INFINITY, f64::min);
    let reps = (BATCH.as_secs_f64() / fastest).clamp(1.0, 10_000.0) as usize;
    let mut best = vec![f64::INFINITY; cands.len()];
    for round in 0..ROUNDS {
        for i in 0..cands.len() {
            let j = (i + round) % cands.len();
            best[j] = best[j].min(time_batch(cands[j], work, &mut bufs, reps));
        }
    }
    best
}

/// Batches of the summary: `CPU_GEMM_BATCHES` (comma-separated) or every power of two to 4096.
fn batches() -> Vec<usize> {
    match std::env::var("CPU_GEMM_BATCHES") {
        Ok(s) => s.split(',').filter_map(|t| t.trim().parse().ok()).collect(),
        Err(_) => (0..=12).map(|e| 1usize << e).collect(),
    }
}

/// GFLOP/s of every kernel per shape, and the whole step with the table vs `gemm` alone.
fn summary() {
    println!(
        "\nsummary: GFLOP/s, interleaved, best of {ROUNDS} (rayon threads {}); * = table's choice",
        rayon::current_num_threads()
    );
    let names: Vec<&str> = Kernel::ALL.iter().map(|k| k.name()).collect();
    let header: Vec<String> = names.iter().map(|n| format!("{n:>14}")).collect();
    println!("{:<30} {}", "shape", header.join(" "));
    for b in batches() {
        let step = mlp_step(b);
        for (name, g) in &step {
            let cands: Vec<Kernel> = Kernel::ALL.into_iter().filter(|k| k.supports(g)).collect();
            let t = race(&cands.iter().map(|&k| Some(k)).collect::<Vec<_>>(), &[*g]);
            let mut cells = Vec::new();
            for k in Kernel::ALL {
                let cell = match cands.iter().position(|&c| c == k) {
                    Some(i) => {
                        let mark = if choose(g) == k { "*" } else { " " };
                        format!("{:.1}{mark}", g.flops() / t[i] / 1e9)
                    }
                    None => "-".to_string(),
                };
                cells.push(cell);
            }
            let cells: Vec<String> = cells.iter().map(|c| format!("{c:>14}")).collect();
            println!("B{b:<5}{name:<25} {}", cells.join(" "));
        }
        let work: Vec<Gemm> = step.iter().map(|(_, g)| *g).collect();
        let t = race(&[None, Some(Kernel::Gemm)], &work);
        println!(
            "B{b:<5}{:<25} table {:.3} ms, gemm only {:.3} ms ({:.2}x)",
            "whole step (8 products)",
            t[0] * 1e3,
            t[1] * 1e3,
            t[1] / t[0]
        );
    }
}

criterion_group!(benches, bench_shapes);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not and only smoke-tests.
    if std::env::args().any(|a| a == "--bench") {
        summary();
    }
}

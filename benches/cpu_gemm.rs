//! SGEMM crates compared on the shapes the CPU backend runs: `gemm` 0.19 vs `matrixmultiply` 0.3.
//!
//! Shapes: every product of an MLP 784-1024-1024-10 train step (weights stored `[out, in]`) at
//! B = 32 and B = 512, the whole step, and square 1024³ / 2048³. Throughput is reported in
//! "elements" = FLOPs (2·m·n·k), so criterion's `Gelem/s` reads as GFLOP/s.
//!
//! After criterion, a summary table times the two crates interleaved (round-robin, best of
//! [`ROUNDS`]) so that load from other processes hits both alike; on a shared machine that table
//! is the fairer comparison.
//!
//! Run: `cargo bench --bench cpu_gemm` (rayon threads: `RAYON_NUM_THREADS`; matrixmultiply
//! threads: `MATMUL_NUM_THREADS`, default the physical core count).

use std::hint::black_box;
use std::time::{Duration, Instant};

use batchscope::backend::cpu::matmul::{sgemm_with, SgemmCrate};
use batchscope::backend::Gemm;
use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};

const CRATES: [SgemmCrate; 2] = [SgemmCrate::Gemm, SgemmCrate::MatrixMultiply];
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

fn run(which: SgemmCrate, g: &Gemm, x: &mut Bufs) {
    if let Err(e) = sgemm_with(which, g, black_box(&x.a), black_box(&x.b), &mut x.c) {
        panic!("{e}");
    }
    black_box(&x.c);
}

fn bench_shapes(c: &mut Criterion) {
    let mut shapes = Vec::new();
    for b in [32, 512] {
        shapes.extend(mlp_step(b).into_iter().map(|(name, g)| (format!("B{b}/{name}"), g)));
    }
    shapes.push(("square/1024".to_string(), Gemm::nn(1024, 1024, 1024)));
    shapes.push(("square/2048".to_string(), Gemm::nn(2048, 2048, 2048)));

    for (name, g) in &shapes {
        let mut group = c.benchmark_group(format!("sgemm/{name}"));
        group.throughput(Throughput::Elements(g.flops() as u64));
        group.sample_size(10).warm_up_time(Duration::from_millis(500));
        if g.flops() > 4e9 {
            group.sampling_mode(SamplingMode::Flat).measurement_time(Duration::from_secs(4));
        } else {
            group.measurement_time(Duration::from_secs(2));
        }
        let mut x = bufs(g);
        for which in CRATES {
            group.bench_function(BenchmarkId::from_parameter(which.name()), |bch| {
                bch.iter(|| run(which, g, &mut x))
            });
        }
        group.finish();
    }
}

fn bench_steps(c: &mut Criterion) {
    for b in [32, 512] {
        let step = mlp_step(b);
        let flops: f64 = step.iter().map(|(_, g)| g.flops()).sum();
        let mut bufs: Vec<Bufs> = step.iter().map(|(_, g)| bufs(g)).collect();
        let mut group = c.benchmark_group(format!("sgemm/B{b}/mlp_step_all_8"));
        group.throughput(Throughput::Elements(flops as u64));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        for which in CRATES {
            group.bench_function(BenchmarkId::from_parameter(which.name()), |bch| {
                bch.iter(|| {
                    for ((_, g), x) in step.iter().zip(bufs.iter_mut()) {
                        run(which, g, x);
                    }
                })
            });
        }
        group.finish();
    }
}

/// Interleaved rounds per shape in the summary table.
const ROUNDS: usize = 15;
/// Target duration of one timed batch of calls in the summary table.
const BATCH: Duration = Duration::from_millis(25);

/// Named list of products; a "step" runs all of them back to back.
type Work = (String, Vec<Gemm>);

/// Seconds per run of `work` with `which`, averaged over one batch of `reps` runs.
fn time_batch(which: SgemmCrate, work: &[Gemm], bufs: &mut [Bufs], reps: usize) -> f64 {
    let t = Instant::now();
    for _ in 0..reps {
        for (g, x) in work.iter().zip(bufs.iter_mut()) {
            run(which, g, x);
        }
    }
    t.elapsed().as_secs_f64() / reps as f64
}

/// GFLOP/s of both crates per shape, measured round-robin, best of `ROUNDS`.
fn summary() {
    let mut works: Vec<Work> = Vec::new();
    for b in [32, 512] {
        let step = mlp_step(b);
        works.extend(step.iter().map(|(n, g)| (format!("B{b}/{n}"), vec![*g])));
        works.push((format!("B{b}/mlp_step_all_8"), step.into_iter().map(|(_, g)| g).collect()));
    }
    works.push(("square/1024".into(), vec![Gemm::nn(1024, 1024, 1024)]));
    works.push(("square/2048".into(), vec![Gemm::nn(2048, 2048, 2048)]));

    println!(
        "\nsummary: GFLOP/s, interleaved, best of {ROUNDS} (rayon threads {})",
        rayon::current_num_threads()
    );
    println!("{:<34} {:>10} {:>15} {:>8}", "shape", "gemm", "matrixmultiply", "ratio");
    for (name, work) in &works {
        let flops: f64 = work.iter().map(|g| g.flops()).sum();
        let mut bufs: Vec<Bufs> = work.iter().map(bufs).collect();
        // Warm up both, and size a batch to about BATCH.
        let once = CRATES.map(|w| time_batch(w, work, &mut bufs, 1));
        let reps = (BATCH.as_secs_f64() / once[0].min(once[1])).clamp(1.0, 10_000.0) as usize;
        let mut best = [f64::INFINITY; 2];
        for round in 0..ROUNDS {
            for i in 0..2 {
                // Alternate which crate goes first.
                let j = (i + round) % 2;
                best[j] = best[j].min(time_batch(CRATES[j], work, &mut bufs, reps));
            }
        }
        let gf = best.map(|t| flops / t / 1e9);
        println!("{name:<34} {:>10.1} {:>15.1} {:>8.2}", gf[0], gf[1], gf[0] / gf[1]);
    }
}

criterion_group!(benches, bench_shapes, bench_steps);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not and only smoke-tests.
    if std::env::args().any(|a| a == "--bench") {
        summary();
    }
}

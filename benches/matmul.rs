//! Matmul throughput: GPU naive vs tiled (and the CPU backend) on square n³ products.
//!
//! Throughput is reported as elements = FLOPs (2·n³), so criterion's "Gelem/s" reads GFLOP/s.
//! Every GPU iteration records the product and waits for the device (`sync`).
//!
//! `cargo bench --bench matmul` runs everything; filter with criterion's name filter, e.g.
//! `cargo bench --bench matmul -- gpu_tiled` or `-- /1024`. On a software adapter (lavapipe) the
//! naive kernel needs minutes per 2048³ product, so it is skipped there unless
//! `BATCHSCOPE_BENCH_SLOW=1`.

use std::hint::black_box;
use std::time::Duration;

use batchscope::backend::cpu::CpuBackend;
use batchscope::backend::gpu::{GpuBackend, MatmulVariant};
use batchscope::backend::{Backend, Gemm};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SIZES: [usize; 3] = [256, 1024, 2048];

fn random(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn bench_matmul(c: &mut Criterion) {
    let gpu = match GpuBackend::new(None) {
        Ok(b) => {
            eprintln!("GPU: {}", b.device_name());
            Some(b)
        }
        Err(e) => {
            eprintln!("skipping GPU matmul benches: {e}");
            None
        }
    };
    let software = gpu.as_ref().is_some_and(|g| g.adapter().device_type == "Cpu");
    let run_slow = std::env::var("BATCHSCOPE_BENCH_SLOW").is_ok_and(|v| v == "1");
    let cpu = CpuBackend::new();
    let mut rng = ChaCha8Rng::seed_from_u64(42);

    for &n in &SIZES {
        // A: [n,n], B: [n,n], C: [n,n]
        let g = Gemm::nn(n, n, n);
        let a = random(&mut rng, n * n);
        let b = random(&mut rng, n * n);
        let mut group = c.benchmark_group("matmul");
        group.throughput(Throughput::Elements(g.flops() as u64));
        if n >= 1024 {
            // Seconds per iteration on a software device: few, flat samples.
            group.sample_size(10);
            group.sampling_mode(SamplingMode::Flat);
            group.warm_up_time(Duration::from_secs(1));
            group.measurement_time(Duration::from_secs(if n >= 2048 { 20 } else { 10 }));
        }

        if let Some(gpu) = &gpu {
            let da = gpu.upload(&a).expect("upload A");
            let db = gpu.upload(&b).expect("upload B");
            let mut dc = gpu.zeros(n * n).expect("alloc C");
            for v in MatmulVariant::ALL {
                // The skinny kernel is for few rows (the small-batch path), not square products.
                if v == MatmulVariant::Skinny {
                    continue;
                }
                if v == MatmulVariant::Naive && n >= 2048 && software && !run_slow {
                    eprintln!(
                        "skipping gpu_naive/{n} on a software adapter (BATCHSCOPE_BENCH_SLOW=1 runs it)"
                    );
                    continue;
                }
                gpu.set_matmul_variant(v);
                // Compile the pipeline and touch the buffers outside the timing.
                gpu.matmul(&g, &da, &db, &mut dc).expect("matmul");
                gpu.sync().expect("sync");
                group.bench_function(BenchmarkId::new(format!("gpu_{}", v.name()), n), |bch| {
                    bch.iter(|| {
                        gpu.matmul(&g, &da, &db, &mut dc).expect("matmul");
                        gpu.sync().expect("sync");
                    })
                });
            }
        }

        let mut cc = vec![0.0f32; n * n];
        group.bench_function(BenchmarkId::new("cpu", n), |bch| {
            bch.iter(|| {
                cpu.matmul(&g, black_box(&a), black_box(&b), &mut cc).expect("matmul");
            })
        });
        group.finish();
    }
}

/// Weight-gradient shaped products `dZᵀ·X` (A transposed, k = batch) with few output tiles: the
/// split-k path. Compare against the plain tiled kernel with `BATCHSCOPE_SPLITK=0`.
fn bench_splitk(c: &mut Criterion) {
    let gpu = match GpuBackend::new(None) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("skipping split-k benches: {e}");
            return;
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut group = c.benchmark_group("splitk");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    gpu.set_matmul_variant(MatmulVariant::Tiled);
    for &(m, n, k) in &[(1usize, 50usize, 8192usize), (1024, 784, 4096)] {
        let g = Gemm::nn(m, n, k).trans(true, false);
        let da = gpu.upload(&random(&mut rng, k * m)).expect("upload A");
        let db = gpu.upload(&random(&mut rng, k * n)).expect("upload B");
        let mut dc = gpu.zeros(m * n).expect("alloc C");
        gpu.matmul(&g, &da, &db, &mut dc).expect("matmul");
        gpu.sync().expect("sync");
        group.throughput(Throughput::Elements(g.flops() as u64));
        group.bench_function(BenchmarkId::new("tn", format!("{m}x{n}x{k}")), |bch| {
            bch.iter(|| {
                gpu.matmul(&g, &da, &db, &mut dc).expect("matmul");
                gpu.sync().expect("sync");
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_matmul, bench_splitk);
criterion_main!(benches);

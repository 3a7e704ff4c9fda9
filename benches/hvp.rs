//! One Hessian-vector product (R-operator) against one gradient, MLP 784-1024-1024-10 (tanh,
//! softmax cross-entropy), per backend and batch size:
//! - `gradient`: forward, loss, backward (`loss_and_grad`);
//! - `hvp`: the primal pass, R-forward and R-backward (`model::hvp`);
//! - `hvp_prepared`: the R-passes alone on a workspace a gradient already filled (the training
//!   monitor's marginal cost).
//!
//! Each iteration records the work and waits for the device. Throughput is in examples, so
//! criterion's "elem/s" reads examples/s; the ratio HVP / gradient is printed per batch size.
//! `BATCHSCOPE_BENCH_BATCHES=32,512` overrides the batch sizes.

use std::time::Duration;

use batchscope::backend::cpu::CpuBackend;
use batchscope::backend::gpu::GpuBackend;
use batchscope::backend::{Activation, Backend};
use batchscope::curvature::time_hvp_vs_grad;
use batchscope::data::{Dataset, Labels};
use batchscope::model::{hvp, LossKind, Mlp, MlpSpec, Targets};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn batches() -> Vec<usize> {
    std::env::var("BATCHSCOPE_BENCH_BATCHES")
        .ok()
        .map(|s| s.split(',').filter_map(|v| v.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![32, 512])
}

fn bench_backend<B: Backend>(c: &mut Criterion, name: &str, b: &B) {
    let spec = MlpSpec {
        sizes: vec![784, 1024, 1024, 10],
        activation: Activation::Tanh,
        loss: LossKind::SoftmaxXent,
    };
    let mlp = Mlp::new(spec).expect("model");
    let params = mlp.init(b, 1).expect("init");
    let mut group = c.benchmark_group(format!("hvp_784-1024-1024-10/{name}"));
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let mut ratios = Vec::new();
    for batch in batches() {
        let mut rng = ChaCha8Rng::seed_from_u64(batch as u64);
        let x: Vec<f32> = (0..batch * 784).map(|_| rng.random_range(-1.0..1.0)).collect();
        let y: Vec<u32> = (0..batch).map(|_| rng.random_range(0..10)).collect();
        let xb = b.upload(&x).expect("x");
        let yb = b.upload_idx(&y).expect("y");
        let targets = Targets::Classes(&yb);
        let mut ws = mlp.workspace(b, batch).expect("ws");
        let mut rws = mlp.rop_workspace(b, batch).expect("rws");
        let mut grads = params.zeros_like(b).expect("grads");
        let mut out = params.zeros_like(b).expect("out");
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new("gradient", batch), &batch, |bench, _| {
            bench.iter(|| {
                mlp.loss_and_grad(b, &params, &xb, &targets, &mut ws, &mut grads).expect("grad");
                b.sync().expect("sync");
            })
        });
        group.bench_with_input(BenchmarkId::new("hvp", batch), &batch, |bench, _| {
            bench.iter(|| {
                hvp(b, &mlp, &params, &grads, &xb, &targets, &mut ws, &mut rws, &mut out).expect("hvp");
                b.sync().expect("sync");
            })
        });
        group.bench_with_input(BenchmarkId::new("hvp_prepared", batch), &batch, |bench, _| {
            bench.iter(|| {
                mlp.hvp_prepared(b, &params, &grads, &xb, &ws, &mut rws, &mut out).expect("hvp");
                b.sync().expect("sync");
            })
        });
        let data =
            Dataset { x, targets: Labels::Classes { labels: y, classes: 10 }, n: batch, dim: 784 };
        ratios.push(time_hvp_vs_grad(b, &mlp, &params, &data, batch, 5).expect("timing"));
    }
    group.finish();
    for t in ratios {
        eprintln!(
            "{name} B={}: gradient {:.3} ms, HVP {:.3} ms ({:.2}x), R-passes alone {:.3} ms ({:.2}x)",
            t.rows, t.grad_ms, t.hvp_ms, t.hvp_over_grad, t.hvp_prepared_ms, t.prepared_over_grad
        );
    }
}

fn bench_hvp(c: &mut Criterion) {
    let cpu = CpuBackend::new();
    bench_backend(c, "cpu", &cpu);
    match GpuBackend::new(None) {
        Ok(g) => {
            eprintln!("GPU: {}", g.device_name());
            bench_backend(c, "gpu", &g);
        }
        Err(e) => eprintln!("GPU benches skipped: {e}"),
    }
}

criterion_group!(benches, bench_hvp);
criterion_main!(benches);

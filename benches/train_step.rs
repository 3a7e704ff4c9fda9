//! One MLP 784-1024-1024-10 training step (forward, per-example losses, backward, metrics,
//! momentum update) per backend at B = 1, 32, 512, as examples/s.
//!
//! Throughput is reported as elements = examples, so criterion's "elem/s" reads examples/s.
//! Each GPU iteration records the step and waits for the device. Reference (DESIGN.md):
//! PyTorch 2.15 CPU on this machine kind: 273, 5072, 13605 examples/s at B = 1, 32, 512.
//! `BATCHSCOPE_BENCH_BATCHES=1,32,512,4096` overrides the batch sizes.

use std::time::Duration;

use batchscope::backend::cpu::CpuBackend;
use batchscope::backend::gpu::GpuBackend;
use batchscope::backend::{Activation, Backend};
use batchscope::model::{LossKind, Mlp, MlpSpec, Targets};
use batchscope::train::{Clip, Optimizer, TrainState};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn batches() -> Vec<usize> {
    std::env::var("BATCHSCOPE_BENCH_BATCHES")
        .ok()
        .map(|s| s.split(',').filter_map(|v| v.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 32, 512])
}

fn bench_backend<B: Backend>(c: &mut Criterion, name: &str, b: &B) {
    let spec = MlpSpec {
        sizes: vec![784, 1024, 1024, 10],
        activation: Activation::Relu,
        loss: LossKind::SoftmaxXent,
    };
    let opt = Optimizer::Momentum { mu: 0.9, weight_decay: 0.0 };
    let mut group = c.benchmark_group(format!("train_step_784-1024-1024-10/{name}"));
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for batch in batches() {
        let mlp = Mlp::new(spec.clone()).expect("model");
        let params = mlp.init(b, 1).expect("init");
        let mut st = TrainState::new(b, mlp, params, batch, &opt).expect("state");
        // Steps between log steps: the gradient-norm reduction runs only when metrics are read.
        st.measure_grad_norm = false;
        let mut rng = ChaCha8Rng::seed_from_u64(batch as u64);
        let x: Vec<f32> = (0..batch * 784).map(|_| rng.random_range(-1.0..1.0)).collect();
        let y: Vec<u32> = (0..batch).map(|_| rng.random_range(0..10)).collect();
        let xb = b.upload(&x).expect("x");
        let yb = b.upload_idx(&y).expect("y");
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |bench, _| {
            bench.iter(|| {
                st.record_step(b, &xb, &Targets::Classes(&yb), &opt, 1e-3, &Clip::default())
                    .expect("step");
                b.sync().expect("sync");
            })
        });
    }
    group.finish();
}

fn bench_train_step(c: &mut Criterion) {
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

criterion_group!(benches, bench_train_step);
criterion_main!(benches);

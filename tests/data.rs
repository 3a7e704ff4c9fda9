//! Data: the GPU stream equals its CPU twin, resident datasets are the stream's examples,
//! statistics of the generators, minibatch orders, and `.npy` files (good and bad).

mod common;

use std::path::Path;

use batchscope::backend::cpu::datagen::generate;
use batchscope::backend::gpu::{datagen, GpuBackend};
use batchscope::backend::{Backend, GenKind, GenSpec};
use batchscope::config::{DataConfig, DataKind, Shuffle};
use batchscope::data::npy::{read_features, read_labels, write_npy_f32, write_npy_labels};
use batchscope::data::{
    build_resident, gen_spec, gen_table, hessian_eigenvalues, val_spec, BatchOrder, DataError, Labels,
    VAL_FIRST,
};
use common::tmpdir;
use npyz::WriterBuilder;

// ---- helpers ----------------------------------------------------------------------------

fn gm_spec(dim: usize, classes: usize, label_noise: f32, duplicates: u64) -> GenSpec {
    GenSpec {
        kind: GenKind::GaussianMixture,
        seed: 0x1234_5678_9abc,
        dim,
        classes,
        outputs: 0,
        label_noise,
        noise_std: 0.0,
        duplicates,
    }
}

fn lr_spec(dim: usize, outputs: usize, duplicates: u64) -> GenSpec {
    GenSpec {
        kind: GenKind::LinearRegression,
        seed: 77,
        dim,
        classes: 0,
        outputs,
        label_noise: 0.0,
        noise_std: 0.1,
        duplicates,
    }
}

fn cfg_of(kind: DataKind, dim: usize) -> DataConfig {
    DataConfig {
        kind,
        dim,
        n_train: 512,
        n_val: 64,
        outputs: 3,
        label_noise: 0.1,
        ..DataConfig::default()
    }
}

/// The table of a spec (via a config with the same fields).
fn table_of(spec: &GenSpec) -> Vec<f32> {
    let cfg = DataConfig {
        kind: match spec.kind {
            GenKind::GaussianMixture => DataKind::GaussianMixture,
            GenKind::LinearRegression => DataKind::LinearRegression,
        },
        dim: spec.dim,
        classes: spec.classes,
        outputs: spec.outputs,
        seed: spec.seed,
        ..DataConfig::default()
    };
    gen_table(&cfg)
}

/// `(x [rows, dim], labels [rows], targets [rows, outputs])` from the CPU generator.
fn cpu_gen(spec: &GenSpec, first: u64, rows: usize, table: &[f32]) -> (Vec<f32>, Vec<u32>, Vec<f32>) {
    let mut x = vec![f32::NAN; rows * spec.dim];
    let mut labels = vec![u32::MAX; rows];
    let mut targets = vec![f32::NAN; rows * spec.outputs];
    generate(spec, first, rows, table, &mut x, &mut labels, &mut targets).expect("cpu generate");
    (x, labels, targets)
}

/// The same from the GPU kernels.
fn gpu_gen(
    g: &GpuBackend,
    spec: &GenSpec,
    first: u64,
    rows: usize,
    table: &[f32],
) -> (Vec<f32>, Vec<u32>, Vec<f32>) {
    let t = g.upload(table).expect("table");
    let x = g.upload(&vec![f32::NAN; rows * spec.dim]).expect("x");
    let labels = g.upload_idx(&vec![u32::MAX; rows]).expect("labels");
    let targets = g.upload(&vec![f32::NAN; rows * spec.outputs]).expect("targets");
    datagen::generate(&g.dev, spec, first, rows, &t.0, &x.0, &labels.0, &targets.0)
        .expect("gpu generate");
    (g.read(&x).unwrap(), g.read_idx(&labels).unwrap(), g.read(&targets).unwrap())
}

// ---- CPU / GPU parity -------------------------------------------------------------------

#[test]
fn datagen_matches_cpu_on_ragged_shapes() {
    let g = common::gpu();
    // `first` values cross the 2^32 boundary of the distinct index (carry into the high word).
    let firsts = [0u64, 12_345, (1u64 << 32) - 2, VAL_FIRST + 7];
    for &dim in &[1usize, 5, 784] {
        for (ri, &rows) in [1usize, 3, 17, 65, 257].iter().enumerate() {
            let first = firsts[ri % firsts.len()];
            for dup in [1u64, 3] {
                let spec = gm_spec(dim, 10, 0.25, dup);
                let table = table_of(&spec);
                let (cx, cl, _) = cpu_gen(&spec, first, rows, &table);
                let (gx, gl, _) = gpu_gen(&g, &spec, first, rows, &table);
                let what = format!("gaussian_mixture dim={dim} rows={rows} first={first} dup={dup}");
                assert_eq!(cl, gl, "{what}: labels");
                common::assert_close(&format!("{what}: x"), &cx, &gx, 1e-6, 1e-6);

                let spec = lr_spec(dim, 3, dup);
                let table = table_of(&spec);
                let (cx, _, ct) = cpu_gen(&spec, first, rows, &table);
                let (gx, _, gt) = gpu_gen(&g, &spec, first, rows, &table);
                let what = format!("linear_regression dim={dim} rows={rows} first={first} dup={dup}");
                common::assert_close(&format!("{what}: x"), &cx, &gx, 1e-6, 1e-6);
                common::assert_close(&format!("{what}: targets"), &ct, &gt, 1e-6, 1e-6);
            }
        }
    }
}

#[test]
fn gpu_stream_handles_odd_output_counts_and_bad_lengths() {
    let g = common::gpu();
    for outputs in [1usize, 4, 7] {
        let spec = lr_spec(9, outputs, 1);
        let table = table_of(&spec);
        let (cx, _, ct) = cpu_gen(&spec, 5, 33, &table);
        let (gx, _, gt) = gpu_gen(&g, &spec, 5, 33, &table);
        common::assert_close("x", &cx, &gx, 1e-6, 1e-6);
        common::assert_close(&format!("targets K={outputs}"), &ct, &gt, 1e-6, 1e-6);
    }
    // Too short a buffer is an error, on both backends, before anything runs.
    let spec = gm_spec(4, 3, 0.0, 1);
    let table = table_of(&spec);
    let mut x = vec![0.0; 7];
    assert!(generate(&spec, 0, 2, &table, &mut x, &mut [0; 2], &mut []).is_err());
    let t = g.upload(&table).unwrap();
    let xb = g.zeros(7).unwrap();
    let lb = g.upload_idx(&[0; 2]).unwrap();
    assert!(datagen::generate(&g.dev, &spec, 0, 2, &t.0, &xb.0, &lb.0, &xb.0).is_err());
    let bad = GenSpec { duplicates: 0, ..spec };
    assert!(generate(&bad, 0, 1, &table, &mut [0.0; 4], &mut [0; 1], &mut []).is_err());
}

// ---- resident = stream ------------------------------------------------------------------

#[test]
fn resident_rows_are_the_stream_examples() {
    for kind in [DataKind::GaussianMixture, DataKind::LinearRegression] {
        let mut cfg = cfg_of(kind, 13);
        if kind == DataKind::LinearRegression {
            cfg.label_noise = 0.0;
        }
        let (train, val) = build_resident(&cfg, 0).expect("resident");
        assert_eq!((train.n, train.dim, val.n), (512, 13, 64));
        let spec = gen_spec(&cfg).expect("spec");
        let table = gen_table(&cfg);
        // A minibatch of the stream is exactly those rows of the resident set.
        let (x, labels, targets) = cpu_gen(&spec, 100, 37, &table);
        assert_eq!(&train.x[100 * 13..137 * 13], &x[..]);
        match &train.targets {
            Labels::Classes { labels: l, classes } => {
                assert_eq!(*classes, cfg.classes);
                assert_eq!(&l[100..137], &labels[..]);
            }
            Labels::Values { targets: t, outputs } => {
                assert_eq!(*outputs, 3);
                assert_eq!(&t[300..411], &targets[..]);
            }
        }
        // Validation is the disjoint part of the stream, same seed → same examples.
        let vs = val_spec(&spec);
        let (vx, vl, vt) = cpu_gen(&vs, VAL_FIRST, 64, &table);
        assert_eq!(val.x, vx);
        match &val.targets {
            Labels::Classes { labels, .. } => assert_eq!(labels, &vl),
            Labels::Values { targets, .. } => assert_eq!(targets, &vt),
        }
        assert_ne!(&val.x[..13], &train.x[..13]);
        // Building again gives bitwise the same datasets.
        let (train2, val2) = build_resident(&cfg, 0).unwrap();
        assert_eq!(train, train2);
        assert_eq!(val, val2);
    }
}

#[test]
fn gpu_minibatch_equals_resident_rows() {
    let g = common::gpu();
    let cfg = cfg_of(DataKind::GaussianMixture, 784);
    let (train, _) = build_resident(&cfg, 10).unwrap();
    let spec = gen_spec(&cfg).unwrap();
    let (x, labels, _) = gpu_gen(&g, &spec, 128, 64, &gen_table(&cfg));
    assert_eq!(&train.labels().unwrap()[128..192], &labels[..]);
    common::assert_close("stream vs resident", &train.x[128 * 784..192 * 784], &x, 1e-6, 1e-6);
}

#[test]
fn duplicates_repeat_examples_exactly() {
    let g = common::gpu();
    for spec in [gm_spec(6, 4, 0.3, 4), lr_spec(6, 2, 4)] {
        let table = table_of(&spec);
        for (x, labels, targets) in [cpu_gen(&spec, 2, 16, &table), gpu_gen(&g, &spec, 2, 16, &table)] {
            // Examples 2..18 → distinct 0,0,1,1,1,1,2,2,2,2,3,3,3,3,4,4.
            let d = |r: usize| (2 + r) / 4;
            for r in 1..16 {
                let same = d(r) == d(r - 1);
                assert_eq!(
                    x[r * 6..(r + 1) * 6] == x[(r - 1) * 6..r * 6],
                    same,
                    "{:?} x row {r}",
                    spec.kind
                );
                if spec.kind == GenKind::GaussianMixture && same {
                    assert_eq!(labels[r], labels[r - 1]);
                }
                if spec.kind == GenKind::LinearRegression {
                    assert_eq!(targets[r * 2..(r + 1) * 2] == targets[(r - 1) * 2..r * 2], same);
                }
            }
        }
    }
}

// ---- statistics -------------------------------------------------------------------------

#[test]
fn label_noise_rate_and_class_balance() {
    let n = 20_000;
    let noisy = gm_spec(2, 10, 0.3, 1);
    let clean = gm_spec(2, 10, 0.0, 1);
    let table = table_of(&noisy);
    let (xn, ln, _) = cpu_gen(&noisy, 0, n, &table);
    let (xc, lc, _) = cpu_gen(&clean, 0, n, &table);
    assert_eq!(xn, xc, "label noise must not change x (x follows the true class)");
    // A noisy label is a fresh uniform class: it differs from the true one w.p. 0.3 · 9/10.
    let changed = ln.iter().zip(&lc).filter(|(a, b)| a != b).count() as f64 / n as f64;
    let sigma = (0.27f64 * 0.73 / n as f64).sqrt();
    assert!((changed - 0.27).abs() < 5.0 * sigma, "changed fraction {changed}");
    // Classes are uniform: each count within 5σ of n/10.
    let mut counts = [0usize; 10];
    lc.iter().for_each(|&l| counts[l as usize] += 1);
    let sd = (n as f64 * 0.1 * 0.9).sqrt();
    for (c, &k) in counts.iter().enumerate() {
        assert!((k as f64 - n as f64 / 10.0).abs() < 5.0 * sd, "class {c}: {k} of {n}");
    }
    // Validation labels are clean.
    let vs = val_spec(&noisy);
    assert_eq!(vs.label_noise, 0.0);
    assert_eq!(vs.duplicates, 1);
}

#[test]
fn gaussian_mixture_x_is_its_class_mean_plus_unit_noise() {
    let spec = gm_spec(8, 3, 0.0, 1);
    let table = table_of(&spec);
    let n = 30_000;
    let (x, labels, _) = cpu_gen(&spec, 0, n, &table);
    let mut sum = [0f64; 3 * 8];
    let mut sq = 0f64;
    let mut cnt = [0usize; 3];
    for r in 0..n {
        let c = labels[r] as usize;
        cnt[c] += 1;
        for j in 0..8 {
            let v = x[r * 8 + j] as f64;
            sum[c * 8 + j] += v;
            let e = v - table[c * 8 + j] as f64;
            sq += e * e;
        }
    }
    for c in 0..3 {
        for j in 0..8 {
            let m = sum[c * 8 + j] / cnt[c] as f64;
            assert!((m - table[c * 8 + j] as f64).abs() < 5.0 / (cnt[c] as f64).sqrt(), "mean[{c},{j}]");
        }
    }
    let var = sq / (n * 8) as f64;
    assert!((var - 1.0).abs() < 0.02, "noise variance {var}");
}

#[test]
fn linear_regression_covariance_is_the_hessian_spectrum() {
    let cfg = DataConfig {
        kind: DataKind::LinearRegression,
        dim: 5,
        outputs: 2,
        condition_number: 100.0,
        noise_std: 0.1,
        ..DataConfig::default()
    };
    let eig = hessian_eigenvalues(&cfg);
    assert_eq!(eig.len(), 5);
    assert!((eig[0] - 1.0).abs() < 1e-12 && (eig[4] - 0.01).abs() < 1e-12);
    for w in eig.windows(2) {
        assert!((w[1] / w[0] - 0.01f64.powf(0.25)).abs() < 1e-12, "log-spaced");
    }
    let spec = gen_spec(&cfg).unwrap();
    let table = gen_table(&cfg);
    let n = 60_000;
    let (x, _, t) = cpu_gen(&spec, 0, n, &table);
    let mut cov = [[0f64; 5]; 5];
    for r in 0..n {
        for a in 0..5 {
            for b in 0..5 {
                cov[a][b] += x[r * 5 + a] as f64 * x[r * 5 + b] as f64;
            }
        }
    }
    for a in 0..5 {
        for b in 0..5 {
            let c = cov[a][b] / n as f64;
            // Standard error of a second moment of independent normals: √2 λ/√n (diagonal),
            // √(λ_a λ_b / n) (off-diagonal).
            let se =
                if a == b { 2f64.sqrt() * eig[a] } else { (eig[a] * eig[b]).sqrt() } / (n as f64).sqrt();
            let want = if a == b { eig[a] } else { 0.0 };
            assert!((c - want).abs() < 5.0 * se, "E[x{a} x{b}] = {c}, want {want} ± {se}");
        }
    }
    // t = W* x + noise: the residual has variance noise_std².
    let w = &table[..10];
    let mut res = 0f64;
    for r in 0..n {
        for k in 0..2 {
            let pred: f64 = (0..5).map(|j| w[k * 5 + j] as f64 * x[r * 5 + j] as f64).sum();
            res += (t[r * 2 + k] as f64 - pred).powi(2);
        }
    }
    let var = res / (2 * n) as f64;
    assert!((var - 0.01).abs() < 0.0005, "residual variance {var}");
}

#[test]
fn teacher_labels_are_balanced_deterministic_and_noisy_on_request() {
    let mut cfg = DataConfig {
        kind: DataKind::Teacher,
        dim: 20,
        classes: 5,
        teacher_hidden: 32,
        n_train: 10_000,
        n_val: 500,
        label_noise: 0.0,
        ..DataConfig::default()
    };
    let (train, val) = build_resident(&cfg, 5).unwrap();
    let labels = train.labels().unwrap();
    let mut counts = [0usize; 5];
    labels.iter().for_each(|&l| counts[l as usize] += 1);
    for (c, &k) in counts.iter().enumerate() {
        assert!(k > 1000 && k < 3000, "teacher class {c}: {k} of 10000 ({counts:?})");
    }
    assert_eq!(val.n, 500);
    // Its inputs are the stream's standard normals.
    let gm = gm_spec(20, 1, 0.0, 1);
    let zero_means = vec![0.0; 20];
    let x = cpu_gen(&GenSpec { seed: cfg.seed, ..gm }, 0, 4, &zero_means).0;
    assert_eq!(&train.x[..80], &x[..]);
    // Same config, same data; label noise changes ≈ label_noise · (1 - 1/C) of the labels.
    assert_eq!(build_resident(&cfg, 5).unwrap().0, train);
    cfg.label_noise = 0.5;
    let noisy = batchscope::data::build_train(&cfg, 5).unwrap();
    assert_eq!(noisy.x, train.x);
    let changed =
        noisy.labels().unwrap().iter().zip(labels).filter(|(a, b)| a != b).count() as f64 / 1e4;
    assert!((changed - 0.4).abs() < 0.025, "changed {changed}");
}

// ---- minibatch order --------------------------------------------------------------------

fn is_permutation(p: &[u32], n: usize) -> bool {
    let mut q = p.to_vec();
    q.sort();
    q == (0..n as u32).collect::<Vec<_>>()
}

#[test]
fn shuffle_modes_give_the_documented_orders() {
    let n = 103;
    let b = 10;
    // epoch: a permutation per epoch, different between epochs, a pure function of (seed, epoch).
    let mut o = BatchOrder::new(Shuffle::Epoch, false, 9, n, None);
    assert_eq!(o.steps_per_epoch(b), 10, "the last partial batch is dropped");
    assert!(o.batch(0, 10, b).is_none());
    let e0 = o.epoch_order(0).to_vec();
    let e1 = o.epoch_order(1).to_vec();
    assert!(is_permutation(&e0, n) && is_permutation(&e1, n));
    assert_ne!(e0, e1);
    assert_ne!(e0, (0..n as u32).collect::<Vec<_>>());
    assert_eq!(o.batch(0, 3, b).unwrap(), &e0[30..40]);
    assert_eq!(BatchOrder::new(Shuffle::Epoch, false, 9, n, None).epoch_order(1), &e1[..], "resume");
    assert_ne!(
        BatchOrder::new(Shuffle::Epoch, false, 10, n, None).epoch_order(0),
        &e0[..],
        "seed matters"
    );
    // once: one permutation, the same every epoch.
    let mut o = BatchOrder::new(Shuffle::Once, false, 9, n, None);
    let p0 = o.epoch_order(0).to_vec();
    assert!(is_permutation(&p0, n));
    assert_ne!(p0, (0..n as u32).collect::<Vec<_>>());
    for e in 1..4 {
        assert_eq!(o.epoch_order(e), &p0[..]);
        assert_eq!(o.batch(e, 2, b).unwrap(), &p0[20..30]);
    }
    // none: identity.
    let mut o = BatchOrder::new(Shuffle::None, false, 9, n, None);
    assert_eq!(o.epoch_order(5), &(0..n as u32).collect::<Vec<_>>()[..]);
    assert_eq!(o.batch(2, 4, b).unwrap(), &(40..50).collect::<Vec<u32>>()[..]);
    // none + sorted_by_label: labels non-decreasing, stable (ties keep dataset order).
    let labels: Vec<u32> = (0..n as u32).map(|i| (i * 7) % 5).collect();
    let mut o = BatchOrder::new(Shuffle::None, true, 9, n, Some(&labels));
    let s = o.epoch_order(0).to_vec();
    assert!(is_permutation(&s, n));
    for w in s.windows(2) {
        let (a, c) = (labels[w[0] as usize], labels[w[1] as usize]);
        assert!(a < c || (a == c && w[0] < w[1]), "order {w:?}");
    }
    assert_eq!(batchscope::data::stream_first(7, 32), 224);
}

// ---- .npy ---------------------------------------------------------------------------------

fn write_with<T: npyz::Serialize + Copy>(
    path: &Path,
    dtype: &str,
    shape: &[u64],
    fortran: bool,
    data: &[T],
) {
    let f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let ts: npyz::TypeStr = dtype.parse().unwrap();
    let order = if fortran { npyz::Order::Fortran } else { npyz::Order::C };
    let mut w = npyz::WriteOptions::new()
        .dtype(npyz::DType::Plain(ts))
        .shape(shape)
        .order(order)
        .writer(f)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

fn npy_cfg(features: &Path, labels: &Path) -> DataConfig {
    DataConfig {
        kind: DataKind::Npy,
        dim: 0,
        features: Some(features.to_path_buf()),
        labels: Some(labels.to_path_buf()),
        val_fraction: 0.25,
        ..DataConfig::default()
    }
}

#[test]
fn npy_round_trip_and_split() {
    let dir = tmpdir("roundtrip");
    let (n, d) = (40usize, 3usize);
    let x: Vec<f32> = (0..n * d).map(|i| i as f32 * 0.5 - 7.0).collect();
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 4).collect();
    let fx = dir.join("x.npy");
    let fy = dir.join("y.npy");
    write_npy_f32(&fx, &[n, d], &x).unwrap();
    write_npy_labels(&fy, &labels).unwrap();
    let (rx, rn, rd) = read_features(&fx).unwrap();
    assert_eq!((rx, rn, rd), (x.clone(), n, d));
    let (rl, ln) = read_labels(&fy, 4).unwrap();
    assert_eq!(ln, n);
    assert_eq!(rl, Labels::Classes { labels: labels.clone(), classes: 4 });

    // Every integer dtype reads the same labels.
    for dt in ["<i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8"] {
        let p = dir.join(format!("y{}.npy", &dt[1..]));
        match dt {
            "<i1" => write_with(
                &p,
                dt,
                &[n as u64],
                false,
                &labels.iter().map(|&l| l as i8).collect::<Vec<_>>(),
            ),
            "|u1" => write_with(
                &p,
                dt,
                &[n as u64],
                false,
                &labels.iter().map(|&l| l as u8).collect::<Vec<_>>(),
            ),
            "<i2" => write_with(
                &p,
                dt,
                &[n as u64],
                false,
                &labels.iter().map(|&l| l as i16).collect::<Vec<_>>(),
            ),
            "<u2" => write_with(
                &p,
                dt,
                &[n as u64],
                false,
                &labels.iter().map(|&l| l as u16).collect::<Vec<_>>(),
            ),
            "<i4" => write_with(
                &p,
                dt,
                &[n as u64],
                false,
                &labels.iter().map(|&l| l as i32).collect::<Vec<_>>(),
            ),
            "<u4" => write_with(&p, dt, &[n as u64], false, &labels),
            "<i8" => write_with(
                &p,
                dt,
                &[n as u64],
                false,
                &labels.iter().map(|&l| l as i64).collect::<Vec<_>>(),
            ),
            _ => write_with(
                &p,
                dt,
                &[n as u64],
                false,
                &labels.iter().map(|&l| l as u64).collect::<Vec<_>>(),
            ),
        }
        assert_eq!(
            read_labels(&p, 4).unwrap().0,
            Labels::Classes { labels: labels.clone(), classes: 4 },
            "{dt}"
        );
    }

    // Regression targets f32 [N, K].
    let ft = dir.join("t.npy");
    let t: Vec<f32> = (0..n * 2).map(|i| i as f32).collect();
    write_npy_f32(&ft, &[n, 2], &t).unwrap();
    assert_eq!(read_labels(&ft, 2).unwrap().0, Labels::Values { targets: t, outputs: 2 });

    // Split: 10 of 40 rows are validation, disjoint, deterministic, file order kept.
    let cfg = npy_cfg(&fx, &fy);
    let (train, val) = build_resident(&cfg, 4).unwrap();
    assert_eq!((train.n, val.n, train.dim), (30, 10, 3));
    let row_id = |r: &[f32]| ((r[0] + 7.0) / 1.5) as usize;
    let tr: Vec<usize> = (0..train.n).map(|i| row_id(train.row(i))).collect();
    let va: Vec<usize> = (0..val.n).map(|i| row_id(val.row(i))).collect();
    assert!(tr.windows(2).all(|w| w[0] < w[1]) && va.windows(2).all(|w| w[0] < w[1]));
    let mut all: Vec<usize> = tr.iter().chain(&va).copied().collect();
    all.sort();
    assert_eq!(all, (0..n).collect::<Vec<_>>());
    for (i, &id) in tr.iter().enumerate() {
        assert_eq!(train.labels().unwrap()[i], labels[id]);
    }
    assert_eq!(build_resident(&cfg, 4).unwrap().1, val);
    // duplicates repeat each training row k times in a row.
    let (dtrain, dval) = build_resident(&DataConfig { duplicates: 3, ..cfg.clone() }, 4).unwrap();
    assert_eq!((dtrain.n, dval.n), (90, 10));
    assert_eq!(dtrain.row(4), train.row(1));
    // data.dim must be 0 or D.
    let e = build_resident(&DataConfig { dim: 784, ..cfg }, 4).unwrap_err();
    assert!(matches!(e, DataError::Mismatch { .. }) && e.to_string().contains("data.dim"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The error's message names the file.
fn assert_names(e: &DataError, p: &Path) {
    let name = p.file_name().unwrap().to_string_lossy().to_string();
    assert!(e.to_string().contains(&name), "`{e}` does not name {name}");
}

#[test]
fn bad_npy_files_give_typed_errors_naming_the_file() {
    let dir = tmpdir("bad");
    let good_x = dir.join("good_x.npy");
    write_npy_f32(&good_x, &[4, 2], &[0.0; 8]).unwrap();
    let good_y = dir.join("good_y.npy");
    write_npy_labels(&good_y, &[0, 1, 2, 1]).unwrap();

    // Missing file.
    let missing = dir.join("missing.npy");
    let e = read_features(&missing).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }), "{e}");
    assert_names(&e, &missing);

    // Not an .npy file at all, and an empty one.
    let garbage = dir.join("garbage.npy");
    std::fs::write(&garbage, b"this is not numpy data, just text\n").unwrap();
    let e = read_features(&garbage).unwrap_err();
    assert!(matches!(e, DataError::Format { .. } | DataError::Truncated { .. }), "{e}");
    assert_names(&e, &garbage);
    let empty = dir.join("empty.npy");
    std::fs::write(&empty, b"").unwrap();
    let e = read_features(&empty).unwrap_err();
    assert!(matches!(e, DataError::Format { .. } | DataError::Truncated { .. }), "{e}");
    assert_names(&e, &empty);

    // Wrong dtype: f64 features, f64 labels, bool labels.
    let f64x = dir.join("f64_x.npy");
    write_with(&f64x, "<f8", &[4, 2], false, &[0f64; 8]);
    let e = read_features(&f64x).unwrap_err();
    assert!(matches!(e, DataError::Dtype { .. }) && e.to_string().contains("<f8"), "{e}");
    assert_names(&e, &f64x);
    let e = read_labels(&f64x, 2).unwrap_err();
    assert!(matches!(e, DataError::Dtype { .. }), "{e}");

    // Wrong rank: 1-D or 3-D features, 2-D integer labels.
    let rank1 = dir.join("rank1_x.npy");
    write_npy_f32(&rank1, &[8], &[0.0; 8]).unwrap();
    let e = read_features(&rank1).unwrap_err();
    assert!(matches!(e, DataError::Rank { .. }), "{e}");
    assert_names(&e, &rank1);
    let rank3 = dir.join("rank3_x.npy");
    write_npy_f32(&rank3, &[2, 2, 2], &[0.0; 8]).unwrap();
    assert!(matches!(read_features(&rank3).unwrap_err(), DataError::Rank { .. }));
    let y2d = dir.join("y2d.npy");
    write_with(&y2d, "<i8", &[4, 1], false, &[0i64; 4]);
    assert!(matches!(read_labels(&y2d, 3).unwrap_err(), DataError::Rank { .. }));

    // Regression targets with the wrong K.
    let t3 = dir.join("t3.npy");
    write_npy_f32(&t3, &[4, 3], &[0.0; 12]).unwrap();
    let e = read_labels(&t3, 2).unwrap_err();
    assert!(matches!(e, DataError::Mismatch { .. }), "{e}");
    assert_names(&e, &t3);

    // Big-endian and Fortran order.
    let be = dir.join("big_endian_x.npy");
    write_with(&be, ">f4", &[4, 2], false, &[0f32; 8]);
    let e = read_features(&be).unwrap_err();
    assert!(matches!(e, DataError::Layout { .. }) && e.to_string().contains("big-endian"), "{e}");
    assert_names(&e, &be);
    let fo = dir.join("fortran_x.npy");
    write_with(&fo, "<f4", &[4, 2], true, &[0f32; 8]);
    let e = read_features(&fo).unwrap_err();
    assert!(matches!(e, DataError::Layout { .. }) && e.to_string().contains("Fortran"), "{e}");

    // Truncated data.
    let trunc = dir.join("truncated_x.npy");
    write_npy_f32(&trunc, &[100, 4], &[1.0; 400]).unwrap();
    let len = std::fs::metadata(&trunc).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&trunc).unwrap().set_len(len - 10).unwrap();
    let e = read_features(&trunc).unwrap_err();
    assert!(matches!(e, DataError::Truncated { .. }) && e.to_string().contains("truncated"), "{e}");
    assert_names(&e, &trunc);
    // ... and a header cut in the middle.
    std::fs::OpenOptions::new().write(true).open(&trunc).unwrap().set_len(30).unwrap();
    let e = read_features(&trunc).unwrap_err();
    assert!(matches!(e, DataError::Truncated { .. } | DataError::Format { .. }), "{e}");
    assert_names(&e, &trunc);

    // Label out of range (and negative), naming index and value.
    let oor = dir.join("out_of_range_y.npy");
    write_with(&oor, "<i8", &[4], false, &[0i64, 1, 7, 2]);
    let e = read_labels(&oor, 3).unwrap_err();
    assert!(matches!(e, DataError::LabelOutOfRange { index: 2, value: 7, classes: 3, .. }), "{e}");
    assert!(e.to_string().contains("index 2") && e.to_string().contains("label 7"), "{e}");
    assert_names(&e, &oor);
    let neg = dir.join("negative_y.npy");
    write_with(&neg, "<i4", &[4], false, &[0i32, -1, 1, 2]);
    let e = read_labels(&neg, 3).unwrap_err();
    assert!(matches!(e, DataError::NegativeLabel { index: 1, value: -1, .. }), "{e}");
    assert!(e.to_string().contains("label -1 at index 1 is negative"), "{e}");
    assert_names(&e, &neg);

    // Row-count mismatch between features and labels.
    let short_y = dir.join("short_y.npy");
    write_npy_labels(&short_y, &[0, 1, 2]).unwrap();
    let e = build_resident(&npy_cfg(&good_x, &short_y), 3).unwrap_err();
    assert!(matches!(e, DataError::RowMismatch { n_features: 4, n_labels: 3, .. }), "{e}");
    assert_names(&e, &short_y);
    assert_names(&e, &good_x);

    // The good pair loads.
    let (train, val) = build_resident(&npy_cfg(&good_x, &good_y), 3).unwrap();
    assert_eq!(train.n + val.n, 4);
    // Writing with a shape that does not fit the data is an error, not a panic.
    assert!(write_npy_f32(&dir.join("w.npy"), &[3, 3], &[0.0; 8]).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

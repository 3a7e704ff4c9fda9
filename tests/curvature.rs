//! Hessian-vector products by the R-operator and the eigen-solvers built on them, on both
//! backends: HVPs equal f64 differences of gradients; H is symmetric; the GPU equals the CPU;
//! on linear regression H is known and the solvers find its spectrum; power iteration and
//! Lanczos agree with a dense eigen-decomposition of an explicit Hessian built from HVPs.

mod common;

use batchscope::backend::{Activation, Backend};
use batchscope::config::Config;
use batchscope::curvature::empirical_second_moment;
use batchscope::curvature::{
    dot, extreme_eigenvalues, hutchinson_trace, lanczos, random_unit, slq, top_k_deflation, DenseSym,
    HutchinsonOptions, HvpOperator, HvpOptions, PowerOptions, SlqOptions, SymOp,
};
use batchscope::data::{self, Dataset, Labels};
use batchscope::model::{hvp, LossKind, Mlp, MlpSpec, ParamSet, Targets};
use common::{assert_close, cpu, gpu, indices, tmpdir, uniform};

const ROWS: usize = 6;

/// A minibatch and a direction for a model.
struct Case {
    x: Vec<f32>,
    labels: Vec<u32>,
    targets: Vec<f32>,
}

fn case(mlp: &Mlp, rows: usize, seed: u64) -> Case {
    Case {
        x: uniform(seed, rows * mlp.inputs(), 1.5),
        labels: indices(seed + 1, rows, mlp.outputs() as u32),
        targets: uniform(seed + 2, rows * mlp.outputs(), 1.0),
    }
}

fn dataset(mlp: &Mlp, c: &Case) -> Dataset {
    let rows = c.labels.len();
    let targets = match mlp.spec.loss {
        LossKind::SoftmaxXent => Labels::Classes { labels: c.labels.clone(), classes: mlp.outputs() },
        LossKind::Mse => Labels::Values { targets: c.targets.clone(), outputs: mlp.outputs() },
    };
    Dataset { x: c.x.clone(), targets, n: rows, dim: mlp.inputs() }
}

/// Flat host vector → per-tensor host vectors in the model's layout.
fn split(mlp: &Mlp, flat: &[f32]) -> Vec<Vec<f32>> {
    let (_, shapes) = mlp.param_layout();
    let mut off = 0;
    shapes
        .iter()
        .map(|s| {
            let n: usize = s.iter().product();
            off += n;
            flat[off - n..off].to_vec()
        })
        .collect()
}

/// `H v` of the minibatch on backend `b` by the R-operator, flat.
fn backend_hvp<B: Backend>(b: &B, mlp: &Mlp, params: &[Vec<f32>], v: &[f32], c: &Case) -> Vec<f32> {
    let rows = c.labels.len();
    let (names, shapes) = mlp.param_layout();
    let p = ParamSet::from_host(b, &names, &shapes, params).unwrap();
    let vs = ParamSet::from_host(b, &names, &shapes, &split(mlp, v)).unwrap();
    let mut out = p.zeros_like(b).unwrap();
    let mut ws = mlp.workspace(b, rows).unwrap();
    let mut rws = mlp.rop_workspace(b, rows).unwrap();
    let x = b.upload(&c.x).unwrap();
    let labels = b.upload_idx(&c.labels).unwrap();
    let t = b.upload(&c.targets).unwrap();
    let targets = match mlp.spec.loss {
        LossKind::SoftmaxXent => Targets::Classes(&labels),
        LossKind::Mse => Targets::Values(&t),
    };
    hvp(b, mlp, &p, &vs, &x, &targets, &mut ws, &mut rws, &mut out).unwrap();
    out.to_flat(b).unwrap()
}

fn specs() -> Vec<MlpSpec> {
    let mut v = Vec::new();
    for act in [Activation::Tanh, Activation::Relu] {
        for loss in [LossKind::SoftmaxXent, LossKind::Mse] {
            // Two hidden layers: the R-backward crosses a hidden layer's φ'' term twice.
            v.push(MlpSpec { sizes: vec![4, 5, 4, 3], activation: act, loss });
        }
    }
    v
}

/// `(H v)_i = ∂/∂θ_i (∇L · v)` by central differences of the f64 loss, i.e. the central
/// difference of the gradient along v, each gradient component itself a central difference:
/// `(L(θ+h e_i+h v) − L(θ−h e_i+h v) − L(θ+h e_i−h v) + L(θ−h e_i−h v)) / 4h²`.
fn reference_hvp(spec: &MlpSpec, params: &[Vec<f32>], v: &[Vec<f32>], c: &Case) -> Vec<f32> {
    let p64: Vec<Vec<f64>> = params.iter().map(|t| t.iter().map(|&x| x as f64).collect()).collect();
    let x64: Vec<f64> = c.x.iter().map(|&x| x as f64).collect();
    let t64: Vec<f64> = c.targets.iter().map(|&x| x as f64).collect();
    let h = 1e-4;
    let shifted = |ti: usize, j: usize, si: f64, sv: f64| {
        let mut q = p64.clone();
        for (qt, vt) in q.iter_mut().zip(v) {
            for (a, &d) in qt.iter_mut().zip(vt) {
                *a += sv * h * d as f64;
            }
        }
        q[ti][j] += si * h;
        common::reference_loss(spec, &q, &x64, &c.labels, &t64)
    };
    let mut out = Vec::new();
    for (ti, t) in p64.iter().enumerate() {
        for j in 0..t.len() {
            let d = shifted(ti, j, 1.0, 1.0) - shifted(ti, j, -1.0, 1.0) - shifted(ti, j, 1.0, -1.0)
                + shifted(ti, j, -1.0, -1.0);
            out.push((d / (4.0 * h * h)) as f32);
        }
    }
    out
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// The R-operator's Hv equals differences of f64 gradients within 1e-4 of ‖Hv‖∞.
fn hvp_matches_gradient_differences<B: Backend>(b: &B) {
    for (si, spec) in specs().into_iter().enumerate() {
        let mlp = Mlp::new(spec.clone()).unwrap();
        let params = mlp.init_host(3 + si as u64);
        let c = case(&mlp, ROWS, 40 + 10 * si as u64);
        let v = uniform(90 + si as u64, mlp.num_params(), 1.0);
        let got = backend_hvp(b, &mlp, &params, &v, &c);
        let want = reference_hvp(&spec, &params, &split(&mlp, &v), &c);
        let scale = max_abs(&want);
        assert!(scale > 1e-3, "degenerate case: Hv ≈ 0");
        assert_close(
            &format!(
                "{} Hv ({:?}, {:?}) vs f64 differences of gradients",
                b.device_name(),
                spec.activation,
                spec.loss
            ),
            &want,
            &got,
            1e-4 * scale,
            1e-4,
        );
    }
}
both_backends!(hvp_equals_differences_of_gradients, hvp_matches_gradient_differences);

/// uᵀHv = vᵀHu; the R-passes after a training step's `loss_and_grad` (the monitor's path, v = g)
/// equal the full HVP, and gᵀHg read on the device equals the host dot product.
fn hessian_is_symmetric_and_prepared_path_agrees<B: Backend>(b: &B) {
    let spec =
        MlpSpec { sizes: vec![6, 8, 7, 4], activation: Activation::Tanh, loss: LossKind::SoftmaxXent };
    let mlp = Mlp::new(spec).unwrap();
    let params = mlp.init_host(21);
    let c = case(&mlp, 11, 300);
    let n = mlp.num_params();
    let (u, v) = (uniform(301, n, 1.0), uniform(302, n, 1.0));
    let hu = backend_hvp(b, &mlp, &params, &u, &c);
    let hv = backend_hvp(b, &mlp, &params, &v, &c);
    let (uhv, vhu) = (dot(&u, &hv), dot(&v, &hu));
    assert!(
        (uhv - vhu).abs() <= 1e-5 * uhv.abs().max(vhu.abs()).max(1e-3),
        "uᵀHv = {uhv} vs vᵀHu = {vhu}"
    );

    // Monitor path: gradient, then the R-passes on the same workspace with v = g.
    let (names, shapes) = mlp.param_layout();
    let p = ParamSet::from_host(b, &names, &shapes, &params).unwrap();
    let mut grads = p.zeros_like(b).unwrap();
    let mut hg = p.zeros_like(b).unwrap();
    let mut ws = mlp.workspace(b, 11).unwrap();
    let mut rws = mlp.rop_workspace(b, 11).unwrap();
    let x = b.upload(&c.x).unwrap();
    let labels = b.upload_idx(&c.labels).unwrap();
    mlp.loss_and_grad(b, &p, &x, &Targets::Classes(&labels), &mut ws, &mut grads).unwrap();
    mlp.hvp_prepared(b, &p, &grads, &x, &ws, &mut rws, &mut hg).unwrap();
    let g = grads.to_flat(b).unwrap();
    let full = backend_hvp(b, &mlp, &params, &g, &c);
    assert_close(
        "Hg after loss_and_grad vs full hvp",
        &full,
        &hg.to_flat(b).unwrap(),
        1e-6 * max_abs(&full),
        1e-5,
    );
    let device_gthg = hg.dot(b, &grads).unwrap();
    let host_gthg = dot(&g, &full);
    assert!(
        (device_gthg - host_gthg).abs() <= 1e-5 * host_gthg.abs(),
        "gᵀHg device {device_gthg} vs host {host_gthg}"
    );
}
both_backends!(hessian_is_symmetric, hessian_is_symmetric_and_prepared_path_agrees);

#[test]
fn gpu_hvp_equals_cpu_hvp() {
    let (c, g) = (cpu(), gpu());
    for (si, spec) in specs().into_iter().enumerate() {
        let mlp = Mlp::new(MlpSpec { sizes: vec![9, 17, 12, 5], ..spec }).unwrap();
        let params = mlp.init_host(50 + si as u64);
        let data = case(&mlp, 23, 500 + si as u64);
        let v = uniform(600 + si as u64, mlp.num_params(), 1.0);
        let hc = backend_hvp(&c, &mlp, &params, &v, &data);
        let hg = backend_hvp(&g, &mlp, &params, &v, &data);
        assert_close(
            &format!("{:?}/{:?} Hv GPU vs CPU", mlp.spec.activation, mlp.spec.loss),
            &hc,
            &hg,
            1e-5 * max_abs(&hc),
            1e-4,
        );
    }
}

const LINEAR: &str = r#"
[model]
hidden = []
activation = "identity"
loss = "mse"
[data]
kind = "linear_regression"
n_train = 300
dim = 12
outputs = 2
condition_number = 50.0
seed = 4
"#;

/// `I_K ⊗ M` in the flat layout `[W [K, D] row-major, b [K]]`, `M [D+1, D+1]` with the bias last.
fn kron_identity(k: usize, m: &DenseSym) -> DenseSym {
    let d = m.n - 1;
    let p = k * d + k;
    let idx = |out: usize, i: usize| if i < d { out * d + i } else { k * d + out };
    let mut a = vec![0.0; p * p];
    for out in 0..k {
        for i in 0..=d {
            for j in 0..=d {
                a[idx(out, i) * p + idx(out, j)] = m.a[i * m.n + j];
            }
        }
    }
    DenseSym { n: p, a }
}

/// Linear model + squared error: H = I_K ⊗ E_batch[[x;1][x;1]ᵀ] exactly; the operator over the
/// dataset in chunks (with and without cached activations) equals it, and λmax, λmin, the trace
/// and the density's support match its eigen-decomposition.
fn linear_regression_hessian_is_known<B: Backend>(b: &B) {
    let cfg = Config::from_toml(LINEAR, "linear").unwrap();
    let mlp = Mlp::new(cfg.mlp_spec()).unwrap();
    assert_eq!(mlp.spec.sizes, vec![12, 2], "hidden = [] is a linear model");
    let train = data::build_train(&cfg.data, cfg.data_outputs()).unwrap();
    let exact = kron_identity(2, &empirical_second_moment(&train));
    let eig = exact.eigenvalues().unwrap();
    let (lmin, lmax) = (eig[0], eig[eig.len() - 1]);
    // Population: eigenvalues in [1/50, 1] plus the bias's 1; the sample is near it.
    assert!(lmax > 0.8 && lmax < 1.5 && lmin > 0.01 && lmin < 0.03, "{lmin} {lmax}");

    for cache_bytes in [0u64, 1 << 30] {
        // 300 rows in chunks of 128: 128 + 128 + 44, weighted by rows/N.
        let params = mlp.init(b, 1).unwrap();
        let mut op = HvpOperator::new(
            b,
            mlp.clone(),
            params,
            &train,
            HvpOptions { chunk_rows: 128, cache_bytes },
        )
        .unwrap();
        assert_eq!((op.chunks(), op.cached()), (3, cache_bytes > 0));
        let h = DenseSym::from_op(&mut op).unwrap();
        let scale = lmax as f32;
        let want: Vec<f32> = exact.a.iter().map(|&x| x as f32).collect();
        let got: Vec<f32> = h.a.iter().map(|&x| x as f32).collect();
        assert_close(
            &format!("{} explicit H of the linear model (cache {cache_bytes})", b.device_name()),
            &want,
            &got,
            2e-6 * scale,
            1e-5,
        );
    }

    let params = mlp.init(b, 1).unwrap();
    let mut op = HvpOperator::new(
        b,
        mlp.clone(),
        params,
        &train,
        HvpOptions { chunk_rows: 128, cache_bytes: 1 << 30 },
    )
    .unwrap();
    let popts = PowerOptions { max_iters: 400, tol: 1e-9, seed: 1 };
    let (hi, lo) = extreme_eigenvalues(&mut op, &popts).unwrap();
    assert!((hi.eigenvalue - lmax).abs() < 1e-4 * lmax, "power λmax {} vs {lmax}", hi.eigenvalue);
    // The shifted iteration converges slowly at the dense small end: a looser check.
    assert!(
        (lo.eigenvalue - lmin).abs() < 0.05 * lmax,
        "shifted power λmin {} vs {lmin}",
        lo.eigenvalue
    );

    let n = op.dim();
    let run = lanczos(&mut op, &random_unit(3, n), n).unwrap();
    let ritz = run.ritz().unwrap();
    assert!(
        (ritz.values[ritz.values.len() - 1] - lmax).abs() < 1e-5 * lmax,
        "Lanczos λmax {:?} vs {lmax}",
        ritz.values.last()
    );
    assert!((ritz.values[0] - lmin).abs() < 1e-4 * lmax, "Lanczos λmin {} vs {lmin}", ritz.values[0]);

    let t = hutchinson_trace(
        &mut op,
        &HutchinsonOptions { min_samples: 10, max_samples: 400, rel_tol: 0.005, seed: 5 },
    )
    .unwrap();
    let tr = exact.trace();
    assert!(
        (t.trace - tr).abs() < 4.0 * t.std_error + 1e-6 * tr,
        "trace {} ± {} vs {tr}",
        t.trace,
        t.std_error
    );
    assert!((t.trace - tr).abs() < 0.02 * tr, "trace {} vs {tr}", t.trace);

    let s = slq(&mut op, &SlqOptions { runs: 3, steps: 10, seed: 6 }, Some(&ritz)).unwrap();
    let tol = 1e-4 * lmax;
    assert!(
        s.nodes.iter().all(|&x| x >= lmin - tol && x <= lmax + tol),
        "SLQ nodes outside [{lmin}, {lmax}]: {:?}",
        s.nodes
    );
    assert!(s.mass_below(1e-6) < 1e-9, "a PSD Hessian has no negative mass");
    // The density's mean is tr(H)/P.
    assert!(
        (s.integrate(|x| x) - tr / n as f64).abs() < 0.1 * tr / n as f64,
        "SLQ mean {} vs {}",
        s.integrate(|x| x),
        tr / n as f64
    );
    let d = batchscope::curvature::density_on_grid(&s.nodes, &s.weights, 200, 0.01);
    let peak = d.density.iter().cloned().fold(0.0, f64::max);
    for (&x, &p) in d.grid.iter().zip(&d.density) {
        if x < lmin - 6.0 * d.sigma || x > lmax + 6.0 * d.sigma {
            assert!(p < 1e-6 * peak, "density {p} at {x} outside the spectrum");
        }
    }
}
both_backends!(linear_regression_spectrum, linear_regression_hessian_is_known);

/// The Hessian of a tiny tanh MLP, built column by column from HVPs, decomposed densely; power
/// iteration (both ends, top-3 by deflation) and Lanczos agree with it.
fn solvers_agree_with_dense_eigendecomposition<B: Backend>(b: &B) {
    let mlp = Mlp::new(MlpSpec {
        sizes: vec![3, 4, 3],
        activation: Activation::Tanh,
        loss: LossKind::SoftmaxXent,
    })
    .unwrap();
    // A smaller init than usual puts the net near the saddle at the origin: both signs.
    let (names, shapes) = mlp.param_layout();
    let params = ParamSet::from_host(b, &names, &shapes, &mlp.init_host_scaled(8, 0.5)).unwrap();
    let c = case(&mlp, 10, 700);
    let mut op = HvpOperator::new(
        b,
        mlp.clone(),
        params,
        &dataset(&mlp, &c),
        HvpOptions { chunk_rows: 64, cache_bytes: 1 << 20 },
    )
    .unwrap();
    let h = DenseSym::from_op(&mut op).unwrap();
    let eig = h.eigenvalues().unwrap();
    let (lmin, lmax) = (eig[0], eig[eig.len() - 1]);
    let scale = lmax.abs().max(lmin.abs());
    assert!(lmin < -1e-3 * scale, "expected a saddle (a negative eigenvalue): {eig:?}");

    let popts = PowerOptions { max_iters: 3000, tol: 1e-10, seed: 2 };
    let (hi, lo) = extreme_eigenvalues(&mut op, &popts).unwrap();
    assert!(
        (hi.eigenvalue - lmax).abs() < 1e-3 * scale,
        "power λmax {} vs {lmax} ({eig:?})",
        hi.eigenvalue
    );
    assert!(
        (lo.eigenvalue - lmin).abs() < 1e-3 * scale,
        "power λmin {} vs {lmin} ({eig:?})",
        lo.eigenvalue
    );

    let mut by_mag = eig.clone();
    by_mag.sort_by(|a, b| b.abs().total_cmp(&a.abs()));
    let top = top_k_deflation(&mut op, 2, &popts).unwrap();
    for (r, want) in top.iter().zip(&by_mag) {
        assert!(
            (r.eigenvalue - want).abs() < 2e-3 * scale,
            "deflation {} vs {want} ({by_mag:?})",
            r.eigenvalue
        );
    }

    let n = op.dim();
    let full = lanczos(&mut op, &random_unit(4, n), n).unwrap();
    assert!(full.orthogonality_loss() < 1e-4, "orthogonality {}", full.orthogonality_loss());
    let ritz = full.ritz().unwrap();
    // A Krylov space holds one vector per distinct eigenvalue (softmax's shift invariance gives
    // H a null space of several dimensions), so it may stop before n steps: compare as sets.
    let near = |x: f64, set: &[f64]| set.iter().any(|&y| (x - y).abs() < 1e-4 * scale);
    for &g in &ritz.values {
        assert!(near(g, &eig), "Ritz value {g} is no eigenvalue of {eig:?}");
    }
    for &w in &eig {
        assert!(near(w, &ritz.values), "eigenvalue {w} missed by the Ritz values {:?}", ritz.values);
    }
    let short = lanczos(&mut op, &random_unit(5, n), 14).unwrap().ritz().unwrap();
    assert!(
        (short.values[short.values.len() - 1] - lmax).abs() < 1e-3 * scale,
        "14-step λmax {:?} vs {lmax}",
        short.values.last()
    );
    assert!((short.values[0] - lmin).abs() < 1e-3 * scale, "14-step λmin {} vs {lmin}", short.values[0]);
}
both_backends!(solvers_agree_with_dense_hessian, solvers_agree_with_dense_eigendecomposition);

/// The whole-set gradient of the operator equals the mean of per-chunk gradients (chunk weights
/// rows/N) — the same accumulation the HVP uses — and the loss is the mean loss.
fn operator_gradient_is_the_mean_gradient<B: Backend>(b: &B) {
    let mlp = Mlp::new(MlpSpec {
        sizes: vec![5, 6, 3],
        activation: Activation::Relu,
        loss: LossKind::SoftmaxXent,
    })
    .unwrap();
    let c = case(&mlp, 37, 800);
    let data = dataset(&mlp, &c);
    let params = mlp.init_host(9);
    let (names, shapes) = mlp.param_layout();
    let one = |chunk_rows: usize| {
        let p = ParamSet::from_host(b, &names, &shapes, &params).unwrap();
        let mut op =
            HvpOperator::new(b, mlp.clone(), p, &data, HvpOptions { chunk_rows, cache_bytes: 0 })
                .unwrap();
        op.gradient().unwrap()
    };
    let (l1, g1) = one(37);
    let (l3, g3) = one(16);
    assert!((l1 - l3).abs() < 1e-6 * l1.abs(), "loss {l1} vs chunked {l3}");
    let p64: Vec<Vec<f64>> = params.iter().map(|t| t.iter().map(|&x| x as f64).collect()).collect();
    let x64: Vec<f64> = c.x.iter().map(|&x| x as f64).collect();
    let want = common::reference_loss(&mlp.spec, &p64, &x64, &c.labels, &[]);
    assert!((l1 - want).abs() < 1e-5 * want, "loss {l1} vs f64 {want}");
    assert_close("chunked gradient vs one chunk", &g1, &g3, 1e-6 * max_abs(&g1), 1e-5);
}
both_backends!(operator_gradient, operator_gradient_is_the_mean_gradient);

// ---- the command ---------------------------------------------------------------------------

fn bin() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_batchscope"));
    c.env("RUST_LOG", "error");
    c
}

fn run_ok(args: &[&str]) -> String {
    let o = bin().args(args).output().expect("run batchscope");
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "batchscope {args:?} failed: {err}");
    assert!(!err.contains("panicked"), "{err}");
    out.into_owned()
}

fn summary(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary.json"))
        .expect("json")
}

/// `batchscope curvature` on configs/ill_conditioned.toml (κ = 1000): λmax, λmin and the trace
/// match the empirical Hessian of the examples used, and the closed form to sampling accuracy.
fn check_ill_conditioned_summary(s: &serde_json::Value, dir: &std::path::Path) {
    let f = |k: &str| s[k].as_f64().unwrap_or_else(|| panic!("summary.json `{k}` missing: {s}"));
    let r = &s["reference"];
    let rf = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("reference `{k}` missing: {r}"));
    assert!(rf("lambda_max_rel_error_empirical") < 1e-4, "{r}");
    assert!(rf("lambda_min_rel_error_empirical") < 1e-3, "{r}");
    assert!(rf("trace_rel_error_empirical") < 0.03, "{r}");
    assert!(rf("lambda_max_rel_error_closed_form") < 0.1, "{r}");
    assert!((rf("closed_form_lambda_min") - 1e-3).abs() < 1e-9);
    assert!((f("lr_stable_max") - 2.0 / f("lambda_max")).abs() < 1e-9);
    assert_eq!(f("negative_mass"), 0.0);
    assert_eq!(s["condition_status"], "converged", "51 Lanczos steps on 51 parameters");
    assert!(
        f("condition_estimate") > 500.0 && f("condition_estimate") < 2000.0,
        "κ ≈ 1000: {}",
        f("condition_estimate")
    );
    assert!(f("gTHg") > 0.0 && f("grad_norm_sq") > 0.0);
    assert!(f("gTHg") <= f("lambda_max") * f("grad_norm_sq") * (1.0 + 1e-5), "gᵀHg ≤ λmax gᵀg");
    assert!(f("hvp_over_grad_time") > 0.0);
    assert_eq!(s["top_eigenvalues"].as_array().map(Vec::len), Some(5));
    let csv = std::fs::read_to_string(dir.join("density.csv")).expect("density.csv");
    assert!(csv.starts_with("eigenvalue,density\n") && csv.lines().count() > 100);
    let svg = std::fs::read_to_string(dir.join("density.svg")).expect("density.svg");
    assert!(svg.contains("<svg") && svg.contains("spectral density"));
}

#[test]
fn curvature_command_on_ill_conditioned_cpu() {
    let dir = tmpdir("ill-cpu");
    let out = run_ok(&[
        "curvature",
        "--config",
        "configs/ill_conditioned.toml",
        "--backend",
        "cpu",
        "--out",
        dir.to_str().unwrap(),
        "--quiet",
        "--batch",
        "64",
        "--batch",
        "1024",
        "--repeats",
        "3",
    ]);
    assert!(out.contains("λmax") && out.contains("closed form"), "{out}");
    let s = summary(&dir);
    assert_eq!(s["examples"].as_u64(), Some(8192));
    check_ill_conditioned_summary(&s, &dir);
    // The spread over random batches shrinks with the batch size.
    let b = s["batches"].as_array().expect("batches");
    assert_eq!(b.len(), 2);
    let e = |i: usize, k: &str| b[i][k].as_f64().unwrap();
    assert!(e(1, "lambda_max_rel_rmse") < e(0, "lambda_max_rel_rmse"), "{s}");
    assert!(e(1, "grad_rel_error_mean") < e(0, "grad_rel_error_mean"));
    assert!(e(1, "newton_rel_error_mean") < e(0, "newton_rel_error_mean"));
    assert!(std::fs::read_to_string(dir.join("batches.csv")).unwrap().lines().count() == 7);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A "random batch" of every example is the whole set: its λmax and trace equal the whole
/// set's. The trace used to differ by several % (6.3 % in an audit): the batch's Hutchinson
/// estimate drew its own probes, and the difference of two independent estimates is their
/// noise. The same probes (common random numbers) leave the batch's own difference alone.
#[test]
fn a_batch_of_every_example_has_the_whole_sets_curvature() {
    let dir = tmpdir("whole-batch");
    let config = dir.join("tanh.toml");
    std::fs::write(
        &config,
        "[model]\nhidden = [8]\nactivation = \"tanh\"\n[data]\nkind = \"gaussian_mixture\"\nn_train = 128\nn_val = 16\ndim = 4\nclasses = 3\n",
    )
    .expect("config");
    let out = dir.join("run");
    let (c, o) = (config.to_str().expect("path"), out.to_str().expect("path"));
    let args = ["curvature", "--config", c, "--backend", "cpu", "--out", o, "--quiet", "--batch", "128"];
    run_ok(&[&args[..], &["--repeats", "2", "--trace-samples", "40"]].concat());
    let s = summary(&out);
    let b = &s["batches"][0];
    assert_eq!(b["batch"].as_u64(), Some(128));
    let rel = |k: &str| b[k].as_f64().unwrap_or(f64::NAN);
    assert!(rel("trace_rel_rmse") < 1e-4, "{b}");
    assert!(rel("lambda_max_rel_rmse") < 1e-4, "{b}");
    assert!(rel("grad_rel_error_mean") < 1e-4, "{b}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn curvature_command_on_ill_conditioned_gpu() {
    let _ = gpu(); // fails loudly without an adapter
    let dir = tmpdir("ill-gpu");
    run_ok(&[
        "curvature",
        "--config",
        "configs/ill_conditioned.toml",
        "--backend",
        "gpu",
        "--out",
        dir.to_str().unwrap(),
        "--quiet",
        "--examples",
        "1024",
        "--slq-runs",
        "2",
        "--trace-samples",
        "60",
        "--trace-tol",
        "0.01",
    ]);
    let s = summary(&dir);
    assert_eq!(s["backend"].as_str(), Some("gpu"));
    assert_eq!(s["examples"].as_u64(), Some(1024));
    check_ill_conditioned_summary(&s, &dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// configs/saddle.toml starts next to a saddle: eigenvalues of both signs, negative mass.
#[test]
fn curvature_command_sees_the_saddle() {
    let dir = tmpdir("saddle");
    run_ok(&[
        "curvature",
        "--config",
        "configs/saddle.toml",
        "--backend",
        "cpu",
        "--out",
        dir.to_str().unwrap(),
        "--quiet",
        "--slq-runs",
        "2",
    ]);
    let s = summary(&dir);
    let f = |k: &str| s[k].as_f64().unwrap();
    assert!(
        f("lambda_min") < -0.5 * f("lambda_max"),
        "λmin {} vs λmax {}",
        f("lambda_min"),
        f("lambda_max")
    );
    assert!(f("negative_mass") > 0.02, "negative mass {}", f("negative_mass"));
    assert!(
        s["power"]["converged"].as_bool().unwrap_or(false),
        "shifted power iteration: {}",
        s["power"]
    );
    assert!(
        (s["power"]["lambda_max"].as_f64().unwrap() - f("lambda_max")).abs() < 0.01 * f("lambda_max")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A checkpoint from `batchscope train` is analysed at its weights (lower loss than at init);
/// a missing one is a clean error before any output is written.
#[test]
fn curvature_command_reads_a_checkpoint() {
    let train_dir = tmpdir("train");
    run_ok(&[
        "train",
        "--config",
        "configs/ill_conditioned.toml",
        "--backend",
        "cpu",
        "--out",
        train_dir.to_str().unwrap(),
        "--quiet",
        "--set",
        "train.epochs=1",
    ]);
    let ck = train_dir.join("last.safetensors");
    let (at_init, trained) = (tmpdir("init"), tmpdir("ckpt"));
    let common = [
        "curvature",
        "--config",
        "configs/ill_conditioned.toml",
        "--backend",
        "cpu",
        "--quiet",
        "--slq-runs",
        "1",
        "--out",
    ];
    run_ok(&[&common[..], &[at_init.to_str().unwrap()]].concat());
    run_ok(&[&common[..], &[trained.to_str().unwrap(), "--checkpoint", ck.to_str().unwrap()]].concat());
    let (a, b) = (summary(&at_init), summary(&trained));
    assert!(
        b["loss"].as_f64().unwrap() < 0.5 * a["loss"].as_f64().unwrap(),
        "loss at init {} vs trained {}",
        a["loss"],
        b["loss"]
    );
    // A quadratic: the Hessian does not depend on the weights.
    let rel = (a["lambda_max"].as_f64().unwrap() - b["lambda_max"].as_f64().unwrap()).abs()
        / a["lambda_max"].as_f64().unwrap();
    assert!(rel < 1e-4, "{rel}");

    let missing_parent = tmpdir("missing");
    let missing = missing_parent.join("run");
    let o = bin()
        .args([
            "curvature",
            "--config",
            "configs/ill_conditioned.toml",
            "--backend",
            "cpu",
            "--out",
            missing.to_str().unwrap(),
            "--checkpoint",
            "/nonexistent/x.safetensors",
        ])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.lines().any(|l| l.starts_with("error:") && l.contains("x.safetensors")), "{err}");
    assert!(!missing.exists(), "no run directory for a bad checkpoint");
    for d in [train_dir, at_init, trained, missing_parent] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// `model.init_scale` multiplies every initial weight (biases stay 0); it is validated.
#[test]
fn init_scale_scales_the_weights_and_is_validated() {
    let mlp = Mlp::new(MlpSpec {
        sizes: vec![3, 4, 2],
        activation: Activation::Tanh,
        loss: LossKind::SoftmaxXent,
    })
    .unwrap();
    let (one, small) = (mlp.init_host(5), mlp.init_host_scaled(5, 1e-3));
    for (a, b) in one.iter().zip(&small) {
        for (x, y) in a.iter().zip(b) {
            assert_eq!(*y, x * 1e-3);
        }
    }
    assert_eq!(Config::embedded_default().unwrap().model.init_scale, 1.0);
    let saddle = Config::load(Some(std::path::Path::new("configs/saddle.toml")), &[]).unwrap();
    assert_eq!(saddle.model.init_scale, 0.001);
    for bad in ["-1.0", "nan", "inf"] {
        let e = Config::from_toml(&format!("[model]\ninit_scale = {bad}\n"), "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("model.init_scale"), "{bad}: {e}");
    }
}

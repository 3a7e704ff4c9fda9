//! Mixed-precision kernels equal their CPU twins: `to_half` bit for bit (specials included), the
//! f16 GEMM within tolerances derived from f16 and f32 epsilon and k on ragged shapes, and the
//! loss-scaling kernels bit for bit over a run with an injected inf gradient. The
//! cooperative-matrix GEMM has its own hardware-gated test (see `matmul_coop_matches_cpu`): 16x16
//! tiles on GPUs, 8x8 on Mesa 26's lavapipe, where `.ci/coop_lavapipe.sh` runs it in CI.

mod common;

use batchscope::backend::cpu::f16::round_f16;
use batchscope::backend::gpu::matmul_f16::{self, HalfKernel};
use batchscope::backend::gpu::{coop_check, matmul_coop};
use batchscope::backend::half::{scaler, HalfBuf, ScaleGrowth};
use batchscope::backend::{Backend, Gemm, MomentumStep, ParamUpdate, UpdateRule};
use common::half::{half_of, ops};
use common::{cpu, gpu, uniform};

/// Ragged sizes: not multiples of any tile.
const SIZES: [usize; 6] = [1, 3, 17, 63, 65, 130];

/// Unit roundoff of f16 and f32.
const U16: f64 = 1.0 / 2048.0;
const U32: f64 = 1.0 / 16_777_216.0;

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Whether the f16 bits `h` are a NaN: all-ones exponent, nonzero mantissa.
fn half_is_nan(h: u16) -> bool {
    h & 0x7c00 == 0x7c00 && h & 0x03ff != 0
}

/// `want` and `got` bit for bit, except that a NaN matches a NaN of any payload: the payload an
/// arithmetic NaN gets is the hardware's (x86 keeps the input's quiet NaN, NVIDIA returns
/// 0x7FFFFFFF). Panics at the first mismatch.
fn assert_bits_nan_any(what: &str, want: &[f32], got: &[f32]) {
    assert_eq!(want.len(), got.len(), "{what}: lengths");
    let same = |(w, g): (&f32, &f32)| w.to_bits() == g.to_bits() || (w.is_nan() && g.is_nan());
    if let Some(i) = want.iter().zip(got).position(|p| !same(p)) {
        panic!("{what}: [{i}] {:#010x} vs {:#010x}", want[i].to_bits(), got[i].to_bits());
    }
}

/// Packed f16 words (two halves each, low half first) bit for bit, except that a NaN half
/// matches a NaN half of any payload (the f16 copy of a NaN keeps part of its payload).
fn assert_half_words_nan_any(what: &str, want: &[f32], got: &[f32]) {
    assert_eq!(want.len(), got.len(), "{what}: lengths");
    let halves = |w: f32| [w.to_bits() as u16, (w.to_bits() >> 16) as u16];
    for (i, (&w, &g)) in want.iter().zip(got).enumerate() {
        for (j, (hw, hg)) in halves(w).into_iter().zip(halves(g)).enumerate() {
            let same = hw == hg || (half_is_nan(hw) && half_is_nan(hg));
            assert!(same, "{what}: half [{}] {hw:#06x} vs {hg:#06x}", 2 * i + j);
        }
    }
}

#[test]
fn to_half_matches_cpu() {
    let (c, g) = (cpu(), gpu());
    let mut x = uniform(7, 1001, 70000.0);
    x.extend(uniform(8, 300, 1e-4)); // subnormal halves
    let specials = [
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        65504.0,
        65519.99,
        65520.0,
        1.0 + 2f32.powi(-11),
        1.0 + 3.0 * 2f32.powi(-11),
        2f32.powi(-24),
        2f32.powi(-25),
        3.0 * 2f32.powi(-26),
        f32::MIN_POSITIVE,
        1e-30,
        -3.0e38,
    ];
    x.extend(specials);
    for n in [1, 2, 5, x.len()] {
        let words = |b: &dyn Fn() -> Vec<f32>| bits(&b());
        let rc = words(&|| c.read(&half_of(&c, &x[..n]).words).unwrap());
        let rg = words(&|| g.read(&half_of(&g, &x[..n]).words).unwrap());
        assert_eq!(rc, rg, "to_half bits, n = {n}");
    }
    let back = ops(&g).read_half(&half_of(&g, &x)).unwrap();
    for (i, (&v, &w)) in x.iter().zip(&back).enumerate() {
        let want = round_f16(v);
        assert!(want.to_bits() == w.to_bits() || (want.is_nan() && w.is_nan()), "[{i}] {v}: {w}");
    }
    println!("parity ok: to_half, {} values bit for bit", x.len());
}

/// `to_half_all` (four tensors per `to_half4` dispatch on the GPU, a last one alone by
/// `to_half`; one `to_half` each on the CPU) writes every tensor's words bit for bit as
/// `to_half` does, for 1 to 9 tensors of odd, even and one-element lengths, some past one
/// workgroup of words, with f16 specials (overflow, subnormals, NaN); the words past each
/// tensor's copy are untouched.
#[test]
fn to_half_all_equals_to_half_per_tensor() {
    let g = gpu();
    let lens = [1usize, 600, 7, 2, 1025, 33, 4, 513, 3];
    let values: Vec<Vec<f32>> = lens
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let mut v = uniform(40 + i as u64, n, 70000.0);
            for (j, special) in [f32::NAN, 1e-6, -65520.0].into_iter().enumerate() {
                if n / 2 + j < n {
                    v[n / 2 + j] = special;
                }
            }
            v
        })
        .collect();
    for count in 1..=lens.len() {
        let xs: Vec<_> = values[..count].iter().map(|v| g.upload(v).expect("upload")).collect();
        // One word more than each copy needs, pre-filled, to catch a stray write.
        let mut outs: Vec<HalfBuf<_>> = values[..count]
            .iter()
            .map(|v| HalfBuf {
                words: g
                    .upload(&vec![f32::from_bits(0xdead_beef); v.len().div_ceil(2) + 1])
                    .expect("upload"),
                len: v.len(),
            })
            .collect();
        let mut items: Vec<_> = xs.iter().zip(outs.iter_mut()).map(|(x, o)| (o.len, x, o)).collect();
        ops(&g).to_half_all(&mut items).expect("to_half_all");
        for (i, (v, out)) in values.iter().zip(&outs).enumerate() {
            let want = half_of(&g, v);
            let got = bits(&g.read(&out.words).expect("read"));
            let want = bits(&g.read(&want.words).expect("read"));
            assert_eq!(got[..want.len()], want[..], "{count} tensors: tensor {i} ({} values)", v.len());
            assert_eq!(got[want.len()], 0xdead_beef, "{count} tensors: tensor {i} wrote past its words");
        }
    }
}

/// `amp_scale_to_half` (one fused kernel on the GPU; `amp_scale` then `to_half` on the CPU):
/// the scaled vector and its packed halves, bit for bit on both backends, for odd and even
/// lengths, with scales that overflow f16 (65504 · 2 = inf) and push values into subnormals;
/// the NaN input's scaled value and half are NaNs, their payloads the hardware's.
#[test]
fn amp_scale_to_half_matches_cpu() {
    let (c, g) = (cpu(), gpu());
    let mut x = uniform(11, 777, 40.0);
    x.extend([0.0, -0.0, 1e-6, -3e-7, 65504.0, f32::NAN]);
    fn fused<B: Backend>(b: &B, x: &[f32], n: usize, scale: f32) -> (Vec<f32>, Vec<f32>) {
        let state = b.upload(&[scale, 0.0, 0.0, 0.0]).unwrap();
        let mut xb = b.upload(&x[..n]).unwrap();
        let mut out = ops(b).zeros_half(n).unwrap();
        ops(b).amp_scale_to_half(n, &state, &mut xb, &mut out).unwrap();
        let mut scaled = b.read(&xb).unwrap();
        scaled.truncate(n);
        (scaled, b.read(&out.words).unwrap())
    }
    let mut cases = 0;
    for n in [1usize, 2, 5, 256, 513, x.len()] {
        for scale in [1.0f32, 2.0, 1024.0, 2f32.powi(-20)] {
            let (xc, hc) = fused(&c, &x, n, scale);
            let (xg, hg) = fused(&g, &x, n, scale);
            // NaN × S is a NaN whose payload is the hardware's: any NaN matches.
            assert_bits_nan_any(&format!("scaled x, n = {n}, S = {scale}"), &xc, &xg);
            assert_half_words_nan_any(&format!("f16 words, n = {n}, S = {scale}"), &hc, &hg);
            // The halves are the scaled values, rounded: the twin of the unfused pair.
            let back = ops(&g).read_half(&HalfBuf { words: g.upload(&hg).unwrap(), len: n }).unwrap();
            for (i, (&v, &w)) in xg.iter().zip(&back).enumerate() {
                let want = round_f16(v);
                assert!(
                    want.to_bits() == w.to_bits() || (want.is_nan() && w.is_nan()),
                    "[{i}] {v}: {w}"
                );
            }
            cases += 1;
        }
    }
    println!("parity ok: amp_scale_to_half, {cases} cases bit for bit");
}

/// `(f64 reference of the f16-rounded operands, Σ_p |a||b| per element)` for `g`, and the f64
/// product of the unrounded f32 operands.
fn references(g: &Gemm, a: &[f32], b: &[f32], c0: &[f32]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (m, n, k) = (g.m, g.n, g.k);
    let at = |i: usize, p: usize| if g.trans_a { a[p * m + i] } else { a[i * k + p] };
    let bt = |p: usize, j: usize| if g.trans_b { b[j * k + p] } else { b[p * n + j] };
    let (mut rounded, mut mag, mut exact) = (vec![0.0; m * n], vec![0.0; m * n], vec![0.0; m * n]);
    for i in 0..m {
        for j in 0..n {
            let (mut s, mut s_abs, mut s_exact) = (0.0f64, 0.0f64, 0.0f64);
            for p in 0..k {
                let (x, y) = (at(i, p), bt(p, j));
                let (xh, yh) = (round_f16(x) as f64, round_f16(y) as f64);
                s += xh * yh;
                s_abs += (xh * yh).abs();
                s_exact += x as f64 * y as f64;
            }
            let beta_c = if g.beta == 0.0 { 0.0 } else { g.beta as f64 * c0[i * n + j] as f64 };
            let alpha = g.alpha as f64;
            rounded[i * n + j] = alpha * s + beta_c;
            exact[i * n + j] = alpha * s_exact + beta_c;
            mag[i * n + j] = alpha.abs() * s_abs + beta_c.abs();
        }
    }
    (rounded, mag, exact)
}

/// Checks `out` of a half GEMM: (1) against the same f16 operands summed in f64, within
/// `2 γ_k(f32) Σ|a||b|` (both backends sum f32 products of exact halves); (2) against the
/// unrounded f32 operands, within `(2 u16 + u16²) Σ|a||b|` more (each operand rounded once).
fn check_half_gemm(what: &str, g: &Gemm, a: &[f32], b: &[f32], c0: &[f32], out: &[f32]) {
    let (rounded, mag, exact) = references(g, a, b, c0);
    let kf = g.k as f64 + 2.0;
    let gamma = 2.0 * kf * U32 / (1.0 - kf * U32);
    for (idx, &o) in out.iter().enumerate() {
        let o = o as f64;
        let tol1 = gamma * mag[idx] + 1e-30;
        assert!(
            (o - rounded[idx]).abs() <= tol1,
            "{what} [{idx}]: {o} vs {} (tol {tol1})",
            rounded[idx]
        );
        // Σ|a||b| of the rounded operands bounds the unrounded ones' within (1 + u16)².
        let tol2 = (2.0 * U16 + U16 * U16) * mag[idx] * (1.0 + U16).powi(2) + tol1;
        assert!(
            (o - exact[idx]).abs() <= tol2,
            "{what} [{idx}]: {o} vs exact {} (tol {tol2})",
            exact[idx]
        );
    }
}

fn half_gemm_case<B: Backend>(b: &B, g: &Gemm, a: &[f32], bm: &[f32], c0: &[f32]) -> Vec<f32> {
    let (ha, hb) = (half_of(b, a), half_of(b, bm));
    let mut c = b.upload(c0).unwrap();
    ops(b).matmul_half(g, &ha, &hb, &mut c).unwrap();
    b.read(&c).unwrap()
}

#[test]
fn matmul_f16_matches_cpu() {
    let (c, gp) = (cpu(), gpu());
    let mut cases = 0;
    for (i, &m) in SIZES.iter().enumerate() {
        for (j, &n) in SIZES.iter().enumerate() {
            let k = SIZES[(i + 2 * j) % SIZES.len()];
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let (alpha, beta, nan_c) =
                    if (i + j) % 2 == 0 { (1.0, 0.0, true) } else { (0.5, 0.25, false) };
                let g = Gemm::nn(m, n, k).trans(ta, tb).scaled(alpha, beta);
                let seed = (i * 100 + j * 10) as u64;
                let a = uniform(seed, m * k, 1.0);
                let bm = uniform(seed + 1, k * n, 4.0);
                let c0 = if nan_c { vec![f32::NAN; m * n] } else { uniform(seed + 2, m * n, 1.0) };
                let what = format!("{m}x{n}x{k} ta={ta} tb={tb}");
                check_half_gemm(
                    &format!("cpu {what}"),
                    &g,
                    &a,
                    &bm,
                    &c0,
                    &half_gemm_case(&c, &g, &a, &bm, &c0),
                );
                assert_eq!(
                    matmul_f16::choose(&gp.dev, &g).coop_block().is_some(),
                    matmul_f16::coop_enabled()
                        && matmul_coop::available(&gp.dev.ctx)
                        && matmul_coop::eligible(&g, &gp.dev)
                );
                check_half_gemm(
                    &format!("gpu {what}"),
                    &g,
                    &a,
                    &bm,
                    &c0,
                    &half_gemm_case(&gp, &g, &a, &bm, &c0),
                );
                cases += 1;
            }
        }
    }
    println!("parity ok: matmul_f16, {cases} ragged cases on both backends");
}

/// A run of 6 loss-scaled steps on two tensors with momentum, an inf injected into tensor 1's
/// gradient at step `inf_step`; returns the scaler state and both parameter tensors after each
/// step. Gradients are multiples of 2^-8 scaled by S, so every value is exact in f32.
fn amp_run<B: Backend>(b: &B, inf_step: usize, interval: u32) -> Vec<Vec<f32>> {
    amp_run_on(b, inf_step, interval, &[37, 300], false)
}

/// [`amp_run`] on tensors of `sizes`, with `many`: unscaled and updated by the multi-tensor ops
/// (`amp_unscale_all`, `amp_update_params`), else one op per tensor.
fn amp_run_on<B: Backend>(
    b: &B,
    inf_step: usize,
    interval: u32,
    sizes: &[usize],
    many: bool,
) -> Vec<Vec<f32>> {
    let h = ops(b);
    let growth = ScaleGrowth::every(interval);
    let mut state = b.upload(&[1024.0, 0.0, 0.0, 0.0]).unwrap();
    let mut params: Vec<_> = sizes.iter().map(|&n| b.upload(&vec![1.0; n.max(1)]).unwrap()).collect();
    let mut vel: Vec<_> = sizes.iter().map(|&n| b.zeros(n.max(1)).unwrap()).collect();
    let step = MomentumStep { lr: 0.125, mu: 0.5, weight_decay: 0.0 };
    let mut trace = Vec::new();
    for s in 0..6 {
        // The backward pass of a scaled loss leaves every gradient times S; all of them are
        // unscaled (and checked) before any tensor is updated.
        let mut grads = Vec::new();
        for (t, &n) in sizes.iter().enumerate() {
            let g: Vec<f32> =
                (0..n.max(1)).map(|i| ((i * 7 + s * 3 + t) % 17) as f32 / 256.0 - 0.03125).collect();
            let mut gb = b.upload(&g).unwrap();
            h.amp_scale(n, &state, &mut gb).unwrap();
            if s == inf_step && t == 1 {
                let mut scaled = b.read(&gb).unwrap();
                scaled[5] = f32::INFINITY;
                b.write(&mut gb, &scaled).unwrap();
            }
            if !many {
                h.amp_unscale(n, &mut state, &mut gb).unwrap();
            }
            grads.push(gb);
        }
        if many {
            let mut xs: Vec<(usize, &mut B::Buf)> =
                sizes.iter().copied().zip(grads.iter_mut()).collect();
            h.amp_unscale_all(&mut state, &mut xs).unwrap();
            let mut ts: Vec<ParamUpdate<'_, B::Buf>> = params
                .iter_mut()
                .zip(vel.iter_mut())
                .zip(&grads)
                .zip(sizes)
                .map(|(((param, v), grad), &n)| ParamUpdate { n, grad, velocity: Some(v), param })
                .collect();
            h.amp_update_params(&UpdateRule::Momentum(step), &state, &mut ts).unwrap();
        } else {
            for (t, &n) in sizes.iter().enumerate() {
                h.amp_momentum(n, &step, &state, &grads[t], &mut vel[t], &mut params[t]).unwrap();
            }
        }
        h.amp_update_scale(&growth, &mut state).unwrap();
        trace.push(b.read(&state).unwrap());
        for p in &params {
            trace.push(b.read(p).unwrap());
        }
    }
    trace
}

/// The multi-tensor loss-scaling ops (`amp_unscale_all`, `amp_update_params`: on a GPU two
/// tensors per dispatch, a layer's weight and bias) give the bits of one op per tensor, on both
/// backends, through an overflow (skipped step) and a growth, with an odd tensor count and an
/// empty tensor.
#[test]
fn amp_multi_tensor_ops_match_per_tensor_ops() {
    let (c, paired, single) = (cpu(), gpu(), gpu());
    paired.set_update_pairs(true);
    single.set_update_pairs(false);
    let sizes = [37usize, 300, 5, 0, 1000];
    let want = amp_run_on(&c, 3, 2, &sizes, false);
    let runs = [
        ("cpu, multi-tensor ops", amp_run_on(&c, 3, 2, &sizes, true)),
        ("gpu, two tensors per dispatch", amp_run_on(&paired, 3, 2, &sizes, true)),
        ("gpu, one tensor per dispatch", amp_run_on(&single, 3, 2, &sizes, true)),
        ("gpu, per-tensor ops", amp_run_on(&paired, 3, 2, &sizes, false)),
    ];
    for (what, got) in runs {
        for (i, (x, y)) in want.iter().zip(&got).enumerate() {
            assert_eq!(
                bits(x),
                bits(y),
                "{what}: trace entry {i} differs from the CPU's per-tensor ops"
            );
        }
    }
    // Step 3 overflowed: skipped everywhere (state: scale halved, one skipped step).
    assert_eq!(want[3 * (sizes.len() + 1)][..], [1024.0, 0.0, 0.0, 1.0]);
    println!("parity ok: amp multi-tensor ops, {} trace entries bit for bit", want.len());
}

#[test]
fn amp_matches_cpu() {
    let (c, g) = (cpu(), gpu());
    let interval = 2;
    let rc = amp_run(&c, 3, interval);
    let rg = amp_run(&g, 3, interval);
    for (i, (x, y)) in rc.iter().zip(&rg).enumerate() {
        assert_eq!(bits(x), bits(y), "amp trace entry {i}: CPU and GPU differ");
    }
    // Per step: state, tensor 0, tensor 1.
    let state = |s: usize| &rc[3 * s];
    let tensors = |s: usize| (&rc[3 * s + 1], &rc[3 * s + 2]);
    // Clean steps 0, 1: the scale doubles after `interval` of them.
    assert_eq!(state(0)[..], [1024.0, 0.0, 1.0, 0.0]);
    assert_eq!(state(1)[..], [2048.0, 0.0, 0.0, 0.0]);
    assert_eq!(state(2)[..], [2048.0, 0.0, 1.0, 0.0]);
    // Step 3 saw an inf: skipped (no tensor moved, momentum included), the scale halved.
    assert_eq!(state(3)[..], [1024.0, 0.0, 0.0, 1.0]);
    assert_eq!(tensors(3), tensors(2), "the overflowed step must not update any tensor");
    assert_ne!(tensors(4), tensors(3), "the next step updates again");
    assert_eq!(state(5)[..], [2048.0, 0.0, 0.0, 1.0], "growth resumes after {interval} clean steps");
    println!("parity ok: amp, 6 steps bit for bit with an inf at step 3");
}

/// A long clean run grows the scale once per interval, never past f32's range.
#[test]
fn amp_scale_growth_after_n_clean_steps() {
    let c = cpu();
    let h = ops(&c);
    let mut state = vec![2f32.powi(120), 0.0, 0.0, 0.0];
    let growth = ScaleGrowth::every(3);
    let mut scales = Vec::new();
    for _ in 0..30 {
        h.amp_update_scale(&growth, &mut state).unwrap();
        scales.push(state[scaler::SCALE]);
    }
    assert_eq!(scales[1], 2f32.powi(120));
    assert_eq!(scales[2], 2f32.powi(121), "doubles on the 3rd clean step");
    assert_eq!(scales[5], 2f32.powi(122));
    assert_eq!(*scales.last().unwrap(), 2f32.powi(127), "a grown scale that is inf is not kept");
}

/// Steps that keep overflowing halve the scale down to f32's smallest normal and no further,
/// on both backends bit for bit, so that 1/S stays finite and the scaler's state stays one the
/// checkpoint loader accepts.
fn amp_scale_backoff_stops_at_the_least_normal<B: Backend>(b: &B) {
    let h = ops(b);
    let growth = ScaleGrowth::every(2);
    let least = batchscope::backend::half::MIN_LOSS_SCALE;
    assert_eq!(least, 2f32.powi(-126));
    let mut trace = Vec::new();
    for start in [2f32.powi(-120), 1.5 * 2f32.powi(-126)] {
        let mut state = b.upload(&[start, 0.0, 0.0, 0.0]).unwrap();
        for _ in 0..10 {
            let mut s = b.read(&state).unwrap();
            s[scaler::FOUND_INF] = 1.0;
            b.write(&mut state, &s).unwrap();
            h.amp_update_scale(&growth, &mut state).unwrap();
            trace.push(b.read(&state).unwrap());
        }
    }
    let scales: Vec<f32> = trace.iter().map(|s| s[scaler::SCALE]).collect();
    assert_eq!(scales[5], least, "2^-120 halved 6 times");
    assert!(scales[5..10].iter().all(|&s| s == least), "{scales:?}");
    assert!(scales[10..].iter().all(|&s| s == least), "1.5·2^-126 halves below normal: {scales:?}");
    assert!(scales.iter().all(|s| (1.0 / s).is_finite()));
    assert_eq!(trace[9][scaler::SKIPPED], 10.0, "every step skipped");
    assert_eq!(trace.last().unwrap()[..], [least, 0.0, 0.0, 10.0]);
}
both_backends!(amp_backoff_floor, amp_scale_backoff_stops_at_the_least_normal);

/// Always runs: says loudly whether the cooperative-matrix parity test can run here, and checks
/// that where it cannot, the f16 GEMM takes the packed kernel for a shape coop would take.
#[test]
fn cooperative_matrix_availability() {
    let g = gpu();
    let shape = Gemm::nn(64, 64, 64);
    match matmul_coop::unavailable_reason(&g.dev.ctx) {
        Some(why) => {
            println!(
                "\n*** COOPERATIVE-MATRIX PARITY NOT RUN on {}: {why}. `matmul_coop_matches_cpu` \
                 is ignored here; it is NOT a pass. ***\n",
                g.adapter().name
            );
            assert_eq!(matmul_f16::choose(&g.dev, &shape), HalfKernel::Packed);
        }
        None => {
            println!(
                "\n*** cooperative matrices available on {}: run `cargo test --release --test \
                 f16_parity -- --ignored` for matmul_coop_matches_cpu ***\n",
                g.adapter().name
            );
            // The first-use check: every cooperative kernel exact on this device.
            assert_eq!(coop_check::distrust_reason(&g.dev), None, "a wrong tensor-core product");
            // The rule's kernel (`coop_kernel_for`: the 32x32 blocks below 2048 rows).
            let want = match matmul_f16::coop_enabled() {
                false => HalfKernel::Packed,
                true => matmul_f16::coop_kernel_for(&shape),
            };
            assert_eq!(matmul_f16::choose(&g.dev, &shape), want, "BATCHSCOPE_COOP=0 turns it off");
            // Tall and deep: the staged kernel where its workgroup fits the adapter, else 32x32.
            let tall = Gemm::nn(matmul_f16::STAGED_MIN_M, 64, matmul_f16::STAGED_MIN_K);
            let staged_fits = batchscope::backend::gpu::matmul_coop::CoopBlock::Staged128(
                batchscope::backend::gpu::coop_shape::LoadWidth::Halves,
            )
            .fits_on(&g.dev.ctx);
            let want = match (matmul_f16::coop_enabled(), staged_fits) {
                (false, _) => HalfKernel::Packed,
                (true, true) => matmul_f16::coop_kernel_for(&tall),
                (true, false) => HalfKernel::Coop,
            };
            assert_eq!(matmul_f16::choose(&g.dev, &tall), want, "tall and deep: the staged kernel");
            let narrow = Gemm::nn(48, 64, 64);
            let want = if matmul_f16::coop_enabled() { HalfKernel::Coop } else { HalfKernel::Packed };
            assert_eq!(matmul_f16::choose(&g.dev, &narrow), want, "m < 64: the 32x32 blocks");
        }
    }
}

/// The cooperative-matrix GEMMs (32x32 and 64x64 blocks per subgroup, and 128x128 per
/// workgroup with staged operands; each with f16, vec4<f16> and 16-byte tile loads) against
/// the CPU twin, every transpose pair, on shapes with
/// odd multiples of 16, sides past a multiple of 64 and 128 (the clamped last blocks) and k past
/// a multiple of 32 (a half-empty staged slice), and the same in tiles of the adapter's side
/// (odd counts of 8x8 tiles on lavapipe). Fails where the adapter lacks the feature.
#[test]
#[ignore = "needs 16x16 (subgroups of 32) or 8x8 (subgroups of 8) f16 cooperative matrices: see cooperative_matrix_availability; .ci/coop_lavapipe.sh runs it"]
fn matmul_coop_matches_cpu() {
    let (c, gp) = (cpu(), gpu());
    if let Some(why) = matmul_coop::unavailable_reason(&gp.dev.ctx) {
        panic!("matmul_coop_matches_cpu cannot run on {}: {why}", gp.adapter().name);
    }
    // Exact operands (multiples of 1/8), every kernel, every transpose pair: bit-exact rows.
    let all = coop_check::KERNELS;
    assert_eq!(coop_check::check_alone(&gp.dev, &all), None);
    let mut cases = 0;
    let t = matmul_coop::coop_shape(&gp.dev.ctx).map_or(16, |s| s.tile as usize);
    let shapes = [
        (16, 16, 16),
        (48, 80, 32),
        (96, 64, 784),
        (80, 144, 48),
        (256, 1024, 512),
        (3 * t, 5 * t, 3 * t),
        (9 * t, 17 * t, 7 * t),
    ];
    for &(m, n, k) in &shapes {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let g = Gemm::nn(m, n, k).trans(ta, tb);
            let seed = (m + 3 * n + 7 * k) as u64;
            let (a, bm) = (uniform(seed, m * k, 1.0), uniform(seed + 1, k * n, 1.0));
            let c0 = vec![f32::NAN; m * n];
            let (ha, hb) = (half_of(&gp, &a), half_of(&gp, &bm));
            let (wa, wb) = (&ha.words.0, &hb.words.0);
            let cpu_out = half_gemm_case(&c, &g, &a, &bm, &c0);
            let mut first: Option<Vec<u32>> = None;
            for kernel in all {
                let out = gp.upload(&c0).unwrap();
                matmul_f16::matmul_half(&gp.dev, kernel, &g, wa, ha.len, wb, hb.len, &out.0).unwrap();
                let what = format!("{kernel:?} {m}x{n}x{k} ta={ta} tb={tb}");
                let got = gp.read(&out).unwrap();
                check_half_gemm(&what, &g, &a, &bm, &c0, &got);
                // The same multiply-adds in the same order: the same bits as the 32x32 kernel.
                let bits: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                match &first {
                    None => first = Some(bits),
                    Some(want) => assert!(bits == *want, "{what}: other bits than HalfKernel::Coop"),
                }
                cases += 1;
            }
            check_half_gemm(&format!("cpu {m}x{n}x{k} ta={ta} tb={tb}"), &g, &a, &bm, &c0, &cpu_out);
        }
    }
    let loop_32 = match batchscope::backend::gpu::matmul_coop::prefetch() {
        true => "pipelined (BATCHSCOPE_COOP_PREFETCH=1)",
        false => "plain",
    };
    println!(
        "parity ok: matmul_coop, matmul_coop64 and matmul_coop_staged, f16, vec4 and vec8 loads, in \
         {t}x{t} tiles, {cases} cases; the 32x32 kernel's loop {loop_32}"
    );
}

/// The packed and skinny f16 kernels walk all of k in each invocation, and run to the loop
/// cap: on Debian 12's llvmpipe the packed kernel (18 counted iterations per 16 of k) reads
/// 58 240 ones in full and was cut to 58 253 of 58 256; the skinny one (32 k-lanes here)
/// 2 090 000 and was cut at 4 000 000. Past the cap each is refused, naming its depth; where
/// nothing caps loops every one reads k.
#[test]
fn one_pass_half_products_run_to_the_loop_cap_and_are_refused_past_it() {
    let gp = gpu();
    let capped = gp.loop_iteration_limit().expect("loop probe").is_some();
    for (kernel, k, past_cap) in [
        (HalfKernel::Packed, 58_240, false),
        (HalfKernel::Packed, 58_256, true),
        (HalfKernel::Skinny, 2_090_000, false),
        (HalfKernel::Skinny, 2_100_000, true),
    ] {
        let (m, n) = (4, 8);
        let g = Gemm::nn(m, n, k);
        let (ha, hb) = (half_of(&gp, &vec![1.0; m * k]), half_of(&gp, &vec![1.0; k * n]));
        let out = gp.upload(&vec![0.0; m * n]).unwrap();
        let done = matmul_f16::matmul_half(
            &gp.dev,
            kernel,
            &g,
            &ha.words.0,
            ha.len,
            &hb.words.0,
            hb.len,
            &out.0,
        );
        match (done, capped && past_cap) {
            (Err(e), true) => {
                let e = e.to_string();
                assert!(
                    e.contains(&format!("depth {k} in one pass")) && e.contains("after 65535"),
                    "{kernel:?}: {e}"
                );
            }
            (Ok(()), false) => {
                assert_eq!(gp.read(&out).unwrap(), vec![k as f32; m * n], "{kernel:?} k = {k}")
            }
            (done, refused) => panic!("{kernel:?} k = {k}: {done:?}, expected refused = {refused}"),
        }
    }
}

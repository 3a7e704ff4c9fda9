//! Analytic cost of each Backend op from its shapes, and the group that names it in a profile.
//!
//! FLOPs count a multiply-add as 2 and every other arithmetic operation as 1 (an exp or a
//! compare is 1). Bytes are the compulsory traffic: every operand element read once and every
//! result element written once, 4 bytes each (f32 and u32). Real kernels move more (tiles
//! re-read from cache, two-pass reductions), so achieved GB/s from these counts is a lower bound.

pub use super::cost_half::HalfOp;
use crate::backend::{Activation, Gemm, Scope};

/// Which reduction ([`crate::backend::Backend::sum`] and friends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceKind {
    Sum,
    Dot,
    SumSq,
}

/// The element-wise op a fused product applies at its store
/// ([`crate::backend::Backend::matmul_epilogue`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fusion {
    Bias,
    BiasAct(Activation),
    ActGrad(Activation),
    /// The weight gradient's product with the bias gradient (the column sums of its `[k, m]`
    /// operand dz) in its store.
    BiasGrad,
    /// [`Fusion::BiasGrad`] of an f16 step, then the weight and bias gradients times 1 / S of
    /// the loss scaler ([`crate::backend::Backend::matmul_half_bias_grad_unscaled`]).
    BiasGradUnscale,
    /// [`Fusion::BiasGrad`], then the optimizer step of the layer's weight and bias with the
    /// two gradients ([`crate::backend::Backend::wgrad_update`]): heavy-ball momentum or SGD.
    BiasGradStep {
        momentum: bool,
    },
    /// A classifier's output layer `x·Wᵀ + b`, then softmax cross-entropy with d logits and the
    /// step's sums of its losses and 0-1 values into `terms` slots
    /// ([`crate::backend::Backend::linear_xent_sums`]).
    BiasXentSums {
        terms: usize,
    },
    /// [`Fusion::BiasGradStep`] of a weight gradient `gW [m, n] = dzᵀ·x` over k rows, after the
    /// dgrad product `dz [k, m] · W [m, n]` with `⊙ φ'(z)` that reads the old `W`
    /// ([`crate::backend::Backend::dgrad_wgrad_update`]).
    DgradBiasGradStep {
        act: Activation,
        momentum: bool,
    },
}

impl Fusion {
    /// Whether the fused op computes the bias gradient.
    fn bias_grad(self) -> bool {
        matches!(
            self,
            Fusion::BiasGrad
                | Fusion::BiasGradUnscale
                | Fusion::BiasGradStep { .. }
                | Fusion::DgradBiasGradStep { .. }
        )
    }
}

/// One Backend op with the shapes that fix its cost.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    Matmul(Gemm),
    /// A product with its epilogue fused into the store.
    MatmulFused(Gemm, Fusion),
    AddBias {
        rows: usize,
        cols: usize,
    },
    ColSum {
        rows: usize,
        cols: usize,
        accumulate: bool,
    },
    Axpy {
        n: usize,
    },
    Scale {
        n: usize,
    },
    Copy {
        n: usize,
    },
    Fill {
        n: usize,
    },
    ActForward {
        act: Activation,
        n: usize,
    },
    /// The fused bias add and activation of a forward layer.
    BiasAct {
        act: Activation,
        rows: usize,
        cols: usize,
    },
    ActBackward {
        n: usize,
    },
    ActSecond {
        n: usize,
    },
    SoftmaxXent {
        rows: usize,
        classes: usize,
    },
    /// Softmax cross-entropy with the step's sums of its `rows` losses and 0-1 values into
    /// `terms` slots ([`crate::backend::Backend::softmax_xent_sums`]).
    SoftmaxXentSums {
        rows: usize,
        classes: usize,
        terms: usize,
    },
    SoftmaxXentRop {
        rows: usize,
        classes: usize,
    },
    Mse {
        rows: usize,
        cols: usize,
    },
    Reduce {
        kind: ReduceKind,
        n: usize,
    },
    /// Several sums of `[n]` vectors at once ([`crate::backend::Backend::sums`]), one per term.
    Sums {
        n: usize,
        terms: usize,
    },
    Sgd {
        n: usize,
    },
    Momentum {
        n: usize,
    },
    ClipNorm {
        n: usize,
        count: usize,
    },
    ClipByValue {
        n: usize,
    },
    Generate {
        rows: usize,
        dim: usize,
    },
    GatherRows {
        rows: usize,
        cols: usize,
    },
    GatherIdx {
        rows: usize,
    },
    /// A mixed-precision op ([`crate::backend::half::HalfOps`]).
    Half(HalfOp),
}

const F32: f64 = 4.0;

impl Op {
    /// Floating-point operations of one call.
    pub fn flops(&self) -> f64 {
        let f = |v: usize| v as f64;
        match *self {
            // 2mnk, plus α·(…) and β·C per output element when they are not 1 and 0.
            Op::Matmul(g) => {
                let extra = (g.alpha != 1.0) as usize + 2 * (g.beta != 0.0) as usize;
                g.flops() + f(g.m * g.n * extra)
            }
            // The product, then + bias (and φ), or · φ'(z), per output element.
            Op::MatmulFused(g, fusion) => {
                let per = match fusion {
                    Fusion::Bias
                    | Fusion::ActGrad(_)
                    | Fusion::BiasXentSums { .. }
                    | Fusion::BiasGradUnscale => 1,
                    Fusion::BiasAct(_) => 2,
                    Fusion::BiasGrad
                    | Fusion::BiasGradStep { .. }
                    | Fusion::DgradBiasGradStep { .. } => 0,
                };
                // The bias gradient: Σ over the k rows of each of the m columns.
                let bias_grad = if fusion.bias_grad() { g.k * g.m } else { 0 };
                // The step of the m·n weights and m biases (Op::Momentum / Op::Sgd per element).
                let step = match fusion {
                    Fusion::BiasGradStep { momentum: true }
                    | Fusion::DgradBiasGradStep { momentum: true, .. } => 6 * (g.m * g.n + g.m),
                    Fusion::BiasGradStep { momentum: false }
                    | Fusion::DgradBiasGradStep { momentum: false, .. } => 4 * (g.m * g.n + g.m),
                    // The bias gradient's m totals times 1 / S.
                    Fusion::BiasGradUnscale => g.m,
                    _ => 0,
                };
                Op::Matmul(g).flops() + f(g.m * g.n * per + bias_grad + step) + fusion_loss(g, fusion).0
            }
            Op::AddBias { rows, cols } => f(rows * cols),
            // Σ over rows, α·s, and + β·out when accumulating.
            Op::ColSum { rows, cols, accumulate } => {
                f(rows * cols + cols * (1 + 2 * accumulate as usize))
            }
            Op::Axpy { n } => f(2 * n),
            Op::Scale { n } | Op::ClipByValue { n } | Op::ActBackward { n } => f(n),
            Op::Copy { .. } | Op::Fill { .. } | Op::GatherRows { .. } | Op::GatherIdx { .. } => 0.0,
            // relu: one compare; tanh: counted as one operation too (a transcendental).
            Op::ActForward { n, .. } => f(n),
            // + bias, then φ.
            Op::BiasAct { rows, cols, .. } => f(2 * rows * cols),
            // out += dy·φ''(z)·rz.
            Op::ActSecond { n } => f(3 * n),
            // Per element: max, subtract, exp, sum, divide, subtract the one-hot, scale.
            Op::SoftmaxXent { rows, classes } => f(7 * rows * classes),
            Op::SoftmaxXentSums { rows, classes, terms } => {
                Op::SoftmaxXent { rows, classes }.flops() + Op::Sums { n: rows, terms }.flops()
            }
            // Per element: exp-normalise (4), p·r and its sum (2), p(r - s)·scale (3).
            Op::SoftmaxXentRop { rows, classes } => f(9 * rows * classes),
            // Per element: difference, square, sum, scaled gradient.
            Op::Mse { rows, cols } => f(4 * rows * cols),
            Op::Reduce { kind: ReduceKind::Sum, n } => f(n),
            Op::Sums { n, terms } => f(n * terms),
            Op::Reduce { n, .. } => f(2 * n),
            // g + wd·p (2), p -= lr·(…) (2).
            Op::Sgd { n } => f(4 * n),
            // g + wd·p (2), v = μv + (…) (2), p -= lr·v (2).
            Op::Momentum { n } => f(6 * n),
            Op::Half(h) => h.flops(),
            // Σ of the norm slots, √, min, then one multiply per element.
            Op::ClipNorm { n, count } => f(n + count + 2),
            // Counter-based normals: counted as data movement only.
            Op::Generate { .. } => 0.0,
        }
    }

    /// Compulsory bytes moved by one call.
    pub fn bytes(&self) -> f64 {
        let b = |v: usize| v as f64 * F32;
        match *self {
            Op::Matmul(g) => {
                let (a, bb, c) = (g.m * g.k, g.k * g.n, g.m * g.n);
                b(a + bb + c + c * (g.beta != 0.0) as usize)
            }
            // The product's operands and C, plus bias read (and y written), or z read.
            Op::MatmulFused(g, fusion) => {
                let extra = match fusion {
                    Fusion::Bias => g.n,
                    Fusion::BiasAct(_) => g.n + g.m * g.n,
                    Fusion::ActGrad(_) => g.m * g.n,
                    // gb written; its input dz is the product's operand A, already counted (the
                    // f32 tiled kernels sum it from their staged slices; an f16 step reads dz's
                    // f32 copy too, and past k = 32 a separate col_sum reads it again: this is
                    // the f32 step's compulsory traffic).
                    Fusion::BiasGrad | Fusion::BiasGradUnscale => g.m,
                    // gb written, then the parameters (and velocities) read and written; the
                    // gradients are not read back (the unfused fallback past k = 32 reads them).
                    Fusion::BiasGradStep { momentum } | Fusion::DgradBiasGradStep { momentum, .. } => {
                        g.m + (2 + 2 * momentum as usize) * (g.m * g.n + g.m)
                    }
                    Fusion::BiasXentSums { .. } => g.n,
                };
                Op::Matmul(g).bytes() + b(extra) + fusion_loss(g, fusion).1
            }
            // x read and written, bias read.
            Op::AddBias { rows, cols } => b(2 * rows * cols + cols),
            Op::ColSum { rows, cols, accumulate } => b(rows * cols + cols * (1 + accumulate as usize)),
            Op::Axpy { n } => b(3 * n),
            Op::Scale { n } | Op::Copy { n } | Op::ClipByValue { n } | Op::ActForward { n, .. } => {
                b(2 * n)
            }
            Op::Fill { n } => b(n),
            // z read and written, bias read, y written.
            Op::BiasAct { rows, cols, .. } => b(3 * rows * cols + cols),
            Op::ActBackward { n } => b(3 * n),
            Op::ActSecond { n } => b(5 * n),
            // logits, labels in; loss, correct, dlogits out.
            Op::SoftmaxXent { rows, classes } => b(2 * rows * classes + 3 * rows),
            // The unfused pair's traffic: what the loss writes is what the sums read.
            Op::SoftmaxXentSums { rows, classes, terms } => {
                Op::SoftmaxXent { rows, classes }.bytes() + Op::Sums { n: rows, terms }.bytes()
            }
            Op::SoftmaxXentRop { rows, classes } => b(3 * rows * classes),
            // pred, target in; loss, dpred out.
            Op::Mse { rows, cols } => b(3 * rows * cols + rows),
            Op::Reduce { kind: ReduceKind::Dot, n } => b(2 * n + 1),
            Op::Reduce { n, .. } => b(n + 1),
            Op::Sums { n, terms } => b((n + 1) * terms),
            // grad, param in; param out.
            Op::Sgd { n } => b(3 * n),
            // grad, velocity, param in; velocity, param out.
            Op::Momentum { n } => b(5 * n),
            Op::Half(h) => h.bytes(),
            Op::ClipNorm { n, count } => b(2 * n + count),
            // x and labels (or targets) out, the table read once per example's class.
            Op::Generate { rows, dim } => b(rows * dim + rows),
            // idx in, row read and written.
            Op::GatherRows { rows, cols } => b(rows + 2 * rows * cols),
            Op::GatherIdx { rows } => b(3 * rows),
        }
    }

    /// The profile group: the op named by what it does in the model (`fwd matmul L0`,
    /// `wgrad L1`, `bias+act L0`, `xent+dlogits`, `momentum update`, ...).
    pub fn group(&self, scope: Scope) -> String {
        let layer = |name: &str| match scope {
            Scope::Forward(l) | Scope::Backward(l) => format!("{name} L{l}"),
            Scope::None => name.to_string(),
        };
        match (*self, scope) {
            (Op::Matmul(_), Scope::Forward(l)) => format!("fwd matmul L{l}"),
            (Op::Matmul(g), Scope::Backward(l)) if g.trans_a => format!("wgrad L{l}"),
            (Op::Matmul(_), Scope::Backward(l)) => format!("dgrad L{l}"),
            (Op::Matmul(_), Scope::None) => "matmul".into(),
            (Op::MatmulFused(_, fusion), _) => {
                let what = match fusion {
                    Fusion::Bias => "matmul+bias".to_string(),
                    Fusion::BiasAct(act) => format!("matmul+bias+{}", act.name()),
                    Fusion::ActGrad(act) => format!("matmul+{}'", act.name()),
                    Fusion::BiasGrad => "matmul+bias grad".to_string(),
                    Fusion::BiasGradUnscale => "matmul+bias grad+unscale".to_string(),
                    Fusion::BiasGradStep { momentum: true } => "matmul+bias grad+momentum".to_string(),
                    Fusion::BiasGradStep { momentum: false } => "matmul+bias grad+sgd".to_string(),
                    Fusion::BiasXentSums { .. } => "matmul+bias+xent+dlogits+sums".to_string(),
                    Fusion::DgradBiasGradStep { act, momentum } => format!(
                        "dgrad+{}', wgrad+bias grad+{}",
                        act.name(),
                        if momentum { "momentum" } else { "sgd" }
                    ),
                };
                match scope {
                    Scope::Backward(l) if matches!(fusion, Fusion::DgradBiasGradStep { .. }) => {
                        format!("backward L{l} ({what})")
                    }
                    Scope::Backward(l) if fusion.bias_grad() => format!("wgrad L{l} ({what})"),
                    Scope::Forward(l) => format!("fwd L{l} ({what})"),
                    Scope::Backward(l) => format!("dgrad L{l} ({what})"),
                    Scope::None => what,
                }
            }
            (Op::AddBias { .. } | Op::ActForward { .. } | Op::BiasAct { .. }, Scope::Forward(l)) => {
                format!("bias+act L{l}")
            }
            (Op::BiasAct { .. }, _) => layer("bias+act"),
            (Op::AddBias { .. }, _) => layer("bias"),
            (Op::ActForward { .. }, _) => layer("act"),
            (Op::ActBackward { .. }, _) => layer("act bwd"),
            (Op::ColSum { .. }, _) => layer("col_sum"),
            (Op::SoftmaxXent { .. }, _) => "xent+dlogits".into(),
            (Op::SoftmaxXentSums { .. }, _) => "xent+dlogits+sums".into(),
            (Op::SoftmaxXentRop { .. }, _) => "xent R-op".into(),
            (Op::Mse { .. }, _) => "mse+dpred".into(),
            (Op::ActSecond { .. }, _) => layer("act second"),
            (Op::Reduce { .. } | Op::Sums { .. }, _) => "reduce".into(),
            (Op::Sgd { .. }, _) => "sgd update".into(),
            (Op::Momentum { .. }, _) => "momentum update".into(),
            (Op::Half(h), _) => h.group(scope),
            (Op::ClipNorm { .. }, _) => "clip norm".into(),
            (Op::ClipByValue { .. }, _) => "clip value".into(),
            (Op::Axpy { .. }, _) => layer("axpy"),
            (Op::Scale { .. }, _) => layer("scale"),
            (Op::Copy { .. }, _) => layer("copy"),
            (Op::Fill { .. }, _) => layer("fill"),
            (Op::Generate { .. }, _) => "datagen".into(),
            (Op::GatherRows { .. } | Op::GatherIdx { .. }, _) => "gather".into(),
        }
    }
}

/// The FLOPs and bytes a fused product's loss or dgrad adds ([`Fusion::BiasXentSums`]: the
/// loss and sums of its `m` rows of `n` logits, which it does not read back from memory;
/// [`Fusion::DgradBiasGradStep`]: the dgrad product).
fn fusion_loss(g: Gemm, fusion: Fusion) -> (f64, f64) {
    match fusion {
        Fusion::BiasXentSums { terms } => {
            let loss = Op::SoftmaxXentSums { rows: g.m, classes: g.n, terms };
            (loss.flops(), loss.bytes() - F32 * (g.m * g.n) as f64)
        }
        // The dgrad product with φ' (dz_prev [k, n] = dz · W ⊙ φ'(z)), whose reads of dz and W
        // the weight gradient and the step already count.
        Fusion::DgradBiasGradStep { act, .. } => {
            let dgrad = Op::MatmulFused(Gemm::nn(g.k, g.n, g.m), Fusion::ActGrad(act));
            (dgrad.flops(), dgrad.bytes() - F32 * (g.k * g.m + g.m * g.n) as f64)
        }
        _ => (0.0, 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_counts_include_alpha_beta_and_c() {
        // C [2,3] = A [2,4] · B [4,3]: 2·2·3·4 = 48 FLOPs; 8 + 12 + 6 floats.
        let g = Gemm::nn(2, 3, 4);
        assert_eq!((Op::Matmul(g).flops(), Op::Matmul(g).bytes()), (48.0, 4.0 * 26.0));
        // β ≠ 0 reads C too and adds 2 per output; α ≠ 1 one more.
        let g = g.scaled(0.5, 1.0);
        assert_eq!((Op::Matmul(g).flops(), Op::Matmul(g).bytes()), (48.0 + 3.0 * 6.0, 4.0 * 32.0));
    }

    #[test]
    fn groups_name_ops_by_layer_and_direction() {
        let g = Gemm::nn(8, 4, 2);
        assert_eq!(Op::Matmul(g).group(Scope::Forward(0)), "fwd matmul L0");
        assert_eq!(Op::Matmul(g.trans(true, false)).group(Scope::Backward(1)), "wgrad L1");
        assert_eq!(Op::Matmul(g).group(Scope::Backward(1)), "dgrad L1");
        assert_eq!(Op::Matmul(g).group(Scope::None), "matmul");
        assert_eq!(Op::AddBias { rows: 1, cols: 1 }.group(Scope::Forward(2)), "bias+act L2");
        let fused = Op::BiasAct { act: Activation::Relu, rows: 2, cols: 3 };
        assert_eq!(fused.group(Scope::Forward(1)), "bias+act L1");
        // The fused op costs what its two parts cost, less the activation's re-read of z.
        let parts = Op::AddBias { rows: 2, cols: 3 }.bytes()
            + Op::ActForward { act: Activation::Relu, n: 6 }.bytes();
        assert_eq!(fused.bytes(), parts - 6.0 * 4.0);
        assert_eq!(fused.flops(), 12.0);
        // Fused products: the product plus the element-wise op, without C's re-read and rewrite.
        let fwd = Op::MatmulFused(g, Fusion::BiasAct(Activation::Tanh));
        assert_eq!(fwd.group(Scope::Forward(0)), "fwd L0 (matmul+bias+tanh)");
        assert_eq!(fwd.flops(), Op::Matmul(g).flops() + 2.0 * 32.0);
        assert_eq!(fwd.bytes(), Op::Matmul(g).bytes() + 4.0 * (4.0 + 32.0));
        assert_eq!(Op::MatmulFused(g, Fusion::Bias).group(Scope::Forward(2)), "fwd L2 (matmul+bias)");
        let bwd = Op::MatmulFused(g, Fusion::ActGrad(Activation::Relu));
        assert_eq!(bwd.group(Scope::Backward(1)), "dgrad L1 (matmul+relu')");
        assert_eq!(bwd.bytes(), Op::Matmul(g).bytes() + 4.0 * 32.0);
        assert_eq!(Op::Momentum { n: 3 }.group(Scope::Backward(0)), "momentum update");
        assert_eq!(Op::Reduce { kind: ReduceKind::Dot, n: 3 }.group(Scope::None), "reduce");
        // Dot reads two vectors, sum of squares one.
        assert_eq!(Op::Reduce { kind: ReduceKind::Dot, n: 3 }.bytes(), 28.0);
        assert_eq!(Op::Reduce { kind: ReduceKind::SumSq, n: 3 }.flops(), 6.0);
        // Several sums cost what the single sums cost.
        let one = Op::Reduce { kind: ReduceKind::Sum, n: 3 };
        assert_eq!(Op::Sums { n: 3, terms: 2 }.group(Scope::None), "reduce");
        assert_eq!(Op::Sums { n: 3, terms: 2 }.bytes(), 2.0 * one.bytes());
        assert_eq!(Op::Sums { n: 3, terms: 2 }.flops(), 2.0 * one.flops());
    }

    #[test]
    fn fused_step_costs_the_product_and_the_update_without_the_gradient_reread() {
        // gW [8, 4] = dzᵀ · x over k = 2 rows, gb [8], then the step of 32 + 8 parameters.
        let g = Gemm::nn(8, 4, 2).trans(true, false);
        let product = Op::MatmulFused(g, Fusion::BiasGrad);
        let params = 8 * 4 + 8;
        for (momentum, update) in [(true, Op::Momentum { n: params }), (false, Op::Sgd { n: params })] {
            let fused = Op::MatmulFused(g, Fusion::BiasGradStep { momentum });
            assert_eq!(fused.flops(), product.flops() + update.flops());
            // The update alone reads the gradients back: 4 bytes per parameter the fused op
            // does not move.
            assert_eq!(fused.bytes(), product.bytes() + update.bytes() - 4.0 * params as f64);
        }
        let name =
            |momentum| Op::MatmulFused(g, Fusion::BiasGradStep { momentum }).group(Scope::Backward(2));
        assert_eq!(name(true), "wgrad L2 (matmul+bias grad+momentum)");
        assert_eq!(name(false), "wgrad L2 (matmul+bias grad+sgd)");
    }

    #[test]
    fn the_fused_output_layer_costs_the_product_and_the_loss_without_the_logits_read_back() {
        // logits [4, 10] = x [4, 32] · Wᵀ + b, then the loss with two sums.
        let g = Gemm::nn(4, 10, 32).trans(false, true);
        let fused = Op::MatmulFused(g, Fusion::BiasXentSums { terms: 2 });
        let (product, loss) =
            (Op::MatmulFused(g, Fusion::Bias), Op::SoftmaxXentSums { rows: 4, classes: 10, terms: 2 });
        assert_eq!(fused.flops(), product.flops() + loss.flops());
        assert_eq!(fused.bytes(), product.bytes() + loss.bytes() - 4.0 * 40.0);
        assert_eq!(fused.group(Scope::Forward(2)), "fwd L2 (matmul+bias+xent+dlogits+sums)");
    }

    #[test]
    fn the_fused_layer_backward_costs_both_products_and_the_step_reading_dz_and_w_once() {
        // gW [6, 5] = dzᵀ [6, 4] · x [4, 5] after dz_prev [4, 5] = dz [4, 6] · W [6, 5] ⊙ tanh'.
        let g = Gemm::nn(6, 5, 4).trans(true, false);
        let act = Activation::Tanh;
        let dgrad = Op::MatmulFused(Gemm::nn(4, 5, 6), Fusion::ActGrad(act));
        for momentum in [true, false] {
            let wgrad = Op::MatmulFused(g, Fusion::BiasGradStep { momentum });
            let fused = Op::MatmulFused(g, Fusion::DgradBiasGradStep { act, momentum });
            assert_eq!(fused.flops(), dgrad.flops() + wgrad.flops());
            assert_eq!(fused.bytes(), dgrad.bytes() + wgrad.bytes() - 4.0 * (4.0 * 6.0 + 6.0 * 5.0));
        }
        let fused = Op::MatmulFused(g, Fusion::DgradBiasGradStep { act, momentum: true });
        assert_eq!(
            fused.group(Scope::Backward(1)),
            "backward L1 (dgrad+tanh', wgrad+bias grad+momentum)"
        );
    }
}

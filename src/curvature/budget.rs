//! The work budget of Hessian-vector products over a dataset: each product costs a few forward
//! and backward passes over every example it averages over. By default the Hessian averages
//! over all training examples, unless parameters × examples exceeds the budget: then over the
//! first (largest power of two) examples that fit it. `noise` makes one product per
//! single-example draw (33 by default) and uses [`HESSIAN_WORK_BUDGET`]; `curvature` makes
//! hundreds (Lanczos, power iteration, SLQ, Hutchinson) and uses [`CURVATURE_WORK_BUDGET`]. On
//! the embedded default (an MLP with 1.86 M parameters on 16 384 examples) that is 512 and 128
//! examples, which keeps both within minutes on two CPU cores. The Hessian of the mean loss
//! over a subset is an unbiased estimate of the full one; `--examples` sets N for `curvature`.

/// Parameters × examples one Hessian-vector product may cover by default (2³⁰: 0.2–0.5 s per
/// product on two CPU cores).
pub const HESSIAN_WORK_BUDGET: u64 = 1 << 30;

/// The same for `curvature`, whose ~450 products (and four fully reorthogonalised Lanczos runs)
/// would otherwise take 15 minutes on the default: 2²⁸ parameters × examples.
pub const CURVATURE_WORK_BUDGET: u64 = 1 << 28;

/// Examples the Hessian averages over by default: all `n`, or the largest power of two with
/// `params × examples ≤ budget` (at least 1) when all of them would exceed it.
pub fn budget_examples(params: usize, n: usize, budget: u64) -> usize {
    let p = (params as u64).max(1);
    if (n as u64).saturating_mul(p) <= budget {
        return n;
    }
    let fit = (budget / p).max(1);
    // The largest power of two ≤ fit (fit ≥ 1).
    let pow2 = 1u64 << (63 - fit.leading_zeros());
    usize::try_from(pow2).unwrap_or(n).min(n)
}

/// The line printed when the budget applies.
pub fn budget_note(used: usize, n: usize, budget: u64, hint: &str) -> String {
    format!(
        "the Hessian averages over the first {used} of {n} training examples (work budget 2^{} \
         parameters × examples per product; {hint})",
        63 - budget.max(1).leading_zeros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_problems_use_every_example() {
        for b in [HESSIAN_WORK_BUDGET, CURVATURE_WORK_BUDGET] {
            assert_eq!(budget_examples(404, 4096, b), 4096);
            assert_eq!(budget_examples(50, 8192, b), 8192);
            assert_eq!(budget_examples(0, 10, b), 10);
            // configs/quickstart.toml: 9 610 parameters, 8 192 examples.
            assert_eq!(budget_examples(9_610, 8192, b), 8192);
        }
    }

    #[test]
    fn large_problems_use_a_power_of_two_within_budget() {
        // configs/default.toml: 784-1024-1024-10, 1 863 690 parameters, 16 384 examples.
        let k = budget_examples(1_863_690, 16_384, HESSIAN_WORK_BUDGET);
        assert_eq!(k, 512);
        assert!(k as u64 * 1_863_690 <= HESSIAN_WORK_BUDGET);
        assert_eq!(budget_examples(1_863_690, 16_384, CURVATURE_WORK_BUDGET), 128);
        assert_eq!(budget_examples(usize::MAX, 100, HESSIAN_WORK_BUDGET), 1);
        assert_eq!(budget_examples(1 << 29, 3, HESSIAN_WORK_BUDGET), 2);
        let note = budget_note(128, 16_384, CURVATURE_WORK_BUDGET, "--examples N for more");
        assert!(note.contains("128 of 16384") && note.contains("2^28"), "{note}");
    }
}

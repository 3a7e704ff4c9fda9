//! [`KernelChoices`]: the per-adapter switches between kernels that compute the same bits (a
//! fused kernel or its unfused pieces), with their defaults: the ones measured faster (on an
//! NVIDIA H200 and on lavapipe; each default says where it was measured); each can be set from
//! the environment for A/B timing on a device, and from code (`GpuBackend::set_*`).

use std::cell::Cell;

use super::auto_rule::AutoRule;
use super::matmul_f16::HalfKernel;
use super::{dgrad_wgrad_update, linear_xent, update, wgrad_update, AdapterSummary};

pub(super) struct KernelChoices {
    /// Two tensors per update dispatch (see `GpuBackend::set_update_pairs`).
    pub update_pairs: Cell<bool>,
    /// The depth up to which a layer's weight gradient and step are one dispatch (0: never;
    /// see `GpuBackend::set_fused_update`).
    pub fused_update_max_k: Cell<usize>,
    /// The output layer and its loss in one dispatch (see `GpuBackend::set_fused_head`).
    pub fused_head: Cell<bool>,
    /// A hidden-input layer's backward and step in one dispatch (`set_fused_backward`).
    pub fused_backward: Cell<bool>,
    /// The bias gradient of a weight-gradient product in its dispatches past k = 32
    /// (`set_staged_bias_grad`).
    pub staged_bias_grad: Cell<bool>,
    /// The f16 step's weight gradients unscaled in their products' stores (`set_fused_unscale`).
    pub fused_unscale: Cell<bool>,
    /// The packed f16 product's bias gradient past k = 32 in col_sum workgroups of its own
    /// dispatch (`set_col_sum_workgroups`).
    pub col_sum_workgroups: Cell<bool>,
    /// The f16 kernel of every product it can run, instead of the rule or the autotuner
    /// (`set_half_kernel`; `BATCHSCOPE_F16_KERNEL`).
    pub half_kernel: Cell<Option<HalfKernel>>,
    /// What `MatmulVariant::Auto` runs where the autotuner has no choice (`set_auto_rule`).
    pub auto_rule: Cell<AutoRule>,
}

impl KernelChoices {
    /// The defaults for `adapter`, or what the environment says.
    pub fn for_adapter(adapter: &AdapterSummary) -> Self {
        KernelChoices {
            update_pairs: Cell::new(update::pairs_default(adapter)),
            fused_update_max_k: Cell::new(wgrad_update::fused_default(adapter)),
            fused_head: Cell::new(linear_xent::fused_default()),
            fused_backward: Cell::new(dgrad_wgrad_update::fused_default()),
            staged_bias_grad: Cell::new(switch("BATCHSCOPE_STAGED_BIAS_GRAD", true)),
            fused_unscale: Cell::new(switch("BATCHSCOPE_FUSED_UNSCALE", true)),
            col_sum_workgroups: Cell::new(update::on_unless_cpu(
                "BATCHSCOPE_COL_SUM_WORKGROUPS",
                adapter,
            )),
            half_kernel: Cell::new(half_kernel_from_env()),
            auto_rule: Cell::new(AutoRule::from_env()),
        }
    }
}

/// `BATCHSCOPE_F16_KERNEL=packed|skinny|coop|coop64|coop_staged`, each cooperative one also with
/// `_v4` or `_v8` (the autotune candidates' names without `f16_`), else none (anything else warns and is ignored).
fn half_kernel_from_env() -> Option<HalfKernel> {
    let v = std::env::var("BATCHSCOPE_F16_KERNEL").ok()?;
    let k = half_kernel_named(&v);
    if k.is_none() {
        log::warn!(
            "BATCHSCOPE_F16_KERNEL={v:?} is none of packed, skinny, coop, coop64, coop_staged (each \
             cooperative one also with _v4 or _v8): ignored"
        );
    }
    k
}

/// The f16 kernel named `packed`, `skinny`, `coop`, `coop64` or `coop_staged` (the cooperative
/// ones also with `_v4` or `_v8`).
pub fn half_kernel_named(name: &str) -> Option<HalfKernel> {
    super::autotune::Candidate::parse(&format!("f16_{name}")).and_then(super::autotune::half_kernel_of)
}

/// `var=1` or `0` in the environment, else `default` (anything else warns and is ignored).
pub(super) fn switch(var: &str, default: bool) -> bool {
    match std::env::var(var).as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        Ok(other) => {
            log::warn!("{var}={other:?} is neither 0 nor 1: ignored");
            default
        }
        Err(_) => default,
    }
}

impl super::GpuBackend {
    /// Choose the matmul kernel used by [`Backend::matmul`] (benches compare them).
    ///
    /// [`Backend::matmul`]: crate::backend::Backend::matmul
    pub fn set_matmul_variant(&self, v: super::matmul::MatmulVariant) {
        self.matmul_variant.set(v);
    }

    pub fn matmul_variant(&self) -> super::matmul::MatmulVariant {
        self.matmul_variant.get()
    }

    pub fn adapter(&self) -> &super::AdapterSummary {
        &self.dev.ctx.summary
    }

    /// The loop iterations an invocation may run on this adapter, `None` where nothing caps
    /// them (measured where the driver may: [`super::launch::measured_loop_limit`]).
    pub fn loop_iteration_limit(&self) -> crate::backend::Result<Option<u64>> {
        super::launch::measured_loop_limit(&self.dev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_kernels_are_named_as_their_candidates() {
        assert_eq!(half_kernel_named("packed"), Some(HalfKernel::Packed));
        assert_eq!(half_kernel_named("coop"), Some(HalfKernel::Coop));
        assert_eq!(half_kernel_named("coop64"), Some(HalfKernel::Coop64));
        assert_eq!(half_kernel_named("coop_staged"), Some(HalfKernel::CoopStaged));
        assert_eq!(half_kernel_named("coop_staged_v4"), Some(HalfKernel::CoopStagedV4));
        assert_eq!(half_kernel_named("coop_v4"), Some(HalfKernel::CoopV4));
        assert_eq!(half_kernel_named("coop64_v4"), Some(HalfKernel::Coop64V4));
        assert_eq!(half_kernel_named("coop_staged_v8"), Some(HalfKernel::CoopStagedV8));
        assert_eq!(half_kernel_named("tiled"), None);
        assert_eq!(half_kernel_named(""), None);
    }

    #[test]
    fn a_cooperative_kernel_falls_back_to_its_own_block_before_a_smaller_one() {
        use super::super::matmul_f16::coop_chain;
        use HalfKernel::*;
        // The staged block with 16-byte loads where the retyped module cannot run (off Vulkan):
        // the staged block with f16 loads comes before the 32x32 ones.
        assert_eq!(coop_chain(CoopStagedV8), [CoopStagedV8, CoopStaged, CoopV8, Coop]);
        assert_eq!(coop_chain(Coop64V4), [Coop64V4, Coop64, CoopV4, Coop]);
        // The rule's default: each entry once tried, in the same order as before.
        assert_eq!(coop_chain(CoopStaged), [CoopStaged, CoopStaged, Coop, Coop]);
        assert_eq!(coop_chain(Coop), [Coop; 4]);
    }
}

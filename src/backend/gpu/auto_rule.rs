//! [`AutoRule`]: how [`MatmulVariant::Auto`] picks a product's launch on one backend when the
//! autotuner has no choice for its shape. A pure function of the shape and five constants, so
//! a run is deterministic; the constants are the backend's (`GpuBackend::set_auto_rule`, or
//! `BATCHSCOPE_SKINNY_MAX_M`, `BATCHSCOPE_SKINNY_MAX_N`, `BATCHSCOPE_SKINNY_MAX_K`,
//! `BATCHSCOPE_SKINNY_TA_MAX_M` and `BATCHSCOPE_SMALL_GRID_TILE` for A/B timing on a device).
//!
//! Why a rule with knobs rather than [`matmul::choose`] alone: with 128x128 tiles the batch-row
//! products of a batch of 64..1024 examples (`X·Wᵀ`, `dZ·W`: m = B, n = a layer width ≤ 1024)
//! make 8..64 workgroups, a fraction of a large GPU's SMs (the H200 has 132), and split-k can
//! split only a short k (784, 1024) in two or four. The H200 ran the default model's first
//! layer at B = 64 in 72.8 µs on 16 workgroups, against 16.4 µs for B = 32 on the skinny kernel
//! (profile, 2026-12-04). Two ways out were measured against each other on the device, steps of
//! B = 32..4096 in one run: the skinny kernel to 64 or 128 rows (`skinny_max_m`) took B = 64
//! from 0.278 to 0.159 ms and B = 128 from 0.317 to 0.235 ms and changed nothing else; a
//! 64x64 or 64x128 tile where the 128x128 grid is short of [`SMALL_GRID_TILES`] workgroups
//! (`small_grid_tile`) won at B = 256 (0.343 against 0.397 ms) but lost from B = 512 on (2.01
//! against 1.53 ms at 4096: the weight gradients' short grids split k better on 128x128 tiles).
//! So the default reaches 128 rows with the skinny kernel and keeps the 128x128 tiles; the
//! small-grid tile stays a knob for other devices.
//!
//! [`MatmulVariant::Auto`]: super::matmul::MatmulVariant::Auto

use super::matmul::{self, launch_of, tile_launch, Launch, MatmulVariant, SKINNY_MAX_K};
use super::tile::TileCfg;
use crate::backend::Gemm;

/// Below this many 128x128 output tiles a product counts as short of workgroups (about one per
/// SM of a large GPU) and [`AutoRule::small_grid_tile`] applies.
pub const SMALL_GRID_TILES: usize = 128;

/// The constants of the rule (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AutoRule {
    /// Rows of C up to which a plain-A product runs the skinny kernel.
    pub skinny_max_m: usize,
    /// Columns of C up to which a plain-A product runs the skinny kernel at any row count.
    pub skinny_max_n: usize,
    /// Depth up to which a plain-A product runs the skinny kernel at any row count: the
    /// output layer's `dZ·W` (k = classes), which 128x128 tiles run as a few workgroups of
    /// 2 slices each (16 at B = 256). 0: off.
    pub skinny_max_k: usize,
    /// Rows of C up to which a transposed-A product (a weight gradient `dZᵀ·X`, k = the batch)
    /// runs the skinny kernel: the output layer's (m = classes), which 128x128 tiles compute
    /// as one row of tiles 10 rows deep. 0: off.
    pub skinny_ta_max_m: usize,
    /// The tile of the autotuner's family for a tiled product of fewer than
    /// [`SMALL_GRID_TILES`] 128x128 tiles (`None`: the 128x128 kernel everywhere).
    pub small_grid_tile: Option<TileCfg>,
}

impl Default for AutoRule {
    /// Skinny up to [`matmul::SKINNY_MAX_M`] rows or [`matmul::SKINNY_MAX_N`] columns, 128x128
    /// tiles elsewhere ([`matmul::choose`]).
    fn default() -> Self {
        AutoRule {
            skinny_max_m: matmul::SKINNY_MAX_M,
            skinny_max_n: matmul::SKINNY_MAX_N,
            skinny_max_k: 0,
            skinny_ta_max_m: 0,
            small_grid_tile: None,
        }
    }
}

impl AutoRule {
    /// The default, with what the environment says: `BATCHSCOPE_SKINNY_MAX_M=<rows>`,
    /// `BATCHSCOPE_SKINNY_MAX_N=<columns>`, `BATCHSCOPE_SKINNY_MAX_K=<depth>`,
    /// `BATCHSCOPE_SKINNY_TA_MAX_M=<rows>` and `BATCHSCOPE_SMALL_GRID_TILE=<t{bm}x{bn}k{bk}>|off`
    /// (anything else warns and is ignored).
    pub fn from_env() -> Self {
        let mut rule = AutoRule::default();
        for (var, field) in [
            ("BATCHSCOPE_SKINNY_MAX_M", &mut rule.skinny_max_m),
            ("BATCHSCOPE_SKINNY_MAX_N", &mut rule.skinny_max_n),
            ("BATCHSCOPE_SKINNY_MAX_K", &mut rule.skinny_max_k),
            ("BATCHSCOPE_SKINNY_TA_MAX_M", &mut rule.skinny_ta_max_m),
        ] {
            if let Ok(v) = std::env::var(var) {
                match v.parse::<usize>() {
                    Ok(n) => *field = n,
                    Err(_) => log::warn!("{var}={v:?} is not a count: ignored"),
                }
            }
        }
        if let Ok(v) = std::env::var("BATCHSCOPE_SMALL_GRID_TILE") {
            match (v.as_str(), TileCfg::parse(&v)) {
                ("off", _) => rule.small_grid_tile = None,
                (_, Some(t)) => rule.small_grid_tile = Some(t),
                (_, None) => {
                    log::warn!("BATCHSCOPE_SMALL_GRID_TILE={v:?} is no tile of the family: ignored")
                }
            }
        }
        rule
    }

    /// The variant of `g` by this rule: skinny for at most `skinny_max_m` rows,
    /// `skinny_max_n` columns or a depth of `skinny_max_k` of a plain A, or at most
    /// `skinny_ta_max_m` rows of a transposed A, and a depth one workgroup can walk and columns
    /// one grid row holds ([`matmul::skinny_grid_fits`]); else tiled.
    pub fn variant(&self, g: &Gemm) -> MatmulVariant {
        let plain = !g.trans_a
            && (g.m <= self.skinny_max_m || g.n <= self.skinny_max_n || g.k <= self.skinny_max_k);
        let weight_gradient = g.trans_a && g.m <= self.skinny_ta_max_m;
        if (plain || weight_gradient) && g.k <= SKINNY_MAX_K && matmul::skinny_grid_fits(g) {
            MatmulVariant::Skinny
        } else {
            MatmulVariant::Tiled
        }
    }

    /// The launch of `g` by this rule on an adapter with `limits`: the variant's, or for a
    /// tiled product short of workgroups the small-grid tile where the adapter runs it.
    pub fn launch(&self, g: &Gemm, limits: &wgpu::Limits) -> Launch {
        let v = self.variant(g);
        if v == MatmulVariant::Tiled && g.m.div_ceil(128) * g.n.div_ceil(128) < SMALL_GRID_TILES {
            if let Some(launch) =
                self.small_grid_tile.filter(|t| t.fits(limits)).and_then(|t| tile_launch(t, g))
            {
                return launch;
            }
        }
        launch_of(v, g)
    }
}

impl super::GpuBackend {
    /// Set the rule [`MatmulVariant::Auto`] follows where the autotuner has no choice (the
    /// default: [`AutoRule::from_env`]). Results are deterministic under any rule; the bits of
    /// a product may differ between rules (the skinny kernel sums k in lanes).
    pub fn set_auto_rule(&self, rule: AutoRule) {
        self.choices.auto_rule.set(rule);
    }

    /// See [`GpuBackend::set_auto_rule`].
    ///
    /// [`GpuBackend::set_auto_rule`]: super::GpuBackend::set_auto_rule
    pub fn auto_rule(&self) -> AutoRule {
        self.choices.auto_rule.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t64() -> TileCfg {
        TileCfg { bm: 64, bn: 64, bk: 8 }
    }

    #[test]
    fn the_default_rule_is_choose() {
        let rule = AutoRule::default();
        let limits = wgpu::Limits::default();
        for (m, n, k, ta, tb) in [
            (1, 1024, 784, false, true),
            (32, 1024, 1024, false, false),
            (33, 1024, 1024, false, false),
            (1024, 784, 8, true, false),
            (4096, 1024, 1024, false, true),
        ] {
            let g = Gemm::nn(m, n, k).trans(ta, tb);
            assert_eq!(rule.variant(&g), matmul::choose(&g), "{g:?}");
            assert_eq!(
                rule.launch(&g, &limits).kernel.name,
                launch_of(MatmulVariant::Auto, &g).kernel.name,
                "{g:?}"
            );
        }
    }

    #[test]
    fn skinny_reaches_its_rows_and_never_takes_weight_gradients() {
        let rule = AutoRule { skinny_max_m: 128, skinny_max_n: 16, ..AutoRule::default() };
        assert_eq!(rule.variant(&Gemm::nn(128, 1024, 784).trans(false, true)), MatmulVariant::Skinny);
        assert_eq!(rule.variant(&Gemm::nn(129, 1024, 784).trans(false, true)), MatmulVariant::Tiled);
        // The output layer's forward product at any batch; not its weight gradient.
        assert_eq!(rule.variant(&Gemm::nn(65536, 10, 1024).trans(false, true)), MatmulVariant::Skinny);
        assert_eq!(rule.variant(&Gemm::nn(65536, 17, 1024).trans(false, true)), MatmulVariant::Tiled);
        assert_eq!(rule.variant(&Gemm::nn(10, 1024, 4096).trans(true, false)), MatmulVariant::Tiled);
        assert_eq!(rule.variant(&Gemm::nn(64, 1024, 64).trans(true, false)), MatmulVariant::Tiled);
        assert_eq!(rule.variant(&Gemm::nn(64, 50, SKINNY_MAX_K + 1)), MatmulVariant::Tiled);
    }

    #[test]
    fn shallow_products_and_the_output_layers_weight_gradient_go_skinny_when_asked() {
        let off = AutoRule::default();
        let on = AutoRule { skinny_max_k: 16, skinny_ta_max_m: 16, ..off };
        // dZ·W of the output layer: k = 10 classes, any batch.
        let dgrad = Gemm::nn(4096, 1024, 10);
        assert_eq!(
            (off.variant(&dgrad), on.variant(&dgrad)),
            (MatmulVariant::Tiled, MatmulVariant::Skinny)
        );
        assert_eq!(on.variant(&Gemm::nn(4096, 1024, 17)), MatmulVariant::Tiled);
        // dZᵀ·X of the output layer: m = 10 classes, k = the batch; not a hidden layer's.
        let wgrad = Gemm::nn(10, 1024, 4096).trans(true, false);
        assert_eq!(
            (off.variant(&wgrad), on.variant(&wgrad)),
            (MatmulVariant::Tiled, MatmulVariant::Skinny)
        );
        assert_eq!(on.variant(&Gemm::nn(1024, 784, 4096).trans(true, false)), MatmulVariant::Tiled);
        assert_eq!(
            on.variant(&Gemm::nn(10, 1024, SKINNY_MAX_K + 1).trans(true, false)),
            MatmulVariant::Tiled
        );
        // A shallow transposed-A product is a weight gradient of a tiny batch: the m rule only.
        assert_eq!(on.variant(&Gemm::nn(1024, 784, 8).trans(true, false)), MatmulVariant::Tiled);
    }

    #[test]
    fn the_small_grid_tile_runs_only_short_grids_it_fits() {
        let rule = AutoRule { skinny_max_m: 32, small_grid_tile: Some(t64()), ..AutoRule::default() };
        let limits = wgpu::Limits::default();
        // 512 x 1024: 32 tiles of 128x128, short of 128.
        let short = Gemm::nn(512, 1024, 784).trans(false, true);
        let l = rule.launch(&short, &limits);
        assert_eq!((l.tile_m, l.tile_n), (64, 64));
        // 4096 x 1024: 256 tiles, the 128x128 kernel.
        let full = Gemm::nn(4096, 1024, 784).trans(false, true);
        assert_eq!(rule.launch(&full, &limits).tile_m, 128);
        // Skinny rows stay skinny.
        let skinny = Gemm::nn(8, 1024, 784).trans(false, true);
        assert!(matmul::is_skinny(&rule.launch(&skinny, &limits)));
        // An adapter whose workgroups cannot hold the tile keeps 128x128.
        let tiny = wgpu::Limits { max_compute_workgroup_storage_size: 1024, ..limits };
        assert_eq!(rule.launch(&short, &tiny).tile_m, 128);
    }
}

//! Matmul autotuning: for each product shape a step uses, time the candidate kernels on the
//! device, keep the fastest, and cache the choice per adapter, driver, backend and shape
//! ([`cache`]), like CubeCL's autotune. The choice logic is pure ([`candidates`], [`pick`]);
//! [`timing`] measures on the device, and [`verify`] checks each candidate's product against
//! an exact host reference: one that disagrees is reported and never chosen.
//!
//! Modes (`gpu.autotune` in the config): `off` (the default) runs the pure
//! [`super::matmul::choose`], the same kernels on every machine; `cached` runs the cache's
//! choices where it has them and `choose` elsewhere, never timing anything; `on` also times a
//! shape the cache lacks on first use (one extra submit and some milliseconds) and saves the
//! cache. Given the cache file, the kernels and so the bits of a run are fixed.

pub mod cache;
mod half;
pub mod shapes;
pub(crate) mod timing;
pub mod verify;

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::matmul::{choose, launch_of, tile_launch, Launch, MatmulVariant, SKINNY_MAX_K};
use super::tile::{TileCfg, TILES};
use super::{GpuBackend, GpuDevice};
use crate::backend::{BackendError, Gemm, Result};
pub use cache::{default_path, AutotuneError, CandidateTime, DeviceKey, Entry, ShapeKey, TuneCache};
use half::half_candidates_on;
pub use half::{half_candidate, half_candidates, half_kernel_of};
pub use verify::Mismatch;

/// How the GPU backend picks matmul kernels (`gpu.autotune`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutotuneMode {
    /// The pure shape rule [`choose`]: deterministic everywhere, no cache file.
    #[default]
    Off,
    /// The cache's choices where it has one for this adapter and shape, else `choose`.
    Cached,
    /// As `cached`, and time the candidates of a shape the cache lacks on first use.
    On,
}

/// A matmul kernel the autotuner can choose for a shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Candidate {
    /// `matmul.wgsl`'s 128x128, BK = 8 tiled kernel (with split-k): `choose`'s large-m pick.
    Tiled,
    /// The skinny kernels (8, 4 or 1 rows of C per workgroup by m).
    Skinny,
    /// A configuration of the tile family (`matmul_tile.wgsl`, with split-k).
    Tile(TileCfg),
    /// f16 products: `matmul_f16.wgsl`, packed halves and f32 FMA.
    HalfPacked,
    /// f16 products: `matmul_f16.wgsl`'s `matmul_f16_skinny`, k walked by lanes (a short side).
    HalfSkinny,
    /// f16 products: `matmul_coop.wgsl`, cooperative matrices (tensor cores), 32x32 blocks.
    HalfCoop,
    /// f16 products: `matmul_coop.wgsl`'s `matmul_coop64`, 64x64 blocks.
    HalfCoop64,
    /// f16 products: `matmul_coop_staged.wgsl`, operands staged in workgroup memory.
    HalfCoopStaged,
    /// `HalfCoop` with vec4<f16> tile loads (`super::coop_shape::LoadWidth`).
    HalfCoopV4,
    /// `HalfCoop64` with vec4<f16> tile loads.
    HalfCoop64V4,
    /// `HalfCoopStaged` with vec4<f16> staging stores and tile loads (`super::staged`).
    HalfCoopStagedV4,
    /// `HalfCoop` with 16-byte tile loads (retyped SPIR-V, `super::retype`).
    HalfCoopV8,
    /// `HalfCoop64` with 16-byte tile loads.
    HalfCoop64V8,
    /// `HalfCoopStaged` with 16-byte staging stores and tile loads.
    HalfCoopStagedV8,
}

/// Rows of C up to which the skinny kernel is a candidate: the default rule's reach
/// ([`super::matmul::SKINNY_MAX_M`]; the H200 ran it faster than the tiles up to 128 rows).
pub const SKINNY_TUNE_MAX_M: usize = super::matmul::SKINNY_MAX_M;

/// A candidate must beat the shape's default ([`Candidate::default_for`]) by this fraction to
/// be chosen: timing noise alone does not move a shape off the default.
pub const MARGIN: f64 = 0.03;

impl Candidate {
    /// `tiled`, `skinny`, or the tile name `t{bm}x{bn}k{bk}`.
    pub fn name(self) -> String {
        match self {
            Candidate::Tiled => "tiled".into(),
            Candidate::Skinny => "skinny".into(),
            Candidate::Tile(t) => t.name(),
            Candidate::HalfPacked => "f16_packed".into(),
            Candidate::HalfSkinny => "f16_skinny".into(),
            Candidate::HalfCoop => "f16_coop".into(),
            Candidate::HalfCoop64 => "f16_coop64".into(),
            Candidate::HalfCoopStaged => "f16_coop_staged".into(),
            Candidate::HalfCoopV4 => "f16_coop_v4".into(),
            Candidate::HalfCoop64V4 => "f16_coop64_v4".into(),
            Candidate::HalfCoopStagedV4 => "f16_coop_staged_v4".into(),
            Candidate::HalfCoopV8 => "f16_coop_v8".into(),
            Candidate::HalfCoop64V8 => "f16_coop64_v8".into(),
            Candidate::HalfCoopStagedV8 => "f16_coop_staged_v8".into(),
        }
    }

    pub fn parse(s: &str) -> Option<Candidate> {
        match s {
            "tiled" => Some(Candidate::Tiled),
            "skinny" => Some(Candidate::Skinny),
            "f16_packed" => Some(Candidate::HalfPacked),
            "f16_skinny" => Some(Candidate::HalfSkinny),
            "f16_coop" => Some(Candidate::HalfCoop),
            "f16_coop64" => Some(Candidate::HalfCoop64),
            "f16_coop_staged" => Some(Candidate::HalfCoopStaged),
            "f16_coop_v4" => Some(Candidate::HalfCoopV4),
            "f16_coop64_v4" => Some(Candidate::HalfCoop64V4),
            "f16_coop_staged_v4" => Some(Candidate::HalfCoopStagedV4),
            "f16_coop_v8" => Some(Candidate::HalfCoopV8),
            "f16_coop64_v8" => Some(Candidate::HalfCoop64V8),
            "f16_coop_staged_v8" => Some(Candidate::HalfCoopStagedV8),
            _ => TileCfg::parse(s).map(Candidate::Tile),
        }
    }

    /// What `choose` runs for `g` (the default the others must beat).
    pub fn default_for(g: &Gemm) -> Candidate {
        match choose(g) {
            MatmulVariant::Skinny => Candidate::Skinny,
            _ => Candidate::Tiled,
        }
    }

    /// How this candidate launches `g`.
    pub fn launch(self, g: &Gemm) -> Option<Launch> {
        match self {
            Candidate::Tiled => Some(launch_of(MatmulVariant::Tiled, g)),
            Candidate::Skinny => Some(launch_of(MatmulVariant::Skinny, g)),
            Candidate::Tile(t) => tile_launch(t, g),
            // f16 kernels launch through `matmul_f16::matmul_half`, not as f32 products.
            Candidate::HalfPacked
            | Candidate::HalfSkinny
            | Candidate::HalfCoop
            | Candidate::HalfCoop64
            | Candidate::HalfCoopStaged
            | Candidate::HalfCoopV4
            | Candidate::HalfCoop64V4
            | Candidate::HalfCoopStagedV4
            | Candidate::HalfCoopV8
            | Candidate::HalfCoop64V8
            | Candidate::HalfCoopStagedV8 => None,
        }
    }
}

/// The candidates for `g` on an adapter with `limits`, the default first: the base tiled kernel,
/// the skinny one for few rows (m ≤ [`SKINNY_TUNE_MAX_M`]) or a plain A's 16 columns or depth,
/// and every tile of the family the adapter can run ([`TileCfg::fits`]).
pub fn candidates(g: &Gemm, limits: &wgpu::Limits) -> Vec<Candidate> {
    let mut out = vec![Candidate::default_for(g)];
    let mut push = |c: Candidate| {
        if !out.contains(&c) {
            out.push(c);
        }
    };
    push(Candidate::Tiled);
    if (g.m <= SKINNY_TUNE_MAX_M || (!g.trans_a && g.k.min(g.n) <= 16)) && g.k <= SKINNY_MAX_K {
        push(Candidate::Skinny);
    }
    for t in TILES.into_iter().filter(|t| t.fits(limits)) {
        push(Candidate::Tile(t));
    }
    out
}

/// The choice among timed candidates (ms per product; `None`: failed or not run): the fastest,
/// unless it is within [`MARGIN`] of `default`, which then stays. Ties go to the earlier
/// candidate. `None` when nothing was timed.
pub fn pick(default: Candidate, times: &[(Candidate, Option<f64>)]) -> Option<Candidate> {
    let timed = || times.iter().filter_map(|&(c, t)| t.filter(|t| t.is_finite()).map(|t| (c, t)));
    let (best, best_ms) = timed().fold(None, |acc: Option<(Candidate, f64)>, (c, t)| match acc {
        Some((_, bt)) if bt <= t => acc,
        _ => Some((c, t)),
    })?;
    match timed().find(|&(c, _)| c == default) {
        Some((_, d)) if best_ms >= d * (1.0 - MARGIN) => Some(default),
        _ => Some(best),
    }
}

/// A shape's timings and choice, as `batchscope tune` reports them.
#[derive(Clone, Debug)]
pub struct TuneResult {
    pub shape: ShapeKey,
    pub times: Vec<(Candidate, Option<f64>)>,
    /// Timed candidates whose product disagreed with the exact reference ([`verify`]): never
    /// chosen, never reported as the fastest.
    pub wrong: Vec<(Candidate, Mismatch)>,
    pub choice: Candidate,
    pub method: &'static str,
}

impl TuneResult {
    /// Whether `c`'s product agreed with the reference (or `c` did not run).
    pub fn agrees(&self, c: Candidate) -> bool {
        !self.wrong.iter().any(|(w, _)| *w == c)
    }

    /// The timings of the candidates that may be chosen: a wrong one counts as not run.
    pub fn usable(&self) -> Vec<(Candidate, Option<f64>)> {
        self.times.iter().map(|&(c, t)| (c, t.filter(|_| self.agrees(c)))).collect()
    }
}

/// Warn once per wrong candidate of `r`, loudly when it is the rule's own kernel.
fn warn_wrong(r: &TuneResult, default: Candidate) {
    for (c, m) in &r.wrong {
        let what = r.shape.label();
        match *c == default {
            true => log::error!(
                "the default kernel {} computed {what} wrongly on this device ({m}); please report it \
                 with `batchscope devices`",
                c.name()
            ),
            false => log::warn!("autotune: {} computed {what} wrongly ({m}); not a candidate", c.name()),
        }
    }
}

/// The backend's tuning state: the mode, the cache and the choices made this session.
#[derive(Default)]
pub struct Autotuner {
    mode: AutotuneMode,
    path: Option<PathBuf>,
    cache: TuneCache,
    device: Option<DeviceKey>,
    resolved: HashMap<ShapeKey, Option<Candidate>>,
    warned_save: bool,
}

impl Autotuner {
    pub fn mode(&self) -> AutotuneMode {
        self.mode
    }

    /// The candidate to run for `g`, or `None` for the pure `choose` path.
    fn resolve(&mut self, dev: &GpuDevice, g: &Gemm) -> Result<Option<Candidate>> {
        if self.mode == AutotuneMode::Off {
            return Ok(None);
        }
        let shape = ShapeKey::of(g);
        if let Some(&c) = self.resolved.get(&shape) {
            return Ok(c);
        }
        let device = self.device.clone().unwrap_or_else(|| DeviceKey::of(&dev.ctx.summary));
        let allowed = candidates(g, &dev.ctx.limits);
        let mut choice = self.cache.choice(&device, shape, &allowed);
        if choice.is_none() && self.mode == AutotuneMode::On {
            // A shape that cannot be timed (no memory for scratch operands, say) keeps `choose`.
            match self.tune(dev, g) {
                Ok(r) => {
                    choice = Some(r.choice);
                    self.save_or_warn();
                }
                Err(e) => log::warn!("autotune: cannot time {}: {e}; using the default", shape.label()),
            }
        }
        self.resolved.insert(shape, choice);
        Ok(choice)
    }

    /// The kernel of the f16 product `g`: `None` for the pure rule (`off`), else the cache's
    /// choice, timed on first use under `on` when there is more than one candidate.
    fn resolve_half(&mut self, dev: &GpuDevice, g: &Gemm) -> Result<Option<Candidate>> {
        if self.mode == AutotuneMode::Off {
            return Ok(None);
        }
        let shape = ShapeKey::of_half(g);
        if let Some(&c) = self.resolved.get(&shape) {
            return Ok(c);
        }
        let device = self.device.clone().unwrap_or_else(|| DeviceKey::of(&dev.ctx.summary));
        let allowed = half_candidates_on(dev, g);
        let mut choice = match allowed.len() {
            1 => allowed.first().copied(),
            _ => self.cache.choice(&device, shape, &allowed),
        };
        if choice.is_none() && self.mode == AutotuneMode::On {
            match self.tune_at(dev, g, shape, &allowed) {
                Ok(r) => {
                    choice = Some(r.choice);
                    self.save_or_warn();
                }
                Err(e) => log::warn!("autotune: cannot time {}: {e}; using the default", shape.label()),
            }
        }
        self.resolved.insert(shape, choice);
        Ok(choice)
    }

    /// Time every candidate of `g`'s shape now, store the choice in the cache (not saved).
    fn tune(&mut self, dev: &GpuDevice, g: &Gemm) -> Result<TuneResult> {
        let cands = candidates(g, &dev.ctx.limits);
        self.tune_at(dev, g, ShapeKey::of(g), &cands)
    }

    /// [`Autotuner::tune`] of `shape` (f32 or f16) among `cands`, the default first.
    fn tune_at(
        &mut self,
        dev: &GpuDevice,
        g: &Gemm,
        shape: ShapeKey,
        cands: &[Candidate],
    ) -> Result<TuneResult> {
        let device = DeviceKey::of(&dev.ctx.summary);
        let gs = shape.gemm().scaled(g.alpha, g.beta);
        let timing::Timings { times, wrong, method } = match shape.f16 {
            true => timing::time_half_candidates(dev, &gs, cands)?,
            false => timing::time_candidates(dev, &gs, cands)?,
        };
        let default = match shape.f16 {
            true => cands.first().copied().unwrap_or(Candidate::HalfPacked),
            false => Candidate::default_for(g),
        };
        let mut result = TuneResult { shape, times, wrong, choice: default, method };
        warn_wrong(&result, default);
        let usable = result.usable();
        // No candidate ran right: nothing was measured, so nothing is cached.
        let Some(choice) = pick(default, &usable) else {
            return Err(BackendError::Invalid {
                op: "autotune",
                message: format!("no candidate ran the product {} right", shape.label()),
            });
        };
        result.choice = choice;
        let timings = usable
            .iter()
            .filter_map(|&(c, t)| t.map(|ms| CandidateTime { candidate: c.name(), ms }))
            .collect();
        self.cache.insert(Entry {
            device: device.clone(),
            shape,
            choice: choice.name(),
            method: method.to_string(),
            timings,
        });
        self.device = Some(device);
        self.resolved.insert(shape, Some(choice));
        Ok(result)
    }

    fn save_or_warn(&mut self) {
        let Some(path) = self.path.clone() else { return };
        if let Err(e) = self.cache.save(&path) {
            if !self.warned_save {
                log::warn!("{e}; the choices hold for this run only");
                self.warned_save = true;
            }
        }
    }
}

impl GpuBackend {
    /// Set the matmul autotuning mode with the cache at [`default_path`] (see the module doc).
    pub fn set_autotune(&self, mode: AutotuneMode) {
        self.set_autotune_at(mode, default_path());
    }

    /// Set the mode with the cache file at `path` (`None`: an in-memory cache). Loads the file
    /// for `cached` and `on`; a corrupt or stale one gives one warning and is rebuilt.
    pub fn set_autotune_at(&self, mode: AutotuneMode, path: Option<PathBuf>) {
        let mut cache = TuneCache::default();
        // A path naming a file that is no cache: warned once here, never written.
        let mut warned_save = false;
        if mode != AutotuneMode::Off {
            if let Some(p) = &path {
                let loaded = TuneCache::load(p);
                if let Some(w) = loaded.warning {
                    log::warn!("autotune cache: {w}");
                }
                warned_save = loaded.foreign.is_some();
                cache = loaded.cache;
            }
        }
        let device = Some(DeviceKey::of(&self.dev.ctx.summary));
        *self.tuner.borrow_mut() =
            Autotuner { mode, path, cache, device, warned_save, ..Autotuner::default() };
    }

    pub fn autotune_mode(&self) -> AutotuneMode {
        self.tuner.borrow().mode
    }

    /// The launch the tuner picked for `g`, or `None` for the plain variant path.
    pub(super) fn tuned_launch(&self, g: &Gemm) -> Result<Option<Launch>> {
        if self.matmul_variant() != MatmulVariant::Auto {
            return Ok(None);
        }
        let choice = self.tuner.borrow_mut().resolve(&self.dev, g)?;
        Ok(choice.and_then(|c| c.launch(g)))
    }

    /// The kernel the tuner picked for the f16 product `g`, or `None` for the pure rule.
    pub(super) fn tuned_half(&self, g: &Gemm) -> Result<Option<Candidate>> {
        self.tuner.borrow_mut().resolve_half(&self.dev, g)
    }

    /// Re-time every candidate for `g`'s shape and store the choice (`batchscope tune`); call
    /// [`GpuBackend::save_autotune`] to write the file.
    pub fn tune_shape(&self, g: &Gemm) -> Result<TuneResult> {
        self.tuner.borrow_mut().tune(&self.dev, g)
    }

    /// [`GpuBackend::tune_shape`] of `g` as an f16 product (packed-half operands): among the
    /// packed kernel and the cooperative ones the first-use check found exact.
    pub fn tune_half_shape(&self, g: &Gemm) -> Result<TuneResult> {
        let cands = half_candidates_on(&self.dev, g);
        self.tuner.borrow_mut().tune_at(&self.dev, g, ShapeKey::of_half(g), &cands)
    }

    /// Time and check every candidate of the product `g` now (f32 operands, or packed halves
    /// with `half`), leaving the cache and the session's choices as they are (`batchscope
    /// gemm`). The result's `choice` is the default (what `gpu.autotune = "off"` runs), first
    /// in `times`; an error when no candidate ran.
    pub fn time_product(&self, g: &Gemm, half: bool) -> Result<TuneResult> {
        let dev = &self.dev;
        let (shape, cands) = match half {
            true => (ShapeKey::of_half(g), half_candidates_on(dev, g)),
            false => (ShapeKey::of(g), candidates(g, &dev.ctx.limits)),
        };
        let timing::Timings { times, wrong, method } = match half {
            true => timing::time_half_candidates(dev, g, &cands)?,
            false => timing::time_candidates(dev, g, &cands)?,
        };
        if !times.iter().any(|(_, t)| t.is_some_and(f64::is_finite)) {
            return Err(BackendError::Invalid {
                op: "gemm timing",
                message: format!("no candidate ran the product {}", shape.label()),
            });
        }
        let choice = cands.first().copied().unwrap_or(Candidate::Tiled);
        let result = TuneResult { shape, times, wrong, choice, method };
        warn_wrong(&result, choice);
        Ok(result)
    }

    /// Write the cache to its file; the path written, or `None` for an in-memory cache.
    pub fn save_autotune(&self) -> std::result::Result<Option<PathBuf>, AutotuneError> {
        let t = self.tuner.borrow();
        match &t.path {
            Some(p) => t.cache.save(p).map(|()| Some(p.clone())),
            None => Ok(None),
        }
    }

    /// The cache as the tuner holds it.
    pub fn autotune_cache(&self) -> TuneCache {
        self.tuner.borrow().cache.clone()
    }
}

#[cfg(test)]
mod cache_tests;
#[cfg(test)]
mod tests;

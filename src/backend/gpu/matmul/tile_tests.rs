//! The tile family (`matmul_tile.wgsl`) against the f64 reference on ragged shapes under every
//! transpose, with split-k, and bit for bit against the base tiled kernel; and the autotuner on
//! the device: a tuned choice is cached, reloaded, and gives the same bits again.

use super::tests::{backend, cases, check_with, every_transpose, random, splitk_cases};
use super::*;
use crate::backend::gpu::autotune::{candidates, AutotuneMode, Candidate, ShapeKey, TuneCache};
use crate::backend::gpu::tile::TILES;
use crate::backend::gpu::GpuBackend;
use crate::backend::Backend;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn run_tile(be: &GpuBackend, cfg: TileCfg, shapes: &[(Gemm, bool)], seed: u64) -> Vec<String> {
    let mut failures = Vec::new();
    for (idx, (g, nan_c)) in shapes.iter().enumerate() {
        let Some(launch) = tile_launch(cfg, g) else {
            failures.push(format!("{}: no launch", cfg.name()));
            continue;
        };
        let run = |a: &RawBuf, b: &RawBuf, c: &RawBuf| record(&be.dev, &launch, g, a, b, c);
        if let Err(e) = check_with(be, launch.kernel.name, &run, g, *nan_c, seed + idx as u64) {
            failures.push(e);
        }
    }
    failures
}

#[test]
fn every_tile_matches_f64_reference() {
    let be = backend();
    let mut failures = Vec::new();
    for (i, cfg) in TILES.into_iter().filter(|t| t.fits(&be.dev.ctx.limits)).enumerate() {
        failures.extend(run_tile(&be, cfg, &cases(), 4000));
        // Split-k (long k) on every other configuration: both depths and all three sizes.
        if i % 2 == 0 {
            failures.extend(run_tile(&be, cfg, &splitk_cases(), 5000));
        }
        let edges = every_transpose(&[(65, 129, 17), (129, 65, 33), (64, 64, 16)]);
        failures.extend(run_tile(&be, cfg, &edges, 6000));
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// Product `g` on seeded operands through `launch`, read back.
fn product(be: &GpuBackend, launch: &Launch, g: &Gemm, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (la, lb, lc) = gemm_lens(g);
    let a = be.upload(&random(&mut rng, la)).unwrap();
    let b = be.upload(&random(&mut rng, lb)).unwrap();
    let c = be.upload(&random(&mut rng, lc)).unwrap();
    record(&be.dev, launch, g, &a.0, &b.0, &c.0).unwrap();
    be.read(&c).unwrap()
}

/// Without split-k every tile runs the same fma chain per output as the base tiled kernel:
/// the same bits, so choosing among tiles never changes a run's results.
#[test]
fn tiles_agree_bitwise_with_the_base_kernel_without_split() {
    let be = backend();
    // Every transpose of a third of the shapes (ragged and aligned, one and several tiles).
    for (i, (g, _)) in cases().iter().enumerate().filter(|(i, _)| (i / 4) % 3 == 1) {
        let g = g.scaled(0.5, 0.25);
        let base = product(&be, &launch_of(MatmulVariant::Tiled, &g), &g, 70 + i as u64);
        for cfg in TILES.into_iter().filter(|t| t.fits(&be.dev.ctx.limits)) {
            let got = product(&be, &tile_launch(cfg, &g).unwrap(), &g, 70 + i as u64);
            let same = got.iter().zip(&base).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "{} differs from the base kernel on {g:?}", cfg.name());
        }
    }
}

fn tmp_cache(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("batchscope-tile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d.join("autotune.json")
}

/// `on` times a new shape on first use and saves the choice; a second backend in `cached` mode
/// runs the same kernel and gives the same bits; `off` never reads the file.
#[test]
fn autotune_on_caches_and_cached_reproduces_bitwise() {
    let path = tmp_cache("on");
    let g = Gemm::nn(24, 136, 72).trans(false, true);
    let run = |be: &GpuBackend| {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let (la, lb, lc) = gemm_lens(&g);
        let a = be.upload(&random(&mut rng, la)).unwrap();
        let b = be.upload(&random(&mut rng, lb)).unwrap();
        let mut c = be.zeros(lc).unwrap();
        be.matmul(&g, &a, &b, &mut c).unwrap();
        be.read(&c).unwrap()
    };
    let first = backend();
    first.set_autotune_at(AutotuneMode::On, Some(path.clone()));
    let out1 = run(&first);
    let cache = TuneCache::load(&path);
    assert!(cache.warning.is_none(), "{:?}", cache.warning);
    let dev = crate::backend::gpu::autotune::DeviceKey::of(first.adapter());
    let entry = cache.cache.get(&dev, ShapeKey::of(&g)).expect("the shape was tuned and saved");
    let allowed = candidates(&g, &first.dev.ctx.limits);
    let choice = Candidate::parse(&entry.choice).expect("a known candidate");
    assert!(allowed.contains(&choice), "{choice:?}");
    assert_eq!(entry.timings.len(), allowed.len(), "every candidate timed: {:?}", entry.timings);
    assert!(entry.timings.iter().all(|t| t.ms > 0.0 && t.ms.is_finite()), "{:?}", entry.timings);
    let second = backend();
    second.set_autotune_at(AutotuneMode::Cached, Some(path.clone()));
    let out2 = run(&second);
    assert!(out1.iter().zip(&out2).all(|(x, y)| x.to_bits() == y.to_bits()));
    // The cached choice's launch is what ran: the same bits as running it directly.
    let direct = backend();
    let launch = choice.launch(&g).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (la, lb, lc) = gemm_lens(&g);
    let a = direct.upload(&random(&mut rng, la)).unwrap();
    let b = direct.upload(&random(&mut rng, lb)).unwrap();
    let c = direct.zeros(lc).unwrap();
    record(&direct.dev, &launch, &g, &a.0, &b.0, &c.0).unwrap();
    let out3 = direct.read(&c).unwrap();
    assert!(out1.iter().zip(&out3).all(|(x, y)| x.to_bits() == y.to_bits()));
    // A corrupt file in `off` mode is never read; in `cached` mode it warns and falls back.
    std::fs::write(&path, "{ not json").unwrap();
    let off = backend();
    off.set_autotune_at(AutotuneMode::Off, Some(path.clone()));
    assert!(off.autotune_cache().is_empty());
    let cached = backend();
    cached.set_autotune_at(AutotuneMode::Cached, Some(path.clone()));
    let out4 = run(&cached);
    let plain = run(&off);
    assert!(out4.iter().zip(&plain).all(|(x, y)| x.to_bits() == y.to_bits()), "fallback is choose");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// Every product kernel the rule or the autotuner can run (naive, tiled, skinny, the tile
/// family; split-k and not; vec4 and scalar entry points) gives the same bits compiled as a
/// trusted module (the default) and with wgpu's shader runtime checks (src/backend/gpu/pipelines.rs).
#[test]
fn every_kernel_gives_the_same_bits_with_and_without_shader_checks() {
    let be = backend();
    let mut shapes = every_transpose(&[(7, 65, 63), (63, 65, 17), (132, 68, 260)]);
    shapes.extend(every_transpose(&[(64, 63, 4099)]).into_iter().step_by(3));
    let mut runs = Vec::new();
    for (i, (g, _)) in shapes.iter().enumerate() {
        // The naive kernel (no tiles, one output per invocation) on the short products only.
        let mut launches: Vec<_> =
            (g.k < 1000).then(|| launch_of(MatmulVariant::Naive, g)).into_iter().collect();
        launches.extend(candidates(g, &be.dev.ctx.limits).into_iter().filter_map(|c| c.launch(g)));
        runs.extend(launches.into_iter().map(|l| (i, *g, l)));
    }
    be.set_shader_checks(false);
    let trusted: Vec<_> = runs.iter().map(|(i, g, l)| product(&be, l, g, 90 + *i as u64)).collect();
    be.set_shader_checks(true);
    for ((i, g, l), want) in runs.iter().zip(&trusted) {
        let got = product(&be, l, g, 90 + *i as u64);
        let same = got.iter().zip(want).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{} on {g:?}: other bits with wgpu's shader checks", l.kernel.name);
    }
    assert!(runs.len() > 100, "{} products", runs.len());
}

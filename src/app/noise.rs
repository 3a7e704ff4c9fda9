//! `batchscope noise`: run the gradient-noise experiment and write its CSV, summary, plot and
//! terminal table.

use anyhow::bail;

use super::output::write_config;
use super::{with_backend, BackendChoice, BackendTask, RunArgs};
use crate::backend::BackendKind;
use crate::config::Config;
use crate::noise::{measure_with, NoiseArgs, NoiseSummary};
use crate::profile::Profilable;
use crate::report::csv::{write_csv, Cell};
use crate::report::plot::{line_plot, PlotSpec, Series};
use crate::report::rundir::create_run_dir;
use crate::report::table::Table;
use crate::schedule::admit;
use crate::schedule::host_memory::{check_host, host_limit};
use crate::schedule::run_memory::{check_cpu_step, cpu_step_bytes, host_bytes, param_vectors_bytes};
use crate::train::checkpoint;

/// The most minibatches drawn per size (10⁵ took 3.9 s on a tiny model; 10⁶ bounds the
/// standard error's own noise far below anything the plots show).
pub const MAX_DRAWS: usize = 1_000_000;

/// `batchscope noise`.
pub fn noise(args: &RunArgs, backend: BackendChoice, noise: &NoiseArgs) -> anyhow::Result<()> {
    let cfg = admit::load_config(args.config.as_deref(), &args.set)?;
    super::backend::refuse_f16(&cfg, "noise", "measures gradient noise of the f32 loss")?;
    super::output::notice_weight_decay(&cfg, "the noise figures");
    if noise.draws < 2 {
        bail!("--draws must be at least 2 (got {})", noise.draws);
    }
    if noise.draws > MAX_DRAWS {
        bail!("--draws {} is past {MAX_DRAWS} (each draw is a gradient per batch size)", noise.draws);
    }
    if noise.max_n < 2 {
        // One size gives no slope (it was NaN in the summary).
        bail!(
            "--max-n must be at least 2 (got {}): the slope is fit over sizes 1, 2, 4, …",
            noise.max_n
        );
    }
    if let Some(p) = &noise.checkpoint {
        checkpoint::load(p)?;
    }
    let (s, dir) = with_backend(backend, args.adapter.as_deref(), Noise { cfg: &cfg, noise, args })?;
    write_outputs(&s, &dir)?;
    if noise.max_n > s.examples {
        // The sizes stop at the data (as `curvature --examples` past it is an error, this one
        // only bounds a range, so it is said rather than refused).
        eprintln!(
            "notice: --max-n {} is past the {} training examples: minibatch sizes stop at {}",
            noise.max_n,
            s.examples,
            1usize << s.examples.max(1).ilog2()
        );
    }
    print_summary(&s, args, backend);
    println!("wrote: {}", dir.display());
    Ok(())
}

/// The run directory and the measurement.
struct Noise<'a> {
    cfg: &'a Config,
    noise: &'a NoiseArgs,
    args: &'a RunArgs,
}

impl BackendTask for Noise<'_> {
    fn autotune(&self) -> crate::backend::gpu::AutotuneMode {
        self.cfg.gpu.autotune
    }

    type Output = (NoiseSummary, std::path::PathBuf);

    fn run<B: Profilable>(self, b: &B) -> anyhow::Result<Self::Output> {
        // The probe's buffers at its largest minibatch (or the full gradient's chunks of 1024)
        // where the backend's buffers are host memory, and its flat vectors on the host
        // whatever the backend: G, a minibatch's g_n and g_n − G in f64, the f32 read of each
        // gradient, and with curvature the HVP's vectors. Checked before the run directory or
        // the data.
        let n_train = usize::try_from(self.cfg.data.n_train).unwrap_or(usize::MAX);
        let cap = self.noise.max_n.min(n_train).max(1);
        let largest = (1usize << cap.ilog2()).max(n_train.min(1024));
        if b.kind() == BackendKind::Cpu {
            check_cpu_step(self.cfg, largest)?;
        }
        let curvature = u64::from(self.noise.curvature);
        let flat = param_vectors_bytes(self.cfg, 1 + 6 * curvature, 3)?;
        let (what, base) = match b.buffers_in_host_memory() {
            true => cpu_step_bytes(self.cfg, largest, "the backend")?,
            false => host_bytes(self.cfg)?,
        };
        let what = format!("{what}, with the probe's flat gradients ({flat} bytes)");
        check_host(&what, base.saturating_add(flat), host_limit())?;
        let dir = create_run_dir(self.args.out.as_deref(), "noise")?;
        write_config(&dir, &self.cfg.to_toml())?;
        Ok((measure_with(b, self.cfg, self.noise, self.args.progress)?, dir))
    }
}

/// noise.csv, summary.json and noise.svg.
fn write_outputs(s: &NoiseSummary, dir: &std::path::Path) -> anyhow::Result<()> {
    let header = [
        "n",
        "draws",
        "mean_sq_error",
        "sd_sq_error",
        "std_error",
        "mean_sq_norm",
        "relative_cost",
        "error_reduction",
    ];
    let rows: Vec<Vec<Cell>> = s
        .rows
        .iter()
        .map(|r| {
            let nums = [r.mean_sq_error, r.sd_sq_error, r.std_error, r.mean_sq_norm, r.relative_cost];
            let reduction = r.error_reduction.map_or(Cell::Empty, Cell::Num);
            [Cell::from(r.n), Cell::from(r.draws)]
                .into_iter()
                .chain(nums.map(Cell::Num))
                .chain([reduction])
                .collect()
        })
        .collect();
    write_csv(&dir.join("noise.csv"), &header, &rows)?;
    crate::report::jsonl::write_pretty(&dir.join("summary.json"), s)?;
    let theory: Vec<(f64, f64)> =
        s.rows.iter().map(|r| (r.n as f64, s.trace_sigma / r.n as f64)).collect();
    line_plot(
        &dir.join("noise.svg"),
        &PlotSpec::new("Minibatch gradient error vs batch size", "minibatch size n", "E‖g_n − G‖²")
            .log2_x()
            .log_y(),
        &[
            Series {
                name: "measured".into(),
                points: s.rows.iter().map(|r| (r.n as f64, r.mean_sq_error)).collect(),
            },
            Series { name: "tr Σ / n".into(), points: theory },
        ],
    )?;
    Ok(())
}

fn print_summary(s: &NoiseSummary, args: &RunArgs, backend: BackendChoice) {
    let mut t = Table::new(["n", "E‖g_n−G‖²", "std error", "cost ×", "error ÷"]);
    for r in &s.rows {
        t.row([
            r.n.to_string(),
            format!("{:.4e}", r.mean_sq_error),
            format!("{:.4e}", r.std_error),
            format!("{:.0}", r.relative_cost),
            r.error_reduction.map_or("—".to_string(), |v| format!("{v:.2}")),
        ]);
    }
    println!(
        "{} — {} examples (duplicates {}), {} parameters",
        s.device, s.examples, s.duplicates, s.params
    );
    print!("{}", t.render());
    println!(
        "slope of E‖g_n−G‖² vs n (log-log): {:.3} (theory −1: standard error σ/√n)",
        s.variance_slope
    );
    println!(
        "|G|² = {:.4e}, tr Σ = {:.4e} ± {:.1e}, B_simple = tr Σ/|G|² = {:.1} ± {:.1} (standard errors over the draws)",
        s.full_grad_norm_sq, s.trace_sigma, s.trace_sigma_se, s.b_simple, s.b_simple_se
    );
    if let Some(bs) = s.b_simple_two_batch {
        let se = s.b_simple_two_batch_se.map_or(String::new(), |se| format!(" ± {se:.1}"));
        println!(
            "B_simple from the unbiased two-batch estimators (smallest and largest n): {bs:.1}{se}"
        );
    }
    if let (Some(ghg), Some(ths), Some(bn), Some(em)) = (s.g_h_g, s.trace_h_sigma, s.b_noise, s.eps_max)
    {
        let se = s.b_noise_se.map_or(String::new(), |se| format!(" ± {se:.1}"));
        println!("GᵀHG = {ghg:.4e}, tr(HΣ) = {ths:.4e}, B_noise = tr(HΣ)/GᵀHG = {bn:.1}{se}, ε_max = GᵀG/GᵀHG = {em:.4}");
        let policy = format!("time_to_target:{bn:.1}");
        println!("time_to_target policy: {}", sweep_command(args, backend, &policy));
    }
}

/// The `batchscope sweep` that applies `policy` to the model and data this run measured: its
/// `--config`, `--set`s (but a `sweep.policy`, which `--policy` replaces), `--backend` and
/// `--adapter`, each shell-quoted where needed.
fn sweep_command(args: &RunArgs, backend: BackendChoice, policy: &str) -> String {
    let mut words = vec!["batchscope".to_string(), "sweep".to_string()];
    if let Some(c) = &args.config {
        words.extend(["--config".to_string(), shell_word(&c.to_string_lossy())]);
    }
    let policy_key = |s: &&String| s.split_once('=').is_some_and(|(k, _)| k.trim() == "sweep.policy");
    for s in args.set.iter().filter(|s| !policy_key(s)) {
        words.extend(["--set".to_string(), shell_word(s)]);
    }
    match backend {
        BackendChoice::Auto => {}
        BackendChoice::Gpu => words.extend(["--backend".into(), "gpu".into()]),
        BackendChoice::Cpu => words.extend(["--backend".into(), "cpu".into()]),
    }
    if let Some(a) = &args.adapter {
        words.extend(["--adapter".to_string(), shell_word(a)]);
    }
    words.extend(["--policy".to_string(), shell_word(policy)]);
    words.join(" ")
}

/// `s` as one POSIX shell word: as it is when every character is plain, else single-quoted
/// (a `'` inside written `'\''`).
fn shell_word(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:=,+@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_command_repeats_the_model_and_data() {
        let args = RunArgs {
            config: Some("my configs/q.toml".into()),
            set: vec![
                "model.hidden=[64]".into(),
                "data.n_train=512".into(),
                "sweep.policy=\"knee\"".into(),
                "data.name=\"it's\"".into(),
            ],
            ..RunArgs::default()
        };
        assert_eq!(
            sweep_command(&args, BackendChoice::Cpu, "time_to_target:7.5"),
            "batchscope sweep --config 'my configs/q.toml' --set 'model.hidden=[64]' \
             --set data.n_train=512 --set 'data.name=\"it'\\''s\"' --backend cpu \
             --policy time_to_target:7.5"
        );
        let bare = sweep_command(&RunArgs::default(), BackendChoice::Auto, "time_to_target:2.0");
        assert_eq!(bare, "batchscope sweep --policy time_to_target:2.0");
    }
}

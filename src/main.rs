//! batchscope command line: parse, run one command, print `error: ...` and exit 2 on failure.

mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use batchscope::app;
use batchscope::noise::NoiseArgs;
use cli::{Cli, Command};

fn main() -> ExitCode {
    ignore_file_size_signal();
    quiet_device_select();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    if std::env::args_os().len() <= 1 {
        eprintln!("error: no command given; try 'batchscope --help'");
        return ExitCode::from(2);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        // A usage error is one line, as every other error is; help and version print as clap
        // writes them.
        Err(e) if e.use_stderr() => {
            eprintln!("{}", elide_long_words(&clap_one_line(&e.render().to_string())));
            return ExitCode::from(2);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    let result = rayon_threads_ok().and_then(|()| knobs_ok()).and_then(|()| run_on_pool(cli));
    batchscope::report::run_lock::release_locks();
    match result {
        Ok(()) => match batchscope::train::interrupt::stopped_by() {
            // Ctrl-C or SIGTERM stopped a training run, which saved itself: not a finished run.
            Some(signal) => {
                let run = batchscope::train::interrupt::stopped_run()
                    .map_or_else(|| "RUN".to_string(), |d| d.display().to_string());
                eprintln!("interrupted: the run stopped and saved itself; `batchscope train --resume {run}` goes on from there");
                ExitCode::from(batchscope::train::interrupt::exit_status(signal))
            }
            None => ExitCode::SUCCESS,
        },
        Err(e) => {
            // A run that failed before writing anything of its own leaves no directory.
            let discarded = batchscope::report::claimed::discard_unused();
            eprintln!("error: {}", elide_long_words(&one_line(&e)));
            // A "run directory:" line may have named it: say it is gone.
            for dir in discarded.iter().filter(|d| !d.exists()) {
                eprintln!(
                    "note: removed {}, which the failed run had written nothing to",
                    dir.display()
                );
            }
            ExitCode::from(2)
        }
    }
}

/// Mesa's implicit Vulkan layer `VK_LAYER_MESA_device_select` (installed with Mesa's drivers,
/// lavapipe's among them) connects to the Wayland display at instance creation to find the
/// session's default GPU, and where no session exists (a server over SSH, a container, CI) the
/// Wayland library prints `error: XDG_RUNTIME_DIR is invalid or not set in the environment.`
/// twice on every command that looks for adapters, though nothing failed. batchscope picks
/// its adapters itself (`--adapter`, discrete first; the layer only reorders them), so it
/// turns the layer off for itself with Mesa's own switch, `NODEVICE_SELECT` (any value; left
/// as it is when already set). Called first in `main`, before any thread exists (setting the environment is not
/// thread-safe).
fn quiet_device_select() {
    if std::env::var_os("NODEVICE_SELECT").is_none() {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

/// clap's usage error (`error: ...`, then tips, a usage block and a pointer to `--help` on
/// lines of their own) as one line: the error, its tips and possible values in parentheses,
/// and the command's `--help`.
fn clap_one_line(rendered: &str) -> String {
    let mut head = String::new();
    let mut notes = Vec::new();
    for line in rendered.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            continue;
        }
        match head.is_empty() {
            true => head = line.to_string(),
            false => {
                let note = line.trim_start_matches("tip: ");
                notes.push(note.trim_start_matches('[').trim_end_matches(']').to_string())
            }
        }
    }
    if !head.starts_with("error:") {
        head = format!("error: {head}");
    }
    if !notes.is_empty() {
        head = format!("{head} ({})", notes.join("; "));
    }
    // The subcommand the arguments name, if any: its own --help lists its flags.
    let sub = std::env::args().nth(1).filter(|a| Cli::command().find_subcommand(a).is_some());
    let command = match sub {
        Some(sub) => format!("batchscope {sub}"),
        None => "batchscope".to_string(),
    };
    format!("{head}; try '{command} --help'")
}

/// The error and its causes joined by `: ` (as `{:#}` does), without repeating a cause that
/// its parent's message already ends with (`cannot read X: Is a directory` once, not twice).
fn one_line(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.ends_with(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    // One line whatever the messages hold (a parser's diagram, a library's multi-line text).
    out.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

/// Longest word (a run of characters without white space) an error line shows whole.
const MAX_WORD_CHARS: usize = 240;

/// `line` with the middle of every word past [`MAX_WORD_CHARS`] elided, its head and tail kept:
/// an error echoes the value, flag or path it refuses, and a 100 kB `--set` value or path made
/// a 100 kB error line.
fn elide_long_words(line: &str) -> String {
    let (head, tail) = (MAX_WORD_CHARS / 2, MAX_WORD_CHARS / 4);
    let mut out = String::with_capacity(line.len().min(4096));
    let mut rest = line;
    while !rest.is_empty() {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, after) = rest.split_at(end);
        let n = word.chars().count();
        if n > MAX_WORD_CHARS {
            let first: String = word.chars().take(head).collect();
            let last: String = word.chars().skip(n - tail).collect();
            out.push_str(&format!("{first}…[{} characters elided]…{last}", n - head - tail));
        } else {
            out.push_str(word);
        }
        let spaces = after.find(|c: char| !c.is_whitespace()).unwrap_or(after.len());
        out.push_str(&after[..spaces]);
        rest = &after[spaces..];
    }
    out
}

/// The most CPU-backend threads per core: past it rayon's workers outnumber the cores so far
/// that they stall each other (a 1-epoch quickstart took 1.6 s at 2 threads on 2 cores, 3.0 s
/// at 128, 6.9 s at 256 and over 60 s at 1024).
const MAX_THREADS_PER_CORE: usize = 32;

/// `RAYON_NUM_THREADS` past [`MAX_THREADS_PER_CORE`] per core is refused: the run would not
/// end in any useful time. Other values are rayon's to read (it ignores what is no number).
fn rayon_threads_ok() -> anyhow::Result<()> {
    let Some(Ok(n)) = std::env::var("RAYON_NUM_THREADS").ok().map(|v| v.trim().parse::<usize>()) else {
        return Ok(());
    };
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let max = cores.saturating_mul(MAX_THREADS_PER_CORE);
    if n > max {
        anyhow::bail!(
            "RAYON_NUM_THREADS={n}: more than {MAX_THREADS_PER_CORE} threads per core stalls the CPU backend ({cores} cores here: give at most {max}, or unset it for one per core)"
        );
    }
    Ok(())
}

/// Every `BATCHSCOPE_*` variable known and well-formed (`backend::knobs`): a misspelled A/B
/// switch used to be ignored, and the run timed the default. The set ones are named on stderr,
/// so a log says what it measured.
fn knobs_ok() -> anyhow::Result<()> {
    batchscope::backend::knobs::check_environment()?;
    let set = batchscope::backend::knobs::set_knobs();
    if !set.is_empty() {
        let list: Vec<String> = set.iter().map(|(k, v)| format!("{k}={v}")).collect();
        eprintln!("environment: {}", list.join(" "));
    }
    Ok(())
}

/// Stack of rayon's workers, one of which runs the command: the main thread's usual 8 MiB
/// (configs are parsed there, nesting and all), not rayon's default 2 MiB.
const WORKER_STACK_BYTES: usize = 8 << 20;

/// Runs the command on a worker of rayon's pool. The CPU backend splits every large kernel over
/// that pool; called from a worker, a split starts at once and the caller works on it, where from
/// the main thread every kernel was handed to the pool and the main thread put to sleep until a
/// worker woke it (a futex round trip per kernel: 40 % of the CPU time of a small model's step).
/// `RAYON_NUM_THREADS` sizes the pool as before.
fn run_on_pool(cli: Cli) -> anyhow::Result<()> {
    match rayon::ThreadPoolBuilder::new().stack_size(WORKER_STACK_BYTES).build_global() {
        // The error's text is made on the worker: a config error names the `--set` that gave a
        // value from what the thread that parsed the config recorded (`config::source_map`).
        Ok(()) => rayon::scope(|_| run(cli).map_err(|e| anyhow::anyhow!(one_line(&e)))),
        // The pool exists already (nothing here builds it first): run where we are.
        Err(_) => run(cli),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    cli.command.flag_and_set_agree().map_err(anyhow::Error::msg)?;
    if let Some(conflict) =
        cli.command.common().and_then(|(_, c)| batchscope::config::conflicting_sets(&c.set))
    {
        anyhow::bail!(conflict);
    }
    let precisions = match cli.command.common() {
        Some((name, common)) => {
            common.precisions(name, name == "sweep").map_err(anyhow::Error::msg)?.to_vec()
        }
        None => Vec::new(),
    };
    match cli.command {
        Command::Devices { json } => app::devices::devices(json),
        Command::Train { on, init, resume, workers, mpi: true } => {
            app::mpi::train(&on.run_args(), on.backend(), init, resume, workers)
        }
        Command::Train { on, init, resume, workers, mpi: false } => {
            app::mpi::refuse_under_mpirun()?;
            app::train::train(&on.run_args(), on.backend(), init, resume, workers)
        }
        Command::Gemm { sizes, shapes, layouts, precision, peers, adapter, out, ceilings } => {
            app::gemm::gemm(&app::gemm::GemmArgs {
                sizes,
                shapes,
                layouts,
                precisions: precision,
                peers,
                adapter,
                out,
                ceilings,
            })
        }
        Command::Tune { common, batch_sizes } => app::tune::tune(&common.run_args(), &batch_sizes),
        Command::Profile { on, batch } => app::profile::profile(&on.run_args(), on.backend(), &batch),
        Command::Sweep { on, min_batch, max_batch, policy, workers } => app::sweep::sweep(
            &on.run_args(),
            on.backend(),
            min_batch,
            max_batch,
            policy.as_deref(),
            &workers,
            &precisions,
        ),
        Command::Noise { on, checkpoint, max_n, draws, seed, no_curvature } => {
            let noise = NoiseArgs { checkpoint, max_n, draws, seed, curvature: !no_curvature };
            app::noise::noise(&on.run_args(), on.backend(), &noise)
        }
        Command::TimeToTarget { on } => {
            app::time_to_target::time_to_target(&on.run_args(), on.backend())
        }
        Command::Overlay { runs, field, labels, out, log_y } => {
            app::overlay::overlay(&runs, &field, &labels, &out, log_y)
        }
        Command::Compare { common, min_batch, max_batch } => {
            app::compare::compare(&common.run_args(), min_batch, max_batch)
        }
        Command::Curvature { on, args } => {
            app::curvature::curvature(&on.run_args(), on.backend(), &args.options(!on.common.quiet))
        }
        Command::Rnn { on } => {
            // `--precision f32` is what rnn runs (checked above); its config has no
            // model.precision to set.
            let mut args = on.run_args();
            args.set.retain(|s| !(on.common.precision.len() == 1 && *s == "model.precision=\"f32\""));
            app::rnn::rnn(&args, on.backend())
        }
        Command::Depth { on } => app::depth::depth(&on.run_args(), on.backend()),
        Command::Landscape { on, checkpoint } => {
            app::landscape::landscape(&on.run_args(), on.backend(), checkpoint)
        }
    }
}

/// A write past `ulimit -f` fails with EFBIG ("File too large"), reported as any other write
/// error, instead of SIGXFSZ killing the process with no word (exit 153).
fn ignore_file_size_signal() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_IGN before any thread starts installs no
    // handler and touches no memory of this process.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

//! batchscope command line: parse, run one command, print `error: ...` and exit 2 on failure.

mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use batchscope::app;
use batchscope::noise::NoiseArgs;
use cli::{Cli, Command};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    if std::env::args_os().len() <= 1 {
        eprintln!("{}", Cli::command().render_usage());
        eprintln!("error: no command given; try 'batchscope --help'");
        return ExitCode::from(2);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Devices { json } => app::devices::devices(json),
        Command::Train { common, backend, init, resume, workers } => {
            app::train::train(&common.run_args(), backend.into(), init, resume, workers)
        }
        Command::Profile { common, backend, batch } => {
            app::profile::profile(&common.run_args(), backend.into(), &batch)
        }
        Command::Sweep { common, backend, min_batch, max_batch, policy, workers } => app::sweep::sweep(
            &common.run_args(),
            backend.into(),
            min_batch,
            max_batch,
            policy.as_deref(),
            &workers,
        ),
        Command::Noise { common, backend, checkpoint, max_n, draws, seed, no_curvature } => {
            let noise = NoiseArgs { checkpoint, max_n, draws, seed, curvature: !no_curvature };
            app::noise::noise(&common.run_args(), backend.into(), &noise)
        }
        Command::TimeToTarget { common, backend } => {
            app::time_to_target::time_to_target(&common.run_args(), backend.into())
        }
        Command::Overlay { runs, field, labels, out, log_y } => {
            app::overlay::overlay(&runs, &field, &labels, &out, log_y)
        }
        Command::Compare { common, min_batch, max_batch } => {
            app::compare::compare(&common.run_args(), min_batch, max_batch)
        }
        Command::Curvature { common, backend, args } => {
            app::curvature::curvature(&common.run_args(), backend.into(), &args.options(!common.quiet))
        }
        Command::Rnn { common, backend } => app::rnn::rnn(&common.run_args(), backend.into()),
        Command::Depth { common, backend } => app::depth::depth(&common.run_args(), backend.into()),
        Command::Landscape { common, backend, checkpoint } => {
            app::landscape::landscape(&common.run_args(), backend.into(), checkpoint)
        }
    }
}

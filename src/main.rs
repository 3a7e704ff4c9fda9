//! batchscope command line: parse, run one command, print `error: ...` and exit 2 on failure.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use batchscope::backend::gpu::list_adapters;
use batchscope::commands;
use cli::{Cli, Command};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
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
        Command::Devices { json } => devices(json),
        Command::Train { common, backend, init, resume } => {
            commands::train(&common.run_args(), backend.into(), init, resume)
        }
        Command::Sweep { common, backend, min_batch, max_batch, policy } => {
            commands::sweep(&common.run_args(), backend.into(), min_batch, max_batch, policy.as_deref())
        }
        Command::Profile { common, backend, batch } => {
            batchscope::app::profile::profile(&common.run_args(), backend.into(), &batch)
        }
        Command::Noise { common, backend, checkpoint, max_n, draws, seed, no_curvature } => {
            batchscope::noise::command::run(
                &common.run_args(),
                backend.into(),
                &batchscope::noise::command::NoiseArgs {
                    checkpoint,
                    max_n,
                    draws,
                    seed,
                    curvature: !no_curvature,
                },
            )
        }
        Command::TimeToTarget { common, backend } => {
            batchscope::noise::ttt::run(&common.run_args(), backend.into())
        }
        Command::Overlay { runs, field, labels, out, log_y } => {
            commands::overlay(&runs, &field, &labels, &out, log_y)
        }
        Command::Compare { common, min_batch, max_batch } => {
            commands::compare(&common.run_args(), min_batch, max_batch)
        }
        Command::Curvature { common, backend, args } => batchscope::curvature::command::curvature(
            &common.run_args(),
            backend.into(),
            &args.options(!common.quiet),
        ),
        Command::Rnn { common, backend } => {
            batchscope::experiments::rnn::rnn(&common.run_args(), backend.into())
        }
        Command::Depth { common, backend } => {
            batchscope::experiments::depth::depth(&common.run_args(), backend.into())
        }
        Command::Landscape { common, backend, checkpoint } => {
            batchscope::landscape::command::landscape(&common.run_args(), backend.into(), checkpoint)
        }
    }
}

fn devices(json: bool) -> anyhow::Result<()> {
    let adapters = list_adapters();
    if json {
        println!("{}", serde_json::to_string_pretty(&adapters)?);
        return Ok(());
    }
    if adapters.is_empty() {
        println!(
            "no GPU adapter found. Install a Vulkan driver (Debian/Ubuntu: apt-get install -y mesa-vulkan-drivers) or use --backend cpu."
        );
        return Ok(());
    }
    for a in &adapters {
        let l = &a.limits;
        println!("[{}] {}  ({}, {})", a.index, a.name, a.device_type, a.backend);
        println!("    driver: {} {}", a.driver, a.driver_info);
        println!(
            "    max_buffer_size:                 {:>14} bytes ({:.1} MiB)",
            l.max_buffer_size,
            l.max_buffer_size as f64 / 1048576.0
        );
        println!(
            "    max_storage_buffer_binding_size: {:>14} bytes ({:.1} MiB)",
            l.max_storage_buffer_binding_size,
            l.max_storage_buffer_binding_size as f64 / 1048576.0
        );
        println!(
            "    max_compute_workgroup_storage:   {:>14} bytes",
            l.max_compute_workgroup_storage_size
        );
        println!("    max_invocations_per_workgroup:   {:>14}", l.max_compute_invocations_per_workgroup);
        println!("    max_workgroups_per_dimension:    {:>14}", l.max_compute_workgroups_per_dimension);
        println!("    features: {}", a.features.join(", "));
    }
    Ok(())
}

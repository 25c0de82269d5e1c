//! The `cadloop` binary: parse, set up logging, run the command, map the
//! outcome to an exit status ([`commands::ExitStatus`]: 0 ok, 1 the generated
//! or given code failed, 2 usage or environment error, 130/143 stopped by
//! SIGINT/SIGTERM).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cadloop::cli::{Cli, Command, GlobalArgs};
use cadloop::commands::{self, ExitStatus};
use cadloop::freecad;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.global);
    if let Command::Worker = cli.command {
        return freecad::serve();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Generate(args) => commands::generate::generate(&cli.global, args).await,
            Command::Refine(args) => commands::refine::refine(&cli.global, args).await,
            Command::Tweak(args) => commands::tweak::tweak(&cli.global, args).await,
            Command::Serve(args) => commands::serve::serve(&cli.global, args).await,
            Command::Mcp(args) => commands::mcp::mcp(&cli.global, args).await,
            Command::Bench(args) => commands::bench::bench(&cli.global, args).await,
            Command::Batch(args) => commands::batch::batch(&cli.global, args).await,
            Command::Exec(args) => commands::exec::exec(&cli.global, args).await,
            Command::Render(args) => commands::render::render(&cli.global, args).await,
            Command::CaptionsDataset(args) => {
                commands::captions_dataset::captions_dataset(&cli.global, args).await
            }
            Command::Caption(args) => commands::caption::caption(&cli.global, args),
            Command::ExportData(args) => commands::export_data::export_data(args),
            Command::Doctor(args) => commands::doctor::run(&cli.global, args).await,
            Command::Worker => unreachable!("served above"),
        }
    });
    match result {
        Ok(status) => status.into(),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitStatus::Error.into()
        }
    }
}

fn init_tracing(global: &GlobalArgs) {
    let default = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| cadloop::progress::LogWriter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

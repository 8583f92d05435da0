//! The `erpsync` binary: parses the command line, sets up logging, runs the command.

#![forbid(unsafe_code)]

use clap::Parser;
use erpsync::cli::{Cli, Task};
use erpsync::colour::{self, Stream};
use erpsync::config::LogFormat;
use tracing_subscriber::EnvFilter;

// Ingestion allocates many small values (record fields, JSON); mimalloc handles that
// pattern markedly faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,h2=warn,tower=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour::enabled(Stream::Stderr))
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    let done = match cli.task() {
        Ok(Task::Serve(config, crm_sink)) => erpsync::app::serve(&config, crm_sink)
            .await
            .map_err(anyhow::Error::from),
        Ok(Task::Command(cli)) => cli.run().await,
        Err(e) => Err(e),
    };
    match done {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

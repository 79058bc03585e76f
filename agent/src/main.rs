//! `vigil-agent`: the host daemon's command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use vigil_agent::config::AgentConfig;

#[derive(Parser)]
#[command(
    name = "vigil-agent",
    version,
    about = "Tails log files, scrapes Prometheus endpoints, reads host metrics and ships them to Vigil"
)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, short, default_value = "/etc/vigil/agent.toml")]
    config: PathBuf,
    /// Validates the configuration and exits.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match AgentConfig::load(&cli.config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("vigil-agent: {error}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        println!(
            "configuration is valid: {} file source(s), {} scrape target(s), host metrics {}, backend {}, data in {}",
            config.sources.len(),
            config.scrape.len(),
            if config.host_metrics.enabled { "on" } else { "off" },
            config.backend.url,
            config.data_dir.display()
        );
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("VIGIL_AGENT_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result: anyhow::Result<()> = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                () = async { match terminate.as_mut() { Some(signal) => { signal.recv().await; } None => std::future::pending().await } } => {},
            }
            signal.cancel();
        });
        vigil_agent::run(config, shutdown).await?;
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vigil-agent: {error:#}");
            ExitCode::FAILURE
        }
    }
}

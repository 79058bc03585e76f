//! `vigil`: the server, and the administrative commands that act on its stores.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vigil_backend::auth::{Scope, create_token};
use vigil_backend::config::Config;
use vigil_backend::startup::Application;
use vigil_backend::store::Database;
use vigil_backend::telemetry;

#[derive(Parser)]
#[command(name = "vigil", version, about = "Vigil: logs, metrics, alerts and rollouts in one place")]
struct Cli {
    /// TOML configuration file; `VIGIL_SECTION__KEY` environment variables override it.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the server.
    Serve,
    /// Manages API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Validates the configuration and prints it, secrets redacted.
    CheckConfig,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Creates a token and prints it once; only its hash is stored.
    Create {
        #[arg(long)]
        name: String,
        /// ingest, read or admin
        #[arg(long)]
        scope: Scope,
    },
    /// Lists tokens (never their values).
    List,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("vigil: {}", vigil_backend::error::error_chain(&error));
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vigil: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            telemetry::init(&config.telemetry_filter, config.telemetry_format);
            let application = Application::build(config).await.context("cannot start")?;
            application.run_until_stopped(shutdown_signal()).await.context("server failed")?;
        }
        Command::CheckConfig => println!("{config:#?}"),
        Command::Token { command } => {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
            let database = Database::connect(config.database_url.expose(), 1).await?;
            match command {
                TokenCommand::Create { name, scope } => {
                    let (token, _) = create_token(&database, &name, scope).await?;
                    eprintln!("created {} token {name:?}; it is shown once, store it now:", scope.as_str());
                    println!("{token}");
                }
                TokenCommand::List => {
                    for token in database.tokens().await? {
                        let last_used = token.last_used_at_millis.map_or_else(|| "never".to_owned(), format_millis);
                        println!(
                            "{}\t{}\tcreated {}\tlast used {last_used}",
                            token.name,
                            token.scope,
                            format_millis(token.created_at_millis)
                        );
                    }
                }
            }
            database.close().await;
        }
    }
    Ok(())
}

fn format_millis(millis: i64) -> String {
    vigil_proto::Timestamp::from_unix_nanos(millis.saturating_mul(1_000_000))
        .map_or_else(|_| millis.to_string(), |at| at.to_rfc3339())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}

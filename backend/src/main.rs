//! `vigil`: the server, and the administrative commands that act on its stores.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vigil_backend::accounts;
use vigil_backend::audit::{self, Action, Actor};
use vigil_backend::auth::Auth;
use vigil_backend::config::Config;
use vigil_backend::startup::Application;
use vigil_backend::store::Database;
use vigil_backend::telemetry;
use vigil_proto::auth::{AuditOutcome, NewToken, Scope};

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
    /// Manages users (for recovery; the UI and API are the usual way).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Validates the configuration and prints it, secrets redacted.
    CheckConfig,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Creates a service token and prints it once; only its hash is stored.
    Create {
        #[arg(long)]
        name: String,
        /// ingest, read, deploy or admin
        #[arg(long)]
        scope: Scope,
        /// Days until it stops working; never when absent.
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Lists tokens (never their values).
    List,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Sets a user's password, read from standard input, and ends their sessions.
    SetPassword {
        #[arg(long)]
        username: String,
    },
    /// Lists users.
    List,
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("vigil: {}", vigil_backend::telemetry::error_chain(&error));
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

/// glibc gives each thread that allocates an arena of its own (up to eight per core), and
/// memory freed in one is not reused by another: under an ingest flood, where the blocking
/// pool's threads take turns decoding large bodies, that doubled the heap (1.26 GiB against
/// 0.66 GiB with two arenas, measured with Fluent Bit's flood in the README). Two arenas suit
/// a server whose work is in a few threads at a time; `MALLOC_ARENA_MAX` still overrides it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: `mallopt` only sets a parameter of the allocator; it runs before any other
        // thread exists, and the allocator accepts the parameter at any time.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            telemetry::init(&config.telemetry_filter, config.telemetry_format);
            let application = Application::build(config).await.context("cannot start")?;
            application.run_until_stopped(shutdown_signal()).await.context("server failed")?;
        }
        Command::CheckConfig => println!("{config:#?}"),
        Command::Token { command } => {
            let database = open_database(&config).await?;
            let auth = Auth::new(database.clone(), config.auth.clone(), false)?;
            match command {
                TokenCommand::Create { name, scope, expires_in_days } => {
                    let request = NewToken { name: name.clone(), scope: Some(scope), expires_in_days };
                    let created =
                        accounts::create_token(&auth, &database, &Actor::command_line(), &request, None).await?;
                    let token = created.token;
                    eprintln!("created {} token {name:?}; it is shown once, store it now:", scope.as_str());
                    println!("{token}");
                }
                TokenCommand::List => {
                    for token in database.tokens(None).await? {
                        let last_used = token.last_used_at_millis.map_or_else(|| "never".to_owned(), format_millis);
                        let what = token
                            .scope
                            .clone()
                            .or_else(|| token.owner.as_ref().map(|owner| format!("personal of {owner}")));
                        let state = if token.revoked_at_millis.is_some() { "\trevoked" } else { "" };
                        println!(
                            "{}\t{}\t{}\tcreated {}\tlast used {last_used}{state}",
                            token.id,
                            token.name,
                            what.unwrap_or_default(),
                            format_millis(token.created_at_millis)
                        );
                    }
                }
            }
            database.close().await;
        }
        Command::User { command } => {
            let database = open_database(&config).await?;
            let auth = Auth::new(database.clone(), config.auth.clone(), false)?;
            match command {
                UserCommand::SetPassword { username } => {
                    let user = database
                        .user_by_username(&username)
                        .await?
                        .with_context(|| format!("no user is named {username:?}"))?;
                    let mut password = String::new();
                    std::io::stdin()
                        .read_line(&mut password)
                        .context("cannot read the password from standard input")?;
                    let password = password.trim_end_matches(['\r', '\n']);
                    auth.set_password(user.id, password).await?;
                    audit::record(
                        &database,
                        &Actor::command_line(),
                        Action::UserUpdate,
                        &username,
                        AuditOutcome::Success,
                        "password reset",
                    )
                    .await;
                    eprintln!("password of {username:?} set; their sessions have ended");
                }
                UserCommand::List => {
                    for user in database.users().await? {
                        let state = if user.disabled { "\tdisabled" } else { "" };
                        println!("{}\t{}\t{}{state}", user.id, user.username, user.role);
                    }
                }
            }
            database.close().await;
        }
    }
    Ok(())
}

async fn open_database(config: &Config) -> anyhow::Result<Database> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    Ok(Database::connect(config.database_url.expose(), 1).await?)
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

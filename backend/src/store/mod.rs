//! The SQL store of control-plane state, through sqlx: SQLite (the embedded default) or
//! PostgreSQL, chosen by the URL. One query text serves both dialects: placeholders are `$1`,
//! timestamps are Unix milliseconds in `BIGINT`, and each dialect has its own migrations
//! (`migrations/sqlite`, `migrations/postgres`), compiled into the binary.

mod agent_deploys;
mod agents;
mod alerts;
mod audit;
mod dashboards;
mod integrations;
mod rollouts;
mod sessions;
mod tokens;
mod users;

pub use agent_deploys::{DeployOrderEnd, DeployOrderRow, NewDeployOrder};
pub use agents::{AgentRow, Heartbeat};
pub use alerts::{
    AlertEventRow, AlertInstanceRow, AlertRuleRow, DeliveryGroup, DeliveryRow, LeaseRow, NewDelivery, SilenceRow,
};
pub use audit::{AuditFilter, AuditRow, NewAuditEvent};
pub use dashboards::{DashboardRow, UpdateOutcome};
pub use integrations::IntegrationRow;
pub use rollouts::{
    EnvironmentRow, GateRow, NewRollout, RolloutChange, RolloutEventRow, RolloutFilter, RolloutRow, ServiceRow,
    TERMINAL_STATES, Versions,
};
pub use sessions::{NewSession, SessionRow};
pub use tokens::{NewTokenRow, TokenRow};
pub use users::{NewUserRow, UserRow};

use std::borrow::Cow;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    #[error("cannot migrate the database")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("database query failed")]
    Query(#[from] sqlx::Error),
}

#[derive(Clone)]
pub struct Database {
    pool: AnyPool,
    dialect: Dialect,
}

macro_rules! migrations {
    ($dialect:literal: $($version:literal $name:literal),* $(,)?) => {
        vec![$(Migration::new(
            $version,
            Cow::Borrowed($name),
            MigrationType::Simple,
            Cow::Borrowed(include_str!(concat!("../../../migrations/", $dialect, "/", $name, ".sql"))),
            false,
        )),*]
    };
}

fn migrator(dialect: Dialect) -> Migrator {
    let migrations = match dialect {
        Dialect::Sqlite => {
            migrations!("sqlite": 1 "0001_api_tokens", 2 "0002_users_sessions_audit", 3 "0003_dashboards", 4 "0004_agents", 5 "0005_agent_owner", 6 "0006_alerts", 7 "0007_alert_groups", 8 "0008_rollouts", 9 "0009_agent_deploys")
        }
        Dialect::Postgres => {
            migrations!("postgres": 1 "0001_api_tokens", 2 "0002_users_sessions_audit", 3 "0003_dashboards", 4 "0004_agents", 5 "0005_agent_owner", 6 "0006_alerts", 7 "0007_alert_groups", 8 "0008_rollouts", 9 "0009_agent_deploys")
        }
    };
    Migrator { migrations: Cow::Owned(migrations), ignore_missing: false, locking: true, no_tx: false }
}

impl Database {
    /// Connects a pool and brings the schema up to date. A SQLite file is created when missing.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") { Dialect::Sqlite } else { Dialect::Postgres };
        let url = match dialect {
            Dialect::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_owned(),
        };
        let sqlite_file = (dialect == Dialect::Sqlite).then(|| sqlite_file(&url)).flatten();
        if let Some(file) = &sqlite_file {
            create_private(file).map_err(|error| StoreError::Connect(sqlx::Error::Io(error)))?;
        }
        let options: AnyConnectOptions = url.parse().map_err(StoreError::Connect)?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        connection
                            .execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(StoreError::Connect)?;
        migrator(dialect).run(&pool).await?;
        if let Some(file) = &sqlite_file {
            // Files of earlier versions (and the write-ahead log SQLite made beside them) were
            // readable by every local user.
            for suffix in ["", "-wal", "-shm"] {
                let path = std::path::PathBuf::from(format!("{}{suffix}", file.display()));
                if path.exists() {
                    set_private(&path).map_err(|error| StoreError::Connect(sqlx::Error::Io(error)))?;
                }
            }
        }
        Ok(Self { pool, dialect })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// A round trip to the database, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Runs one statement outside the typed queries; tests use it to check what the schema
    /// itself refuses (such as changing the audit log).
    pub async fn execute_for_tests(&self, statement: &str) -> Result<(), StoreError> {
        sqlx::query(statement).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// The file of a SQLite URL (`sqlite://path?...` or `sqlite:path`), unless in memory.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// Creates an empty database file readable by its owner only (SQLite gives its `-wal` and
/// `-shm` files the same mode), unless it exists.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        result => result.map(drop),
    }
}

fn set_private(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database_error) if database_error.is_unique_violation())
}

/// A stored time (milliseconds since the epoch) as the wire's timestamp.
pub fn millis_to_timestamp(millis: i64) -> vigil_proto::Timestamp {
    use vigil_proto::Timestamp;
    Timestamp::from_unix_nanos(millis.saturating_mul(1_000_000))
        .unwrap_or_else(|_| Timestamp::from_unix_nanos(0).expect("the epoch is a timestamp"))
}

pub fn now_millis() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

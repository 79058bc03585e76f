//! Deploys for the agent rollout provider: every `deploy.poll_seconds` the agent asks the
//! backend for its host's deploy order (`GET /api/v1/agents/deploys?host=`), and runs the
//! command of its own `[deploy]` section for the order's version, then reports
//! (`POST /api/v1/agents/deploys/{id}`).
//!
//! The backend sends a service and a version, never a command: an order for another service,
//! or with a version the configured `version_pattern` does not match whole, is refused and
//! nothing runs. The command runs without a shell; the version reaches it as an argument
//! (`{version}`) and as `VIGIL_DEPLOY_VERSION`.
//!
//! An order runs at most once. The agent claims it first (a `running` report, refused when
//! the order was cancelled meanwhile), then writes its id to the ledger in `data_dir`
//! (`deploys.json`, flushed to disk) before the command starts, and the outcome after. An
//! order found in the ledger is never run again: an agent that stopped while the command ran
//! reports it failed on its next start, and one whose report was lost sends it again.
//!
//! Not here: which hosts deploy when (the backend's provider does batches and gates).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;
use vigil_proto::agents::{DeployOrder, DeployOrders, DeployReport, DeployStatus};
use vigil_proto::paths;

use crate::config::{AgentConfig, BackendConfig, DeployConfig};
use crate::error_chain::ErrorChain;

/// Orders the ledger remembers (the newest).
const LEDGER_ORDERS: usize = 1000;
/// Bytes of output kept while a command runs, and the lines of it reported.
const OUTPUT_BYTES: usize = 16 << 10;
const OUTPUT_LINES: usize = 20;
/// How long the output is read after the command exited (a child it left may hold the pipe).
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("cannot reach the backend")]
    Request(#[source] reqwest::Error),
    #[error("the backend answered {status}: {body}")]
    Refused { status: StatusCode, body: String },
    #[error("cannot read the deploy ledger {}", .path.display())]
    ReadLedger { path: PathBuf, source: std::io::Error },
    #[error("the deploy ledger {} is not one this agent reads", .path.display())]
    ParseLedger { path: PathBuf, source: serde_json::Error },
    #[error("cannot write the deploy ledger {}", .path.display())]
    WriteLedger { path: PathBuf, source: std::io::Error },
    #[error("the deploy ledger task failed")]
    LedgerTask(#[source] tokio::task::JoinError),
    #[error("deploy.version_pattern")]
    Pattern(#[source] regex::Error),
    #[error("backend.url is not a URL")]
    Url(#[source] url::ParseError),
}

/// What the ledger knows of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// The command was started (or was about to be).
    Started,
    /// Over, with the report sent (or to send again).
    Finished { report: DeployReport },
}

/// An order in the file: `{"id": 12, "report": null}` while started, with its report once over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    id: i64,
    report: Option<DeployReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "version")]
enum LedgerFile {
    #[serde(rename = "1")]
    V1 { orders: Vec<Record> },
}

/// The orders this host's agent started, by id, kept in `data_dir/deploys.json`.
struct Ledger {
    path: PathBuf,
}

impl Ledger {
    fn load(path: &Path) -> Result<BTreeMap<i64, Entry>, DeployError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(source) => return Err(DeployError::ReadLedger { path: path.to_owned(), source }),
        };
        let LedgerFile::V1 { orders } = serde_json::from_slice(&bytes)
            .map_err(|source| DeployError::ParseLedger { path: path.to_owned(), source })?;
        Ok(orders
            .into_iter()
            .map(|record| {
                let entry = match record.report {
                    None => Entry::Started,
                    Some(report) => Entry::Finished { report },
                };
                (record.id, entry)
            })
            .collect())
    }

    /// Writes a temporary file, flushes it to disk and renames it over the ledger.
    fn store(path: &Path, mut orders: BTreeMap<i64, Entry>) -> Result<(), DeployError> {
        while orders.len() > LEDGER_ORDERS {
            orders.pop_first();
        }
        let write = |source| DeployError::WriteLedger { path: path.to_owned(), source };
        let temporary = path.with_extension("json.tmp");
        let orders = orders
            .into_iter()
            .map(|(id, entry)| Record {
                id,
                report: match entry {
                    Entry::Started => None,
                    Entry::Finished { report } => Some(report),
                },
            })
            .collect();
        let bytes = serde_json::to_vec(&LedgerFile::V1 { orders }).map_err(std::io::Error::other).map_err(write)?;
        let mut file = std::fs::File::create(&temporary).map_err(write)?;
        file.write_all(&bytes).map_err(write)?;
        file.sync_all().map_err(write)?;
        std::fs::rename(&temporary, path).map_err(write)?;
        if let Some(directory) = path.parent() {
            std::fs::File::open(directory).and_then(|directory| directory.sync_all()).map_err(write)?;
        }
        Ok(())
    }

    async fn entry(&self, id: i64) -> Result<Option<Entry>, DeployError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || Ok(Self::load(&path)?.remove(&id)))
            .await
            .map_err(DeployError::LedgerTask)?
    }

    async fn set(&self, id: i64, entry: Entry) -> Result<(), DeployError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut orders = Self::load(&path)?;
            orders.insert(id, entry);
            Self::store(&path, orders)
        })
        .await
        .map_err(DeployError::LedgerTask)?
    }
}

/// Asks for this host's deploy orders and runs them.
pub(crate) struct Deployer {
    client: reqwest::Client,
    backend: BackendConfig,
    host: String,
    config: DeployConfig,
    pattern: regex::Regex,
    ledger: Ledger,
}

impl Deployer {
    /// `None` without a `[deploy]` section.
    pub(crate) fn new(config: &AgentConfig, client: reqwest::Client) -> Result<Option<Self>, DeployError> {
        let Some(deploy) = config.deploy.clone() else { return Ok(None) };
        let pattern = deploy.version_regex().map_err(DeployError::Pattern)?;
        Ok(Some(Self {
            client,
            backend: config.backend.clone(),
            host: config.host(),
            config: deploy,
            pattern,
            ledger: Ledger { path: config.data_dir.join("deploys.json") },
        }))
    }

    /// Asks every `poll_seconds` until `shutdown`. A command running at shutdown is left to
    /// finish on its own; its order is reported failed at the next start (it is not run again).
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(self.config.poll_seconds));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            tokio::select! {
                result = self.round() => {
                    if let Err(error) = result {
                        tracing::warn!(error = %ErrorChain(&error), "deploy orders not handled; asking again");
                    }
                }
                () = shutdown.cancelled() => return,
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.backend.url.trim_end_matches('/'))
    }

    async fn round(&self) -> Result<(), DeployError> {
        let url = reqwest::Url::parse_with_params(&self.url(paths::AGENT_DEPLOYS), [("host", &self.host)])
            .map_err(DeployError::Url)?;
        let response =
            self.client.get(url).bearer_auth(self.backend.token.expose()).send().await.map_err(DeployError::Request)?;
        let orders: DeployOrders = answer(response).await?.json().await.map_err(DeployError::Request)?;
        for order in orders.orders {
            self.handle(&order).await?;
        }
        Ok(())
    }

    async fn handle(&self, order: &DeployOrder) -> Result<(), DeployError> {
        match self.ledger.entry(order.id).await? {
            Some(Entry::Finished { report }) => return self.send(order.id, &report).await,
            Some(Entry::Started) => {
                let reason = "the agent stopped while the deploy command ran (its outcome is unknown); an order is \
                              never run twice: check the host";
                tracing::warn!(order = order.id, version = %order.version, "{reason}");
                return self.finish(order, self.report(DeployStatus::Failed, None, reason, String::new())).await;
            }
            None => {}
        }
        if let Some(reason) = self.config.refusal(&self.pattern, &order.service, &order.version) {
            tracing::warn!(order = order.id, reason = %reason, "deploy order refused");
            return self.finish(order, self.report(DeployStatus::Refused, None, &reason, String::new())).await;
        }
        // The claim: refused when the order was cancelled meanwhile, and then nothing runs.
        match self.send(order.id, &self.report(DeployStatus::Running, None, "", String::new())).await {
            Err(DeployError::Refused { status: StatusCode::CONFLICT, body }) => {
                tracing::info!(order = order.id, answer = %body, "deploy order withdrawn; not run");
                return Ok(());
            }
            result => result?,
        }
        self.ledger.set(order.id, Entry::Started).await?;
        tracing::info!(order = order.id, service = %order.service, version = %order.version, "deploying");
        let report = self.execute(order).await;
        tracing::info!(order = order.id, status = report.status.as_str(), exit_code = ?report.exit_code, "deploy over");
        self.finish(order, report).await
    }

    /// Records an order's end, then reports it (again at the next round if it is lost).
    async fn finish(&self, order: &DeployOrder, report: DeployReport) -> Result<(), DeployError> {
        self.ledger.set(order.id, Entry::Finished { report: report.clone() }).await?;
        match self.send(order.id, &report).await {
            // The order ended at the backend already (it waited too long, say): nothing to add.
            Err(DeployError::Refused { status: StatusCode::CONFLICT, body }) => {
                tracing::warn!(order = order.id, answer = %body, "the deploy report came too late");
                Ok(())
            }
            result => result,
        }
    }

    fn report(&self, status: DeployStatus, exit_code: Option<i32>, reason: &str, output: String) -> DeployReport {
        DeployReport { host: self.host.clone(), status, exit_code, reason: reason.to_owned(), output }
    }

    async fn send(&self, id: i64, report: &DeployReport) -> Result<(), DeployError> {
        let response = self
            .client
            .post(self.url(&paths::AGENT_DEPLOY.replace("{id}", &id.to_string())))
            .bearer_auth(self.backend.token.expose())
            .json(report)
            .send()
            .await
            .map_err(DeployError::Request)?;
        answer(response).await.map(drop)
    }

    /// Runs the command once, without a shell, within `timeout_seconds`.
    async fn execute(&self, order: &DeployOrder) -> DeployReport {
        let argv: Vec<String> =
            self.config.command.iter().map(|argument| argument.replace("{version}", &order.version)).collect();
        let Some((program, arguments)) = argv.split_first() else {
            return self.report(DeployStatus::Failed, None, "deploy.command is empty", String::new());
        };
        let mut command = tokio::process::Command::new(program);
        command
            .args(arguments)
            .env("VIGIL_DEPLOY_VERSION", &order.version)
            .env("VIGIL_DEPLOY_SERVICE", &order.service)
            .env("VIGIL_DEPLOY_ENVIRONMENT", &order.environment)
            .env("VIGIL_DEPLOY_ORDER", order.id.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                let reason = format!("cannot start {program}: {error}");
                return self.report(DeployStatus::Failed, None, &reason, String::new());
            }
        };
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut readers = tokio::task::JoinSet::new();
        if let Some(stdout) = child.stdout.take() {
            readers.spawn(keep_tail(stdout, output.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.spawn(keep_tail(stderr, output.clone()));
        }
        let timeout = Duration::from_secs(self.config.timeout_seconds);
        let waited = tokio::time::timeout(timeout, child.wait()).await;
        let (status, exit_code, reason) = match waited {
            Ok(Ok(exit)) if exit.success() => (DeployStatus::Succeeded, exit.code(), String::new()),
            Ok(Ok(exit)) => {
                let reason = match exit.code() {
                    Some(_) => String::new(),
                    None => format!("the command ended by a signal ({exit})"),
                };
                (DeployStatus::Failed, exit.code(), reason)
            }
            Ok(Err(error)) => (DeployStatus::Failed, None, format!("cannot wait for the command: {error}")),
            Err(_) => {
                let _ = child.kill().await;
                let seconds = self.config.timeout_seconds;
                (DeployStatus::Failed, None, format!("the command ran longer than {seconds} s and was killed"))
            }
        };
        let _ = tokio::time::timeout(OUTPUT_GRACE, async { while readers.join_next().await.is_some() {} }).await;
        let bytes = output.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        self.report(status, exit_code, &reason, last_lines(&bytes, OUTPUT_LINES))
    }
}

/// The response when it is a success, else its status and the start of its body.
async fn answer(response: reqwest::Response) -> Result<reqwest::Response, DeployError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    Err(DeployError::Refused { status, body: body.chars().take(300).collect() })
}

/// Reads `stream` to its end, keeping the last [`OUTPUT_BYTES`] of what it and its siblings wrote.
async fn keep_tail(mut stream: impl tokio::io::AsyncRead + Unpin, output: Arc<Mutex<Vec<u8>>>) {
    let mut chunk = [0u8; 4096];
    while let Ok(read) = stream.read(&mut chunk).await {
        if read == 0 {
            return;
        }
        let mut kept = output.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.extend_from_slice(&chunk[..read]);
        if kept.len() > OUTPUT_BYTES {
            let excess = kept.len() - OUTPUT_BYTES;
            kept.drain(..excess);
        }
    }
}

/// The last `lines` lines of `output`, as text.
fn last_lines(output: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(output);
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_is_versioned_bounded_and_read_back() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("deploys.json");
        assert!(Ledger::load(&path).unwrap().is_empty());
        let report = DeployReport {
            host: "web-1".to_owned(),
            status: DeployStatus::Succeeded,
            exit_code: Some(0),
            reason: String::new(),
            output: "done".to_owned(),
        };
        let mut orders: BTreeMap<i64, Entry> = (0..LEDGER_ORDERS as i64 + 5).map(|id| (id, Entry::Started)).collect();
        orders.insert(9999, Entry::Finished { report: report.clone() });
        Ledger::store(&path, orders).unwrap();
        let read = Ledger::load(&path).unwrap();
        assert_eq!(read.len(), LEDGER_ORDERS, "the oldest are forgotten");
        assert_eq!(read.get(&9999), Some(&Entry::Finished { report }));
        assert!(!read.contains_key(&5) && read.contains_key(&6));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(r#"{"version":"1","orders":[{"id":6,"report":null}"#), "{}", &text[..60]);
        std::fs::write(&path, r#"{"version":"7","orders":[]}"#).unwrap();
        let error = ErrorChain(&Ledger::load(&path).unwrap_err()).to_string();
        assert!(error.contains("not one this agent reads"), "{error}");
    }

    #[test]
    fn only_the_last_lines_of_the_output_are_kept() {
        let output: String = (1..=30).map(|line| format!("line {line}\n")).collect();
        let kept = last_lines(output.as_bytes(), 3);
        assert_eq!(kept, "line 28\nline 29\nline 30");
        assert_eq!(last_lines(b"", 3), "");
        assert_eq!(last_lines(b"\xffbad\n", 3), "\u{fffd}bad");
    }
}

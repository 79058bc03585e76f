//! The agent rollout provider end to end: three real `vigil-agent` processes (three "hosts"
//! on loopback, each with its own data directory) run a real deploy command, a shell script
//! named in their own `[deploy]` section, one host at a time with the gates judged between
//! hosts. A version outside the agents' pattern is refused and runs nothing; a gate failing
//! after the first host stops the rollout before the others and rolls that host back; an
//! agent killed while its command runs does not run the order again once restarted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use reqwest::Method;
use serde_json::{Value, json};
use vigil_proto::auth::Scope;
use vigil_proto::paths;
use vigil_proto::rollouts::{Rollout, RolloutDetail, RolloutKind, RolloutPage, RolloutState, Service};

use crate::agent::agent_binary;
use crate::helpers::{Db, TestApp, TestSession, eventually, record, service_token, spawn_app_with};

pub(crate) const HOSTS: [&str; 3] = ["web-1", "web-2", "web-3"];
const PATTERN: &str = r"[0-9]+\.[0-9]+\.[0-9]+";

/// The deploy command: writes when it starts and ends to the host's log, and the version to
/// its `version` file; while the host holds a `hold` file it waits for a `release` file.
const SCRIPT: &str = r#"set -e
dir="$1"
echo "start $VIGIL_DEPLOY_VERSION $(date +%s%N)" >> "$dir/deploy.log"
if [ -e "$dir/hold" ]; then
    while [ ! -e "$dir/release" ]; do sleep 0.05; done
fi
printf '%s' "$2" > "$dir/version"
echo "end $2 $(date +%s%N)" >> "$dir/deploy.log"
echo "deployed $2 on $(basename "$dir")"
"#;

/// One host: its directory (the script's state, the agent's data) and its agent.
pub(crate) struct Host {
    pub(crate) name: &'static str,
    directory: PathBuf,
    config: PathBuf,
    child: Option<Child>,
}

impl Host {
    fn new(root: &Path, name: &'static str, app: &TestApp) -> Self {
        let directory = root.join(name);
        std::fs::create_dir_all(&directory).unwrap();
        let script = root.join("deploy.sh");
        let config = directory.join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "host = {name:?}\ndata_dir = {data:?}\n\n[backend]\nurl = {url:?}\ntoken = {token:?}\ntimeout_seconds = 5\n\n\
                 [host_metrics]\nenabled = false\n\n[control]\nlisten = \"\"\nheartbeat_seconds = 1\n\n\
                 [deploy]\nservice = \"shop\"\ncommand = [\"/bin/sh\", {script:?}, {state:?}, \"{{version}}\"]\n\
                 version_pattern = '{PATTERN}'\ntimeout_seconds = 60\npoll_seconds = 1\n",
                data = directory.join("data"),
                url = app.address,
                token = app.ingest_token,
                script = script.display().to_string(),
                state = directory.display().to_string(),
            ),
        )
        .unwrap();
        let mut host = Self { name, directory, config, child: None };
        host.start();
        host
    }

    fn start(&mut self) {
        let child = Command::new(agent_binary())
            .arg("--config")
            .arg(&self.config)
            .env("VIGIL_AGENT_LOG", "error")
            .stdout(Stdio::null())
            .spawn()
            .expect("vigil-agent starts");
        self.child = Some(child);
    }

    /// `kill -9`: the agent runs no code; a command it started goes on by itself.
    fn kill(&mut self) {
        let mut child = self.child.take().expect("a running agent");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub(crate) fn version(&self) -> Option<String> {
        std::fs::read_to_string(self.directory.join("version")).ok()
    }

    /// The lines of the script's log: `start <version> <nanos>`, `end <version> <nanos>`.
    pub(crate) fn log(&self) -> Vec<(String, String, u128)> {
        let text = std::fs::read_to_string(self.directory.join("deploy.log")).unwrap_or_default();
        text.lines()
            .map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                (fields[0].to_owned(), fields[1].to_owned(), fields[2].parse().unwrap())
            })
            .collect()
    }

    fn at(&self, what: &str, version: &str) -> u128 {
        let log = self.log();
        let found = log.iter().find(|(kind, seen, _)| kind == what && seen == version);
        found.unwrap_or_else(|| panic!("{} has no {what} of {version}: {log:?}", self.name)).2
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // A held command is let go, so that nothing outlives the test.
        let _ = std::fs::write(self.directory.join("release"), "");
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(crate) struct Fleet {
    pub(crate) hosts: Vec<Host>,
    _root: tempfile::TempDir,
}

impl Fleet {
    pub(crate) fn start(app: &TestApp) -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("deploy.sh"), SCRIPT).unwrap();
        let hosts = HOSTS.iter().map(|name| Host::new(root.path(), name, app)).collect();
        Self { hosts, _root: root }
    }
}

async fn start_app(db: Db) -> TestApp {
    spawn_app_with(db, |config| config.rollouts.tick_millis = 100).await
}

pub(crate) fn environment(params: Value, gates: Value) -> Value {
    json!({"name": "production", "current_version": "1.0.0", "gates": gates,
           "provider": {"kind": "agent", "params": params}})
}

pub(crate) async fn save_service(app: &TestApp, admin: &TestSession, environment: Value) -> reqwest::Response {
    let body = json!({"name": "shop", "owner": "team-shop", "environments": [environment]});
    app.with_session(Method::POST, paths::SERVICES, admin).json(&body).send().await.unwrap()
}

async fn shop(app: &TestApp, admin: &TestSession, gates: Value) {
    let response = save_service(app, admin, environment(json!({"hosts": HOSTS, "batch_size": 1}), gates)).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

pub(crate) async fn deploy(app: &TestApp, admin: &TestSession, version: &str) -> Rollout {
    let body = json!({"service": "shop", "environment": "production", "version": version});
    let response = app.with_session(Method::POST, paths::ROLLOUTS, admin).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

pub(crate) async fn detail(app: &TestApp, id: i64) -> RolloutDetail {
    app.read(&paths::ROLLOUT.replace("{id}", &id.to_string()), &[]).await.json().await.unwrap()
}

pub(crate) async fn reaches(app: &TestApp, id: i64, state: RolloutState, seconds: u64) -> RolloutDetail {
    let what = format!("rollout {id} {}", state.as_str());
    let found = tokio::time::timeout(std::time::Duration::from_secs(seconds), async {
        loop {
            let seen = detail(app, id).await;
            if seen.rollout.state == state {
                return seen;
            }
            assert!(!seen.rollout.state.is_terminal(), "{what} expected: {seen:#?}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    match found {
        Ok(seen) => seen,
        Err(_) => panic!("timed out waiting for {what}: {:#?}", detail(app, id).await),
    }
}

async fn versions(app: &TestApp) -> (Option<String>, Option<String>) {
    let service: Service = app.read(&paths::SERVICE.replace("{name}", "shop"), &[]).await.json().await.unwrap();
    let environment = &service.environments[0];
    (environment.current_version.clone(), environment.previous_good_version.clone())
}

fn some(text: &str) -> Option<String> {
    Some(text.to_owned())
}

#[tokio::test]
async fn three_agents_deploy_one_host_at_a_time_and_refuse_a_version_outside_their_pattern() {
    // On PostgreSQL: the orders' queries are written for both dialects (the others run on SQLite).
    let app = start_app(Db::Postgres).await;
    let admin = app.admin_session().await;
    for (params, field) in [
        (json!({"hosts": []}), "params.hosts"),
        (json!({"hosts": ["web-1", "web-1"]}), "params.hosts"),
        (json!({"hosts": ["web 1"]}), "params.hosts"),
        (json!({"hosts": ["web-1"], "batch_size": 0}), "params.batch_size"),
        (json!({"hosts": ["web-1"], "command": ["/bin/rm", "-rf", "/"]}), "params.command"),
    ] {
        let response = save_service(&app, &admin, environment(params, json!([]))).await;
        crate::helpers::assert_error(response, 400, "invalid_parameter", field).await;
    }
    let gates = json!([{"name": "errors", "kind": "log", "query": "level:error AND service:shop", "comparator": "<",
                        "threshold": 5, "interval_seconds": 1, "window_seconds": 2}]);
    shop(&app, &admin, gates).await;
    let fleet = Fleet::start(&app);

    let rollout = deploy(&app, &admin, "1.1.0").await;
    let done = reaches(&app, rollout.id, RolloutState::Succeeded, 90).await;
    for host in &fleet.hosts {
        assert_eq!(host.version().as_deref(), Some("1.1.0"), "{}", host.name);
        assert_eq!(host.log().len(), 2, "one run on {}: {:?}", host.name, host.log());
    }
    for pair in fleet.hosts.windows(2) {
        assert!(
            pair[0].at("end", "1.1.0") < pair[1].at("start", "1.1.0"),
            "{} deployed before {} had finished",
            pair[1].name,
            pair[0].name
        );
    }
    let agents: Vec<(&str, &str)> = done
        .events
        .iter()
        .filter(|event| event.kind == "agent")
        .map(|event| (event.actor.as_str(), event.detail.split(' ').nth(1).unwrap_or("")))
        .collect();
    assert_eq!(
        agents,
        [
            ("web-1", "running"),
            ("web-1", "succeeded"),
            ("web-2", "running"),
            ("web-2", "succeeded"),
            ("web-3", "running"),
            ("web-3", "succeeded")
        ],
        "{:#?}",
        done.events
    );
    let kinds: Vec<&str> = done.events.iter().map(|event| event.kind.as_str()).collect();
    let second = done.events.iter().position(|event| event.detail.contains("batch 2 of 3 released: web-2")).unwrap();
    assert!(kinds[..second].contains(&"gate"), "the gates were judged before the second host: {kinds:?}");
    let succeeded = done.events.iter().find(|event| event.kind == "agent" && event.actor == "web-3").unwrap();
    assert!(succeeded.detail.contains("1.1.0"), "{succeeded:?}");
    assert_eq!(versions(&app).await, (some("1.1.0"), some("1.0.0")));

    // Orders go only to the caller a host is bound to.
    let intruder = service_token(&app.state, "intruder", Scope::Ingest).await;
    let response = app
        .client
        .get(app.url(paths::AGENT_DEPLOYS))
        .query(&[("host", "web-1")])
        .bearer_auth(&intruder)
        .send()
        .await
        .unwrap();
    crate::helpers::assert_error(response, 403, "forbidden", "not bound to this caller").await;

    // The backend takes "1.2.0-rc.1" as a version; the agents' pattern does not.
    let refused = deploy(&app, &admin, "1.2.0-rc.1").await;
    let failed = reaches(&app, refused.id, RolloutState::Failed, 30).await;
    let error = failed.rollout.error.clone().unwrap_or_default();
    assert!(error.contains("web-1 refused 1.2.0-rc.1") && error.contains("version_pattern"), "{error}");
    for host in &fleet.hosts {
        assert_eq!(host.log().len(), 2, "nothing ran on {}: {:?}", host.name, host.log());
        assert_eq!(host.version().as_deref(), Some("1.1.0"));
    }
    assert_eq!(versions(&app).await, (some("1.1.0"), some("1.0.0")));
    // The hosts after the refusing one were never asked.
    let asked: Vec<&str> =
        failed.events.iter().filter(|event| event.kind == "agent").map(|e| e.actor.as_str()).collect();
    assert_eq!(asked, ["web-1"], "{:#?}", failed.events);
}

#[tokio::test]
async fn a_gate_failing_after_the_first_host_stops_the_rollout_and_rolls_that_host_back() {
    let app = start_app(Db::Sqlite).await;
    let admin = app.admin_session().await;
    let gates = json!([{"name": "errors", "kind": "log", "query": "level:error AND service:shop", "comparator": "<",
                        "threshold": 5, "interval_seconds": 1, "window_seconds": 30}]);
    shop(&app, &admin, gates).await;
    let fleet = Fleet::start(&app);
    let rollout = deploy(&app, &admin, "1.1.0").await;
    reaches(&app, rollout.id, RolloutState::Analysing, 60).await;
    assert_eq!(fleet.hosts[0].version().as_deref(), Some("1.1.0"));
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let burst: Vec<_> = (0..50).map(|i| record(&now, "shop", "error", &format!("checkout failed {i}"))).collect();
    assert_eq!(app.post_logs(&burst).await.status(), 200);
    let rolled_back = reaches(&app, rollout.id, RolloutState::RolledBack, 30).await;
    assert!(rolled_back.rollout.error.as_deref().is_some_and(|error| error.starts_with("gate errors failed")));

    let page: RolloutPage = app.read(paths::ROLLOUTS, &[("service", "shop")]).await.json().await.unwrap();
    let rollback = &page.rollouts[0];
    assert_eq!(
        (rollback.kind, rollback.version.as_str(), rollback.parent_id),
        (RolloutKind::Rollback, "1.0.0", Some(rollout.id))
    );
    let back = reaches(&app, rollback.id, RolloutState::Succeeded, 30).await;
    assert_eq!(fleet.hosts[0].version().as_deref(), Some("1.0.0"), "the host that got 1.1.0 went back");
    let runs: Vec<String> = fleet.hosts[0].log().into_iter().filter(|l| l.0 == "start").map(|l| l.1).collect();
    assert_eq!(runs, ["1.1.0", "1.0.0"]);
    for host in &fleet.hosts[1..] {
        assert!(host.log().is_empty(), "{} never deployed: {:?}", host.name, host.log());
    }
    let asked: Vec<&str> = back.events.iter().filter(|event| event.kind == "agent").map(|e| e.actor.as_str()).collect();
    assert_eq!(asked, ["web-1", "web-1"], "only the host that took 1.1.0 rolls back: {:#?}", back.events);
    assert_eq!(versions(&app).await.0, some("1.0.0"));
}

#[tokio::test]
async fn an_agent_killed_while_its_command_runs_does_not_run_the_order_again() {
    let app = start_app(Db::Sqlite).await;
    let admin = app.admin_session().await;
    shop(&app, &admin, json!([])).await;
    let mut fleet = Fleet::start(&app);
    std::fs::write(fleet.hosts[0].directory.join("hold"), "").unwrap();
    let rollout = deploy(&app, &admin, "1.1.0").await;
    let first = &fleet.hosts[0];
    eventually(60, "web-1's command to start", || async { (!first.log().is_empty()).then_some(()) }).await;
    fleet.hosts[0].kill();
    fleet.hosts[0].start();
    let failed = reaches(&app, rollout.id, RolloutState::Failed, 30).await;
    let error = failed.rollout.error.clone().unwrap_or_default();
    assert!(error.contains("web-1 failed") && error.contains("never run twice"), "{error}");
    // The command the killed agent started finishes by itself, once.
    std::fs::write(fleet.hosts[0].directory.join("release"), "").unwrap();
    let first = &fleet.hosts[0];
    eventually(30, "the held command to end", || async { first.version() }).await;
    let starts = first.log().iter().filter(|line| line.0 == "start").count();
    assert_eq!(starts, 1, "{:?}", first.log());
    for host in &fleet.hosts[1..] {
        assert!(host.log().is_empty(), "{} never deployed", host.name);
    }
    assert_eq!(versions(&app).await, (some("1.0.0"), None));
}

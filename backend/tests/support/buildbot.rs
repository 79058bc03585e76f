//! A real Buildbot (Debian's `buildbot` and `buildbot-worker`, 3.7) for the rollout tests: a
//! master with a force scheduler `deploy` and a builder `rollout`, authentication on (user
//! `deployer`, password `s3cret`), and one worker, on free loopback ports in a temporary
//! directory. One is started per test binary ([`TestBuildbot::shared`]): it takes seconds to
//! start and the tests tell their builds apart by version.
//!
//! Debian lacks `buildbot-www`, without which the master does not start; the stub package
//! written here (after `components/buildbot/wwwstub` of the project's shared notes) serves
//! the API and no UI. The processes end with the test binary (see [`watched`]).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const USERNAME: &str = "deployer";
pub const PASSWORD: &str = "s3cret";

/// The builder's step: versions starting with `fail` fail, those starting with `slow` take a
/// minute (to be stopped), with `pause` four seconds (to restart Vigil meanwhile), the others
/// a second.
const MASTER_CFG: &str = r#"# -*- python -*-
from buildbot.plugins import worker, schedulers, util, steps
import os

c = BuildmasterConfig = {}
WWW_PORT = int(os.environ["BB_WWW_PORT"])
PB_PORT = int(os.environ["BB_PB_PORT"])
c['workers'] = [worker.Worker("w1", "w1pass", max_builds=8)]
c['protocols'] = {'pb': {'port': "tcp:%d:interface=127.0.0.1" % PB_PORT}}
c['change_source'] = []
c['schedulers'] = [schedulers.ForceScheduler(
    name="deploy", builderNames=["rollout"], buttonName="Deploy",
    codebases=[util.CodebaseParameter("", branch=util.FixedParameter(name="branch", default=""),
                                      revision=util.FixedParameter(name="revision", default=""),
                                      repository=util.FixedParameter(name="repository", default=""),
                                      project=util.FixedParameter(name="project", default=""))],
    properties=[
        util.StringParameter(name="version", label="Version", default="0.0.0", required=True,
                             regex=r"^[0-9A-Za-z.\-_+/]+$"),
        util.ChoiceStringParameter(name="target", choices=["staging", "prod"], default="staging"),
    ],
)]
f = util.BuildFactory()
f.addStep(steps.ShellCommand(
    name="rollout",
    command=["sh", "-c", 'echo "deploying $VERSION to $TARGET"; case "$VERSION" in slow*) sleep 60;; pause*) sleep 4;; *) sleep 1;; esac; '
                         'case "$VERSION" in fail*) echo "failure requested" >&2; exit 3;; esac'],
    env={"VERSION": util.Property("version"), "TARGET": util.Property("target")},
    haltOnFailure=True,
))
# A deploy of one version must never be merged into the build of another: without this,
# Buildbot collapses queued requests of the builder and completes them without a build.
c['collapseRequests'] = False
c['builders'] = [util.BuilderConfig(name="rollout", workernames=["w1"], factory=f)]
c['services'] = []
c['title'] = "vigil-test"
c['buildbotURL'] = "http://127.0.0.1:%d/" % WWW_PORT
c['buildbotNetUsageData'] = None
c['www'] = dict(port="tcp:%d:interface=127.0.0.1" % WWW_PORT, plugins={},
    auth=util.UserPasswordAuth({"deployer": "s3cret"}),
    authz=util.Authz(
        allowRules=[util.AnyControlEndpointMatcher(role="deployers")],
        roleMatchers=[util.RolesFromUsername(roles=["deployers"], usernames=["deployer"])]))
c['db'] = {'db_url': "sqlite:///state.sqlite"}
"#;

pub struct TestBuildbot {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The ends of the pipes whose closing stops the master and the worker (see [`watched`]).
    _lifelines: Vec<std::process::ChildStdin>,
}

impl TestBuildbot {
    /// The binary's Buildbot, started at the first call; ready (worker connected) on return.
    pub async fn shared() -> &'static TestBuildbot {
        static SHARED: OnceLock<TestBuildbot> = OnceLock::new();
        let buildbot = SHARED.get_or_init(start);
        buildbot.wait_until_ready().await;
        buildbot
    }

    async fn wait_until_ready(&self) {
        let started = Instant::now();
        let client = reqwest::Client::new();
        loop {
            let workers = client.get(format!("{}/api/v2/workers", self.url)).send().await;
            if let Ok(response) = workers
                && let Ok(body) = response.json::<Value>().await
                && body["workers"][0]["connected_to"].as_array().is_some_and(|masters| !masters.is_empty())
            {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "Buildbot's worker did not connect within 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every build of `version`, as Buildbot shows them (with the `version` property).
    pub async fn builds_of(&self, version: &str) -> Vec<Value> {
        let url = format!("{}/api/v2/builds?property=version", self.url);
        let body: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        body["builds"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|build| build["properties"]["version"][0] == version)
            .cloned()
            .collect()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs `program` under a shell that kills it once its standard input closes: the pipe's
/// writer is kept by the test binary, so the process ends with it, however it exits.
fn watched(program: &str) -> Command {
    let mut command = Command::new("/bin/sh");
    command.args(["-c", "\"$@\" & child=$!; read _; kill $child; wait $child", "sh", program]).stdin(Stdio::piped());
    command
}

fn run(command: &mut Command, what: &str) {
    let output =
        command.output().unwrap_or_else(|error| panic!("{what}: {error} (apt-get install buildbot buildbot-worker)"));
    assert!(output.status.success(), "{what} failed: {}", String::from_utf8_lossy(&output.stderr));
}

fn write_stub(directory: &Path) {
    let package = directory.join("bb_www_stub");
    let info = directory.join("bb_www_stub-0.1.dist-info");
    std::fs::create_dir_all(package.join("static")).unwrap();
    std::fs::create_dir_all(&info).unwrap();
    std::fs::write(
        package.join("__init__.py"),
        "from buildbot.www.plugin import Application\nep = Application(__name__, \"API only\")\n",
    )
    .unwrap();
    std::fs::write(package.join("static/index.html"), "<html><body>API only</body></html>\n").unwrap();
    std::fs::write(package.join("VERSION"), "3.7.0\n").unwrap();
    std::fs::write(info.join("entry_points.txt"), "[buildbot.www]\nbase = bb_www_stub:ep\n").unwrap();
    std::fs::write(info.join("METADATA"), "Metadata-Version: 2.1\nName: bb-www-stub\nVersion: 0.1\n").unwrap();
    std::fs::write(info.join("RECORD"), "").unwrap();
}

fn start() -> TestBuildbot {
    // Kept for the binary's life: the processes work in it.
    let directory = tempfile::tempdir().unwrap().keep();
    let (www_port, pb_port) = (free_port(), free_port());
    write_stub(&directory.join("wwwstub"));
    let master = directory.join("master");
    let worker = directory.join("worker");
    run(Command::new("/usr/bin/buildbot").arg("create-master").arg("-r").arg(&master), "buildbot create-master");
    std::fs::write(master.join("master.cfg"), MASTER_CFG).unwrap();
    let pb = format!("127.0.0.1:{pb_port}");
    run(
        Command::new("/usr/bin/buildbot-worker").args(["create-worker"]).arg(&worker).args([
            pb.as_str(),
            "w1",
            "w1pass",
        ]),
        "buildbot-worker create-worker",
    );
    let log = |name: &str| std::fs::File::create(directory.join(name)).unwrap();
    let master = watched("/usr/bin/buildbot")
        .args(["start", "--nodaemon"])
        .arg(&master)
        .env("BB_WWW_PORT", www_port.to_string())
        .env("BB_PB_PORT", pb_port.to_string())
        .env("PYTHONPATH", directory.join("wwwstub"))
        .stdout(log("master.log"))
        .stderr(Stdio::null())
        .spawn()
        .expect("the Buildbot master starts");
    let worker = watched("/usr/bin/buildbot-worker")
        .args(["start", "--nodaemon"])
        .arg(&worker)
        .stdout(log("worker.log"))
        .stderr(Stdio::null())
        .spawn()
        .expect("the Buildbot worker starts");
    let lifelines = [master, worker].into_iter().map(|mut child| child.stdin.take().expect("a piped stdin")).collect();
    TestBuildbot { url: format!("http://127.0.0.1:{www_port}"), _lifelines: lifelines }
}

//! A real receiver for the generic webhook provider: Debian's `webhook` tool (2.8) on a free
//! loopback port, with two hooks that check the body's HMAC-SHA256 signature
//! (`payload-hmac-sha256` over `X-Vigil-Signature`) and run a deploy script that appends
//! `<version> <kind> <rollout_id> <callback_url>` to a file: `deploy` answers when the script
//! ended (200, or 500 when it failed: versions starting with `fail`), `deploy-async` answers
//! 202 at once (the run's end comes by the callback). Killed when dropped.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tempfile::TempDir;

const BINARY: &str = "/usr/bin/webhook";

const SCRIPT: &str = r#"#!/bin/sh
echo "$1 $2 $3 $4" >> "$CALLS"
case "$1" in fail*) echo "deploy of $1 failed" >&2; exit 7;; esac
echo "deployed $1"
"#;

pub struct TestWebhook {
    /// `http://127.0.0.1:<port>/hooks`.
    pub hooks: String,
    calls: PathBuf,
    _child: tokio::process::Child,
    _dir: TempDir,
}

fn hook(id: &str, script: &str, secret: &str, asynchronous: bool) -> serde_json::Value {
    let mut hook = serde_json::json!({
        "id": id,
        "execute-command": script,
        "http-methods": ["POST"],
        "pass-arguments-to-command": [
            {"source": "payload", "name": "version"}, {"source": "payload", "name": "kind"},
            {"source": "payload", "name": "rollout_id"}, {"source": "payload", "name": "callback_url"},
        ],
        "trigger-rule": {"match": {"type": "payload-hmac-sha256", "secret": secret,
                                   "parameter": {"source": "header", "name": "X-Vigil-Signature"}}},
        "trigger-rule-mismatch-http-response-code": 403,
    });
    if asynchronous {
        hook["success-http-response-code"] = 202.into();
        hook["response-message"] = "accepted".into();
    } else {
        hook["include-command-output-in-response"] = true.into();
        hook["include-command-output-in-response-on-error"] = true.into();
    }
    hook
}

impl TestWebhook {
    /// Starts `webhook` with hooks signed by `secret`; returns once it answers.
    pub async fn start(secret: &str) -> Self {
        assert!(std::path::Path::new(BINARY).exists(), "webhook is not installed: apt-get install webhook");
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("deploy.sh");
        std::fs::write(&script, SCRIPT).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let script = script.display().to_string();
        let hooks =
            serde_json::json!([hook("deploy", &script, secret, false), hook("deploy-async", &script, secret, true)]);
        let hooks_file = dir.path().join("hooks.json");
        std::fs::write(&hooks_file, hooks.to_string()).unwrap();
        let calls = dir.path().join("calls");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = tokio::process::Command::new(BINARY)
            .arg("-hooks")
            .arg(&hooks_file)
            .args(["-ip", "127.0.0.1", "-port", &port.to_string()])
            .env("CALLS", &calls)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("webhook starts");
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "webhook did not listen within 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { hooks: format!("http://127.0.0.1:{port}/hooks"), calls, _child: child, _dir: dir }
    }

    /// The deploy script's runs: `[version, kind, rollout id, callback URL]` each.
    pub fn calls(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(&self.calls)
            .unwrap_or_default()
            .lines()
            .map(|line| line.split(' ').map(str::to_owned).collect())
            .collect()
    }
}

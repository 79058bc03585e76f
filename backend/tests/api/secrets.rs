//! Secrets at rest and in the logs, checked against the real `vigil` binary: its first start
//! prints a generated administrator password once; an integration secret written through the
//! API is never answered, never logged (at debug level), and never stored in clear.

use std::io::Read;
use std::process::{Child, Command, Stdio};

use reqwest::Method;
use serde_json::{Value, json};
use vigil_proto::paths;

use crate::helpers::{TestSession, eventually, free_port, session_request};

struct Server {
    child: Child,
    address: String,
}

impl Server {
    async fn start(data_dir: &std::path::Path) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("serve")
            .env("VIGIL_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("VIGIL_STORAGE__DATA_DIR", data_dir)
            .env("VIGIL_TELEMETRY__FILTER", "debug")
            .env("VIGIL_UI__SITE_ROOT", crate::helpers::site_root())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("vigil starts");
        let address = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        eventually(30, "vigil to answer /healthz", || async {
            client.get(format!("{address}{}", paths::HEALTHZ)).send().await.ok().filter(|r| r.status() == 200)
        })
        .await;
        Self { child, address }
    }

    /// Stops the server and returns everything it wrote.
    fn stop(mut self) -> String {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        let mut output = String::new();
        self.child.stdout.take().unwrap().read_to_string(&mut output).unwrap();
        self.child.stderr.take().unwrap().read_to_string(&mut output).unwrap();
        output
    }
}

/// Requests to a server this test started itself.
struct Remote {
    client: reqwest::Client,
    address: String,
}

impl Remote {
    fn with_session(&self, method: Method, path: &str, session: &TestSession) -> reqwest::RequestBuilder {
        session_request(&self.client, &self.address, method, path, session)
    }
}

fn generated_password(output: &str) -> Option<String> {
    let line = output.lines().find(|line| line.contains("created the administrator"))?;
    Some(line.rsplit(' ').next()?.to_owned())
}

#[tokio::test]
async fn secrets_are_printed_once_and_never_answered_logged_or_stored_in_clear() {
    let data = tempfile::tempdir().unwrap();
    // The first start generates the administrator's password and prints it on stderr.
    let first_output = Server::start(data.path()).await.stop();
    let password = generated_password(&first_output).expect("the generated password is printed");
    assert_eq!(password.len(), 20);
    assert_eq!(first_output.matches(&password).count(), 1, "printed exactly once");

    let server = Server::start(data.path()).await;
    let client = reqwest::Client::new();
    let login = client
        .post(format!("{}{}", server.address, paths::AUTH_LOGIN))
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = crate::helpers::session_cookie(&login).unwrap();
    let info: vigil_proto::auth::SessionInfo = login.json().await.unwrap();
    let session = crate::helpers::TestSession { cookie, info };
    let app = Remote { client, address: server.address.clone() };

    let secret = "xoxb-hunter2-0123456789-very-secret";
    let created = app
        .with_session(Method::POST, paths::INTEGRATIONS, &session)
        .json(&json!({
            "name": "ci", "kind": "github",
            "settings": {"repository": "shop/web", "workflow": "deploy.yml"},
            "secrets": {"token": secret}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created_text = created.text().await.unwrap();
    let created: Value = serde_json::from_str(&created_text).unwrap();
    assert_eq!(created["secrets"]["token"]["set"], true);
    assert_eq!(created["settings"]["repository"], "shop/web");
    let id = created["id"].to_string();
    let one = paths::INTEGRATION.replace("{id}", &id);

    // Renaming keeps the secret (sealed again under the new name); null removes one.
    let renamed = app
        .with_session(Method::PUT, &one, &session)
        .json(&json!({"name": "ci-main", "kind": "github", "settings": {}, "secrets": {"webhook": "https://hooks.example/T0/B0/XyZsecret"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
    let renamed: Value = renamed.json().await.unwrap();
    assert_eq!(renamed["secrets"], json!({"token": {"set": true}, "webhook": {"set": true}}));
    let removed = app
        .with_session(Method::PUT, &one, &session)
        .json(&json!({"name": "ci-main", "kind": "github", "secrets": {"webhook": null}}))
        .send()
        .await
        .unwrap();
    let removed: Value = removed.json().await.unwrap();
    assert_eq!(removed["secrets"], json!({"token": {"set": true}}));

    // The secret opens with the key, under its new name: sealed, not lost.
    let mut answers = vec![created_text];
    for path in [paths::INTEGRATIONS.to_owned(), one.clone(), paths::AUDIT.to_owned()] {
        let response = app.with_session(Method::GET, &path, &session).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        answers.push(response.text().await.unwrap());
    }
    let bad =
        app.with_session(Method::POST, paths::INTEGRATIONS, &session).json(&json!({"name": "x"})).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    answers.push(bad.text().await.unwrap());
    let output = server.stop();

    for answer in &answers {
        assert!(!answer.contains("hunter2") && !answer.contains("XyZsecret"), "a secret was answered: {answer}");
    }
    assert!(output.contains("DEBUG") || output.contains("debug"), "the server logged at debug level");
    assert!(!output.contains("hunter2") && !output.contains("XyZsecret"), "a secret was logged");
    assert!(!output.contains(&password), "the administrator's password was logged after its first start");
    assert!(generated_password(&output).is_none(), "the password is printed on the first start only");
    let database = std::fs::read(data.path().join("vigil.db")).unwrap();
    let wal = std::fs::read(data.path().join("vigil.db-wal")).unwrap_or_default();
    for bytes in [&database, &wal] {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains("hunter2") && !text.contains("XyZsecret"), "a secret is stored in clear");
    }
    // The key file is private to its owner.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.path().join("secrets.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn integration_secrets_open_only_with_the_configured_key() {
    use vigil_backend::secrets::SecretBox;
    let app = crate::helpers::spawn_app().await;
    let admin = app.admin_session().await;
    let created: Value = app
        .with_session(Method::POST, paths::INTEGRATIONS, &admin)
        .json(&json!({"name": "smtp", "kind": "smtp", "settings": {"host": "mail", "from": "vigil@example.com", "to": "ops@example.com"},
                      "secrets": {"username": "vigil", "password": "p@ss-w0rd"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap();
    let row = app.state.database.integration(id).await.unwrap().unwrap();
    let sealed: std::collections::BTreeMap<String, String> = serde_json::from_str(&row.secrets).unwrap();
    assert_eq!(app.state.secrets.open("integration/smtp/password", &sealed["password"]).unwrap(), "p@ss-w0rd");
    let other = SecretBox::from_key(&[9; 32]).unwrap();
    assert!(other.open("integration/smtp/password", &sealed["password"]).is_err());
    // What notifiers and providers call: the clear secret by name, none for a name not set.
    use vigil_backend::integrations::open_secret;
    assert_eq!(open_secret(&app.state.secrets, &row, "password").unwrap().as_deref(), Some("p@ss-w0rd"));
    assert_eq!(open_secret(&app.state.secrets, &row, "token").unwrap(), None);
    assert!(open_secret(&other, &row, "password").is_err());
    // A kind Vigil does not talk to is refused, naming the kinds, and nothing is stored.
    let unknown = app
        .with_session(Method::POST, paths::INTEGRATIONS, &admin)
        .json(&json!({"name": "ops", "kind": "carrier-pigeon", "settings": {}, "secrets": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(unknown["code"], "invalid_parameter");
    assert!(unknown["message"].as_str().unwrap().contains("is not one of webhook, slack"), "{unknown}");
    assert_eq!(app.state.database.integrations().await.unwrap().len(), 1);
    // Integrations are administration: viewers and read tokens neither see nor write them.
    let viewer = app.user_session("vic", vigil_proto::auth::Role::Viewer).await;
    let listed = app.with_session(Method::GET, paths::INTEGRATIONS, &viewer).send().await.unwrap();
    assert_eq!(listed.status(), 403);
    let one = app.read(&paths::INTEGRATION.replace("{id}", &id.to_string()), &[]).await;
    assert_eq!(one.status(), 403);
    let write = app
        .with_session(Method::DELETE, &paths::INTEGRATION.replace("{id}", &id.to_string()), &viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 403);
}

use vigil_proto::paths;

use crate::helpers::{assert_error, record, spawn_app};

#[tokio::test]
async fn ingest_without_a_token_is_refused_with_401() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url(paths::LOGS))
        .json(&[record("2026-11-29T08:00:00Z", "api", "info", "x")])
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "unauthorized", "send a token").await;
}

#[tokio::test]
async fn unknown_tokens_are_refused_with_401() {
    let app = spawn_app().await;
    let valid = app.read_token.clone();
    let flipped = if valid.ends_with('0') { '1' } else { '0' };
    let wrong_secret = format!("{}{flipped}", &valid[..valid.len() - 1]);
    let unknown_id = format!("vgl_ffffffffffffffff{}", &valid[20..]);
    for token in [unknown_id.as_str(), wrong_secret.as_str(), "vgl_00_00", "not-a-token", ""] {
        let response = app
            .client
            .get(app.url(paths::LOGS_SEARCH))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "token {token:?}");
    }
}

#[tokio::test]
async fn scopes_limit_what_a_token_may_do() {
    let app = spawn_app().await;
    // A read token cannot ingest; an ingest token cannot read.
    let response = app
        .client
        .post(app.url(paths::LOGS))
        .bearer_auth(&app.read_token)
        .json(&[record("2026-11-29T08:00:00Z", "api", "info", "x")])
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "forbidden", "needs ingest").await;
    let response = app.client.get(app.url(paths::LOGS_SEARCH)).bearer_auth(&app.ingest_token).send().await.unwrap();
    assert_error(response, 403, "forbidden", "needs read").await;

    // An admin token may do both.
    let admin = crate::helpers::service_token(&app.state, "admin", vigil_proto::auth::Scope::Admin).await;
    let response = app
        .client
        .post(app.url(paths::LOGS))
        .bearer_auth(&admin)
        .json(&[record("2026-11-29T08:00:00Z", "api", "info", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = app.client.get(app.url(paths::LOGS_SEARCH)).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn token_use_is_recorded() {
    let app = spawn_app().await;
    app.search(&[]).await;
    let tokens = app.state.database.tokens(None).await.unwrap();
    let read = tokens.iter().find(|token| token.scope.as_deref() == Some("read")).unwrap();
    let ingest = tokens.iter().find(|token| token.scope.as_deref() == Some("ingest")).unwrap();
    assert!(read.last_used_at_millis.is_some());
    assert!(ingest.last_used_at_millis.is_none());
}

#[tokio::test]
async fn the_cli_creates_a_token_that_authenticates() {
    let app = spawn_app().await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["token", "create", "--scope", "ingest", "--name", "host-a"])
        .env("VIGIL_STORAGE__DATA_DIR", &app.data_dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("vgl_"));
    let response = app
        .client
        .post(app.url(paths::LOGS))
        .bearer_auth(&token)
        .json(&[record("2026-11-29T08:00:00Z", "api", "info", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // The same name twice, or a bad scope, is a clear error.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["token", "create", "--scope", "ingest", "--name", "host-a"])
        .env("VIGIL_STORAGE__DATA_DIR", &app.data_dir)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("a service token named \"host-a\" already exists"));
    let bad_scope = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["token", "create", "--scope", "root", "--name", "x"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad_scope.stderr).contains("unknown scope \"root\""));
}

#[tokio::test]
async fn the_cli_names_configuration_mistakes() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("check-config")
        .env("VIGIL_SERVER__LISTEN", "nowhere")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("server.listen \"nowhere\""));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("check-config")
        .env("VIGIL_SERVER__LISTEN", "127.0.0.1:9999")
        .env("VIGIL_STORAGE__DATABASE_URL", "postgres://vigil:hunter2@db/vigil")
        .output()
        .unwrap();
    assert!(output.status.success());
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("127.0.0.1:9999") && !printed.contains("hunter2"), "{printed}");
}

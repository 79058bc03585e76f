//! Users and their sessions: sign-in, cookies, fixation, expiry, revocation, CSRF, rate
//! limiting, password changes, personal tokens and the audit trail they leave.

use reqwest::Method;
use serde_json::{Value, json};
use vigil_proto::auth::{AuditPage, CreatedToken, Role, TokenInfo};
use vigil_proto::paths;

use crate::helpers::{
    ADMIN, ADMIN_PASSWORD, TestApp, TestSession, assert_error, session_cookie, spawn_app, spawn_app_with,
};

async fn session_status(app: &TestApp, session: &TestSession) -> u16 {
    app.with_session(Method::GET, paths::AUTH_SESSION, session).send().await.unwrap().status().as_u16()
}

async fn audit(app: &TestApp, params: &[(&str, &str)]) -> AuditPage {
    app.audit(&app.admin_session().await, params).await
}

#[tokio::test]
async fn signing_in_sets_a_guarded_cookie_and_signing_out_ends_the_session() {
    let app = spawn_app().await;
    let response = app.login_raw(ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(response.status(), 200);
    let set_cookie = response.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(set_cookie.contains(attribute), "{set_cookie} lacks {attribute}");
    }
    assert!(!set_cookie.contains("Secure"), "no Secure flag over plain HTTP");
    let cookie = session_cookie(&response).unwrap();
    let info: Value = response.json().await.unwrap();
    assert_eq!(info["username"], ADMIN);
    assert_eq!(info["role"], "admin");
    let session = TestSession { cookie, info: serde_json::from_value(info).unwrap() };
    assert_eq!(session_status(&app, &session).await, 200);
    // The session is stored hashed: the cookie value is nowhere in the database.
    let stored = app.state.database.session_by_hash(&session.cookie).await.unwrap();
    assert!(stored.is_none());

    let logout = app.with_session(Method::POST, paths::AUTH_LOGOUT, &session).send().await.unwrap();
    assert_eq!(logout.status(), 204);
    assert!(logout.headers().get("set-cookie").unwrap().to_str().unwrap().contains("Max-Age=0"));
    assert_error(
        app.with_session(Method::GET, paths::AUTH_SESSION, &session).send().await.unwrap(),
        401,
        "unauthorized",
        "session has ended",
    )
    .await;
}

#[tokio::test]
async fn wrong_passwords_unknown_users_and_disabled_accounts_are_refused() {
    let app = spawn_app().await;
    assert_error(app.login_raw(ADMIN, "wrong password!").await, 401, "unauthorized", "invalid user name or password")
        .await;
    assert_error(app.login_raw("nobody", "whatever it is").await, 401, "unauthorized", "invalid user name or password")
        .await;
    let bad = app.client.post(app.url(paths::AUTH_LOGIN)).body("{").header("content-type", "application/json");
    assert_error(bad.send().await.unwrap(), 400, "invalid_json", "invalid login request").await;

    let viewer = app.user_session("val", Role::Viewer).await;
    let admin = app.admin_session().await;
    let id = app.state.database.user_by_username("val").await.unwrap().unwrap().id;
    let disable = app
        .with_session(Method::PATCH, &paths::USER.replace("{id}", &id.to_string()), &admin)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(disable.status(), 200);
    assert_eq!(session_status(&app, &viewer).await, 401, "disabling a user ends their sessions");
    assert_error(app.login_raw("val", "val has a long password").await, 401, "unauthorized", "disabled").await;
}

#[tokio::test]
async fn a_session_cookie_chosen_before_sign_in_is_never_the_session() {
    let app = spawn_app().await;
    // An attacker plants a cookie value; signing in must not adopt it.
    let planted = "a".repeat(64);
    let response = app
        .client
        .post(app.url(paths::AUTH_LOGIN))
        .header("cookie", format!("vigil_session={planted}"))
        .json(&json!({"username": ADMIN, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let issued = session_cookie(&response).unwrap();
    assert_ne!(issued, planted);
    let forged = TestSession { cookie: planted, info: response.json().await.unwrap() };
    assert_eq!(session_status(&app, &forged).await, 401);

    // Signing in again with a live session replaces it: the old cookie stops working.
    let first = app.admin_session().await;
    let second = app
        .client
        .post(app.url(paths::AUTH_LOGIN))
        .header("cookie", format!("vigil_session={}", first.cookie))
        .json(&json!({"username": ADMIN, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_ne!(session_cookie(&second).unwrap(), first.cookie);
    assert_eq!(session_status(&app, &first).await, 401);
}

#[tokio::test]
async fn idle_and_expired_sessions_end() {
    let app = spawn_app().await;
    let idle = app.admin_session().await;
    let expired = app.admin_session().await;
    assert_eq!(session_status(&app, &idle).await, 200);
    // Move the clock of the stored sessions instead of waiting: idle for 13 hours (the limit is
    // 12), and past the absolute lifetime.
    let hash = |cookie: &str| {
        use sha2::Digest;
        sha2::Sha256::digest(cookie.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect::<String>()
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let thirteen_hours = 13 * 3_600_000;
    app.state
        .database
        .execute_for_tests(&format!(
            "UPDATE sessions SET last_seen_at = {} WHERE token_hash = '{}'",
            now - thirteen_hours,
            hash(&idle.cookie)
        ))
        .await
        .unwrap();
    app.state
        .database
        .execute_for_tests(&format!(
            "UPDATE sessions SET expires_at = {} WHERE token_hash = '{}'",
            now - 1,
            hash(&expired.cookie)
        ))
        .await
        .unwrap();
    assert_eq!(session_status(&app, &idle).await, 401);
    assert_eq!(session_status(&app, &expired).await, 401);
    // A page with an ended session sends the browser to sign in, and clears the cookie.
    let page = app
        .client
        .get(app.url("/logs?q=x"))
        .header("cookie", format!("vigil_session={}", idle.cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/login?next=/logs%3Fq%3Dx");
    assert!(page.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn cross_site_requests_with_the_session_cookie_are_refused() {
    let app = spawn_app().await;
    let session = app.admin_session().await;
    let cookie = format!("vigil_session={}", session.cookie);
    let body = json!({"username": "mallory", "role": "admin", "password": "mallory's long password"});
    let post = || app.client.post(app.url(paths::USERS)).header("cookie", &cookie).json(&body);

    // Neither the CSRF header nor an Origin: refused.
    assert_error(post().send().await.unwrap(), 403, "forbidden", "cross-site request refused").await;
    // Another site's Origin, even with a wrong token: refused.
    let foreign = post().header("origin", "https://evil.example").header("x-csrf-token", "guess");
    assert_error(foreign.send().await.unwrap(), 403, "forbidden", "cross-site").await;
    assert!(app.state.database.user_by_username("mallory").await.unwrap().is_none());
    // This site's Origin (what a browser sends from Vigil's own pages): accepted.
    let same_site = post().header("origin", &app.address).send().await.unwrap();
    assert_eq!(same_site.status(), 201);
    // The session's CSRF token (what scripts send): accepted.
    let scripted = app
        .client
        .post(app.url(paths::USERS))
        .header("cookie", &cookie)
        .header("x-csrf-token", &session.info.csrf_token);
    let scripted = scripted.json(&json!({"username": "eve", "role": "viewer"})).send().await.unwrap();
    assert_eq!(scripted.status(), 201);
    // Reads are not state changes and need neither.
    let read = app.client.get(app.url(paths::USERS)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(read.status(), 200);

    // A sign-in form posted from another site is refused (login CSRF).
    let login = app
        .client
        .post(app.url(paths::AUTH_LOGIN))
        .header("origin", "https://evil.example")
        .json(&json!({"username": ADMIN, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 403);

    // A live tail opened with the cookie from another site's page is refused.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://127.0.0.1:{}{}", app.port, paths::UI_TAIL).into_client_request().unwrap();
    request.headers_mut().insert("cookie", cookie.parse().unwrap());
    request.headers_mut().insert("origin", "https://evil.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request.clone()).await.is_err());
    request.headers_mut().insert("origin", app.address.parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());

    // The upgrade is recognised whatever the case of its header: a foreign origin asking for
    // `Upgrade: WebSocket` is refused before the handshake.
    let handshake = |origin: &str| {
        format!(
            "GET {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\
             Cookie: {cookie}\r\n\r\n",
            paths::UI_TAIL,
            app.port
        )
    };
    for (origin, status) in [("https://evil.example", "403"), (app.address.as_str(), "101")] {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
        stream.write_all(handshake(origin).as_bytes()).await.unwrap();
        let mut answer = vec![0; 64];
        let read = stream.read(&mut answer).await.unwrap();
        let status_line = String::from_utf8_lossy(&answer[..read]).into_owned();
        assert!(status_line.starts_with(&format!("HTTP/1.1 {status}")), "{origin}: {status_line}");
    }
}

#[tokio::test]
async fn repeated_failed_sign_ins_lock_the_account_for_a_while() {
    let app = spawn_app_with(crate::helpers::Db::Sqlite, |config| {
        config.auth.login_max_failures = 3;
        config.auth.login_lockout_seconds = 2;
    })
    .await;
    app.user_session("other", Role::Viewer).await;
    for _ in 0..3 {
        assert_eq!(app.login_raw(ADMIN, "not the password").await.status(), 401);
    }
    // Even the right password is refused while locked, with the time to wait.
    let locked = app.login_raw(ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(locked.status(), 429);
    let retry_after: u64 = locked.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_error(locked, 429, "too_many_requests", "too many failed sign-ins").await;
    // Another account from the same address is not locked by three failures.
    app.login("other", "other has a long password").await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(app.login_raw(ADMIN, ADMIN_PASSWORD).await.status(), 200);

    // The first failure was written at once, the three after it (two wrong passwords and a
    // lock-out) as one entry when the window ended.
    let failures = crate::helpers::eventually(15, "the repeated failures written as one entry", || async {
        let page = audit(&app, &[("action", "login"), ("outcome", "failure")]).await;
        (page.events.len() == 2).then_some(page)
    })
    .await;
    assert!(failures.events[0].detail.starts_with("3 more failures"), "{:?}", failures.events[0]);
    assert!(failures.events[0].detail.contains("locked out"), "{:?}", failures.events[0]);
    assert_eq!(failures.events[1].detail, "invalid user name or password");
    for event in &failures.events {
        assert_eq!(
            (event.actor.as_str(), event.target.as_str(), event.source_ip.as_str()),
            ("anonymous", ADMIN, "127.0.0.1")
        );
    }
}

/// The attempt is counted before the password is verified: of 40 concurrent wrong passwords,
/// exactly the limit are checked, the rest refused at once.
#[tokio::test]
async fn concurrent_wrong_passwords_get_no_further_than_the_limit() {
    let app = spawn_app().await;
    let auditor = app.admin_session().await;
    let attempts = (0..40).map(|_| async { app.login_raw(ADMIN, "not the password").await.status().as_u16() });
    let statuses = futures::future::join_all(attempts).await;
    let checked = statuses.iter().filter(|status| **status == 401).count();
    let refused = statuses.iter().filter(|status| **status == 429).count();
    assert_eq!((checked, refused), (5, 35), "{statuses:?}");
    // The failures of one user name and address make at most two entries.
    let failures = app.audit(&auditor, &[("action", "login"), ("outcome", "failure")]).await;
    assert_eq!(failures.events.len(), 1);
}

/// What anonymous callers type is bounded before it reaches a password check or the audit log,
/// and their repeated failures are collapsed whatever user names they try.
#[tokio::test]
async fn anonymous_callers_cannot_grow_the_audit_log() {
    let app = spawn_app_with(crate::helpers::Db::Sqlite, |config| config.auth.login_max_failures = 2).await;
    let auditor = app.admin_session().await;
    let long_name = "x".repeat(15_000);
    assert_error(
        app.login_raw(&long_name, "a password").await,
        400,
        "invalid_parameter",
        "user name is longer than 64",
    )
    .await;
    assert_error(
        app.login_raw(ADMIN, &"p".repeat(1025)).await,
        400,
        "invalid_parameter",
        "password is longer than 1024",
    )
    .await;
    // 8 failures lock the address (4 × 2); then 100 more user names from it.
    for index in 0..108 {
        let status = app.login_raw(&format!("user{index}"), "a password").await.status();
        assert_eq!(status, if index < 8 { 401 } else { 429 }, "attempt {index}");
    }
    let failures = app.audit(&auditor, &[("action", "login"), ("outcome", "failure")]).await;
    assert_eq!(failures.events.len(), 9, "one entry per user name tried before the lock-out, one for all after it");
    assert!(failures.events.iter().all(|event| event.actor == "anonymous" && event.target.len() <= 256));
    assert_eq!(failures.events[0].target, "*");
}

#[tokio::test]
async fn changing_the_password_ends_every_other_session() {
    let app = spawn_app().await;
    let mine = app.user_session("pat", Role::Deployer).await;
    let elsewhere = app.login("pat", "pat has a long password").await;
    let change = |current: &str, new: &str| {
        app.with_session(Method::POST, paths::AUTH_PASSWORD, &mine)
            .json(&json!({"current_password": current, "new_password": new}))
    };
    assert_error(change("wrong", "a brand new password").send().await.unwrap(), 403, "forbidden", "current password")
        .await;
    assert_error(
        change("pat has a long password", "short").send().await.unwrap(),
        400,
        "invalid_parameter",
        "at least 12",
    )
    .await;
    let changed = change("pat has a long password", "a brand new password").send().await.unwrap();
    assert_eq!(changed.status(), 200);
    let renewed = TestSession { cookie: session_cookie(&changed).unwrap(), info: changed.json().await.unwrap() };
    assert_eq!(session_status(&app, &elsewhere).await, 401);
    assert_eq!(session_status(&app, &mine).await, 401, "even this session is replaced");
    assert_eq!(session_status(&app, &renewed).await, 200);
    assert_eq!(app.login_raw("pat", "pat has a long password").await.status(), 401);
    app.login("pat", "a brand new password").await;
    let events = audit(&app, &[("action", "password.change")]).await.events;
    assert_eq!(
        events.iter().map(|event| event.outcome.as_str()).collect::<Vec<_>>(),
        ["success", "failure", "failure"]
    );
}

#[tokio::test]
async fn personal_tokens_act_as_their_user_and_die_with_revocation_or_expiry() {
    let app = spawn_app().await;
    let viewer = app.user_session("tess", Role::Viewer).await;
    let created: CreatedToken = app
        .with_session(Method::POST, paths::AUTH_TOKENS, &viewer)
        .json(&json!({"name": "laptop", "expires_in_days": 30}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(created.token.starts_with("vgl_"));
    assert_eq!(created.info.owner.as_deref(), Some("tess"));
    let token = created.token.clone();
    let read = || app.client.get(app.url(paths::LOGS_SEARCH)).bearer_auth(&token).send();
    assert_eq!(read().await.unwrap().status(), 200);
    let admin_only = app.client.get(app.url(paths::USERS)).bearer_auth(&token).send().await.unwrap();
    assert_error(admin_only, 403, "forbidden", "role viewer").await;
    let account = app.client.get(app.url(paths::AUTH_SESSION)).bearer_auth(&token).send().await.unwrap();
    assert_error(account, 403, "forbidden", "browser session").await;

    // The listing shows the token's use, never its value.
    let listing =
        app.with_session(Method::GET, paths::AUTH_TOKENS, &viewer).send().await.unwrap().text().await.unwrap();
    assert!(!listing.contains(&token[20..]), "a token value was listed");
    let tokens: Vec<TokenInfo> = serde_json::from_str(&listing).unwrap();
    assert!(tokens[0].last_used_at.is_some() && tokens[0].expires_at.is_some());

    // Promoting the user promotes the token at once.
    let admin = app.admin_session().await;
    let id = app.state.database.user_by_username("tess").await.unwrap().unwrap().id;
    let promote = app.with_session(Method::PATCH, &paths::USER.replace("{id}", &id.to_string()), &admin);
    assert_eq!(promote.json(&json!({"role": "admin"})).send().await.unwrap().status(), 200);
    assert_eq!(app.client.get(app.url(paths::USERS)).bearer_auth(&token).send().await.unwrap().status(), 200);

    // Revoked: refused at once, though it was verified a moment ago.
    let revoke =
        app.with_session(Method::DELETE, &paths::AUTH_TOKEN.replace("{id}", &created.info.id.to_string()), &viewer);
    assert_eq!(revoke.send().await.unwrap().status(), 204);
    assert_error(read().await.unwrap(), 401, "unauthorized", "revoked").await;
    // Another user's token cannot be revoked through one's own account.
    let other = app.state.auth.create_token("other", None, Some(1), None).await.unwrap().1;
    let foreign = app.with_session(Method::DELETE, &paths::AUTH_TOKEN.replace("{id}", &other.id.to_string()), &viewer);
    assert_eq!(foreign.send().await.unwrap().status(), 404);

    // Expired: refused.
    let (expiring, row) =
        app.state.auth.create_token("short-lived", Some(vigil_proto::auth::Scope::Read), None, Some(1)).await.unwrap();
    app.state
        .database
        .execute_for_tests(&format!("UPDATE api_tokens SET expires_at = 1 WHERE id = {}", row.id))
        .await
        .unwrap();
    let expired = app.client.get(app.url(paths::LOGS_SEARCH)).bearer_auth(&expiring).send().await.unwrap();
    assert_eq!(expired.status(), 401);
}

#[tokio::test]
async fn administrators_manage_users_and_service_tokens_and_every_change_is_audited() {
    let app = spawn_app().await;
    let admin = app.admin_session().await;
    let create = |body: Value| app.with_session(Method::POST, paths::USERS, &admin).json(&body).send();
    let created: Value = create(json!({"username": "olga", "role": "deployer", "password": "olga's long password"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["role"], "deployer");
    assert_error(
        create(json!({"username": "olga", "role": "viewer"})).await.unwrap(),
        409,
        "conflict",
        "already exists",
    )
    .await;
    assert_error(
        create(json!({"username": "bad name!", "role": "viewer"})).await.unwrap(),
        400,
        "invalid_parameter",
        "user name",
    )
    .await;
    assert_error(
        create(json!({"username": "x", "role": "root"})).await.unwrap(),
        400,
        "invalid_json",
        "unknown variant",
    )
    .await;
    assert_error(
        create(json!({"username": "shorty", "role": "viewer", "password": "short"})).await.unwrap(),
        400,
        "invalid_parameter",
        "at least 12",
    )
    .await;

    // The last administrator can be neither demoted nor disabled.
    let admin_id = app.state.database.user_by_username(ADMIN).await.unwrap().unwrap().id;
    let demote = app.with_session(Method::PATCH, &paths::USER.replace("{id}", &admin_id.to_string()), &admin);
    assert_error(
        demote.json(&json!({"role": "viewer"})).send().await.unwrap(),
        409,
        "conflict",
        "last enabled administrator",
    )
    .await;

    let token: CreatedToken = app
        .with_session(Method::POST, paths::TOKENS, &admin)
        .json(&json!({"name": "ci", "scope": "deploy"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let no_scope =
        app.with_session(Method::POST, paths::TOKENS, &admin).json(&json!({"name": "x"})).send().await.unwrap();
    assert_error(no_scope, 400, "invalid_parameter", "needs a scope").await;
    let revoke = app.with_session(Method::DELETE, &paths::TOKEN.replace("{id}", &token.info.id.to_string()), &admin);
    assert_eq!(revoke.send().await.unwrap().status(), 204);
    let listed: Vec<TokenInfo> =
        app.with_session(Method::GET, paths::TOKENS, &admin).send().await.unwrap().json().await.unwrap();
    assert!(listed.iter().any(|listed| listed.name == "ci" && listed.revoked_at.is_some()));

    let logout = app.with_session(Method::POST, paths::AUTH_LOGOUT, &admin).send().await.unwrap();
    assert_eq!(logout.status(), 204);

    let events = audit(&app, &[]).await.events;
    let actions: Vec<(&str, &str, &str)> =
        events.iter().map(|event| (event.action.as_str(), event.target.as_str(), event.outcome.as_str())).collect();
    for expected in [
        ("login", "admin", "success"),
        ("user.create", "olga", "success"),
        ("user.create", "olga", "failure"),
        ("user.update", "admin", "failure"),
        ("token.create", "service:ci", "success"),
        ("token.revoke", "service:ci", "success"),
        ("logout", "admin", "success"),
    ] {
        assert!(actions.contains(&expected), "{expected:?} missing from {actions:?}");
    }
    let event = events.iter().find(|event| event.action == "token.create" && event.target == "service:ci").unwrap();
    assert_eq!(
        (event.actor.as_str(), event.source_ip.as_str(), event.detail.as_str()),
        ("admin", "127.0.0.1", "scope deploy")
    );
    // Filters and the cursor.
    let user_events = audit(&app, &[("action", "user."), ("limit", "2")]).await;
    assert_eq!(user_events.events.len(), 2);
    let next = user_events.next.unwrap().to_string();
    let rest = audit(&app, &[("action", "user."), ("before", &next)]).await;
    assert!(rest.events.iter().all(|event| event.action.starts_with("user.") && event.id < user_events.next.unwrap()));
    // The log cannot be changed through the API.
    let admin = app.admin_session().await;
    for method in [Method::PUT, Method::DELETE, Method::PATCH, Method::POST] {
        let response = app.with_session(method.clone(), paths::AUDIT, &admin).send().await.unwrap();
        assert_eq!(response.status(), 405, "{method} {}", paths::AUDIT);
    }
}

/// Sessions past their expiry are deleted by the server (at start, then every ten minutes),
/// not only when their cookie comes back.
#[tokio::test]
async fn expired_sessions_are_purged() {
    let app = spawn_app().await;
    let admin = app.state.database.user_by_username(ADMIN).await.unwrap().unwrap();
    let now = vigil_backend::store::now_millis();
    for (hash, expires_at_millis) in [("expired-session", now - 1), ("live-session", now + 3_600_000)] {
        app.state
            .database
            .insert_session(vigil_backend::store::NewSession {
                token_hash: hash,
                user_id: admin.id,
                csrf_token: "csrf",
                now_millis: now - 1000,
                expires_at_millis,
                source_ip: "",
                user_agent: "",
            })
            .await
            .unwrap();
    }
    let data = app.stop_keeping_data().await;
    let app = crate::helpers::restart_app(data.path()).await;
    crate::helpers::eventually(10, "the expired session purged", || async {
        app.state.database.session_by_hash("expired-session").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(app.state.database.session_by_hash("live-session").await.unwrap().is_some());
}

/// A personal token is a credential of its own: it survives a password change or reset (it
/// is revoked on the Account page, or stops with its user when they are disabled).
#[tokio::test]
async fn personal_tokens_survive_a_password_reset_but_not_a_disabled_user() {
    let app = spawn_app().await;
    let admin = app.admin_session().await;
    let pat = app.user_session("pat", Role::Deployer).await;
    let created: CreatedToken = app
        .with_session(Method::POST, paths::AUTH_TOKENS, &pat)
        .json(&json!({"name": "laptop"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let works = |token: String| {
        let request = app.client.get(app.url(paths::LOGS_SEARCH)).bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let id = app.state.database.user_by_username("pat").await.unwrap().unwrap().id;
    let user_path = paths::USER.replace("{id}", &id.to_string());
    let reset = app
        .with_session(Method::PATCH, &user_path, &admin)
        .json(&json!({"password": "a brand new long password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    assert_eq!(session_status(&app, &pat).await, 401, "the reset ended pat's sessions");
    assert_eq!(works(created.token.clone()).await, 200, "the personal token still works");
    let disable = app.with_session(Method::PATCH, &user_path, &admin).json(&json!({"disabled": true})).send().await;
    assert_eq!(disable.unwrap().status(), 200);
    assert_eq!(works(created.token).await, 401);
}

/// Every answer, pages and API alike, forbids framing by other sites, content sniffing and
/// referrers to other origins.
#[tokio::test]
async fn answers_carry_the_security_headers() {
    let app = spawn_app().await;
    for path in [paths::LOGIN_PAGE, paths::HEALTHZ, "/no/such/page"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        let header =
            |name: &str| response.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or_default();
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("content-security-policy"), "frame-ancestors 'none'", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "same-origin", "{path}");
    }
}

/// After signing in with the form, the browser goes only where `next` names a path of this
/// site: `/%09/evil.example` came back as `Location: /\t/evil.example`, which browsers read as
/// `//evil.example`.
#[tokio::test]
async fn the_login_form_sends_browsers_only_to_paths_of_this_site() {
    let app = spawn_app().await;
    for (next, location) in [
        ("%2Flogs%3Fq%3Dx", "/logs?q=x"),
        ("%2F%09%2Fevil.example", "/"),
        ("%2F%2Fevil.example", "/"),
        ("%2F%5Cevil.example", "/"),
        ("https%3A%2F%2Fevil.example", "/"),
        ("%2F%0A%2Fevil.example", "/"),
    ] {
        let response = app
            .client
            .post(app.url(paths::AUTH_LOGIN))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("username={ADMIN}&password={}&next={next}", ADMIN_PASSWORD.replace(' ', "+")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{next}");
        assert_eq!(response.headers()["location"], location, "{next}");
    }
}

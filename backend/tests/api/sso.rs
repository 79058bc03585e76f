//! Single sign-on end to end against the stand-in provider: the authorization-code flow with
//! PKCE, groups mapped to roles, and the attacks it must refuse.

use reqwest::Method;
use vigil_backend::config::OidcConfig;
use vigil_backend::config::Secret;
use vigil_proto::auth::{Role, SessionInfo, User};
use vigil_proto::paths;

use crate::helpers::{Db, TestApp, TestSession, free_port, session_cookie, spawn_app_with};
use crate::oidc_provider::{CLIENT_ID, CLIENT_SECRET, ProviderUser, Spoil, TestProvider};

async fn start() -> (TestApp, TestProvider) {
    let provider = TestProvider::start().await;
    let port = free_port();
    let issuer = provider.issuer().to_owned();
    let app = spawn_app_with(Db::Sqlite, |config| {
        config.listen = format!("127.0.0.1:{port}").parse().unwrap();
        config.auth.oidc = Some(OidcConfig {
            issuer_url: issuer,
            client_id: CLIENT_ID.to_owned(),
            client_secret: Some(Secret::new(CLIENT_SECRET)),
            redirect_url: format!("http://127.0.0.1:{port}{}", paths::AUTH_OIDC_CALLBACK),
            scopes: vec!["openid".to_owned(), "profile".to_owned(), "groups".to_owned()],
            groups_claim: "groups".to_owned(),
            username_claim: "preferred_username".to_owned(),
            admin_groups: vec!["sre-leads".to_owned()],
            deployer_groups: vec!["sre".to_owned()],
            viewer_groups: vec!["engineering".to_owned()],
            default_role: None,
            auto_create_users: true,
            label: "Sign in with Example ID".to_owned(),
        });
    })
    .await;
    (app, provider)
}

fn location(response: &reqwest::Response) -> String {
    response.headers().get("location").and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned()
}

fn cookie_value(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| value.split(';').next()?.trim().strip_prefix(&format!("{name}=")).map(str::to_owned))
        .next()
}

/// The browser's side: start at Vigil, go through the provider, come back to the callback.
/// Returns the callback's URL, the state cookie, and the callback's answer.
async fn sign_in(app: &TestApp) -> (String, String, reqwest::Response) {
    let begin = app.client.get(app.url(&format!("{}?next=/logs", paths::AUTH_OIDC_LOGIN))).send().await.unwrap();
    assert_eq!(begin.status(), 303);
    let authorize = location(&begin);
    assert!(authorize.contains("code_challenge_method=S256") && authorize.contains("nonce="), "{authorize}");
    let state_cookie = cookie_value(&begin, "vigil_oidc_state").expect("the state is kept in the browser");
    let approved = app.client.get(&authorize).send().await.unwrap();
    assert_eq!(approved.status(), 302, "{}", approved.text().await.unwrap_or_default());
    let callback = location(&approved);
    let answer =
        app.client.get(&callback).header("cookie", format!("vigil_oidc_state={state_cookie}")).send().await.unwrap();
    (callback, state_cookie, answer)
}

fn refused_with(answer: &reqwest::Response, reason: &str) {
    assert_eq!(answer.status(), 303);
    let location = location(answer);
    assert!(location.starts_with("/login?error="), "{location}");
    let message = url::form_urlencoded::parse(location.split_once('?').unwrap().1.as_bytes())
        .find(|(name, _)| name == "error")
        .map(|(_, value)| value.into_owned())
        .unwrap();
    assert!(message.contains(reason), "{message:?} does not contain {reason:?}");
    assert!(session_cookie(answer).is_none_or(|cookie| cookie.is_empty()), "no session for a refused sign-in");
}

#[tokio::test]
async fn signing_in_through_the_provider_creates_the_user_with_the_role_of_their_groups() {
    let (app, provider) = start().await;
    // The login page offers the provider.
    let page = app.client.get(app.url(paths::LOGIN_PAGE)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Sign in with Example ID"), "the login page shows the single sign-on button");

    let (_, _, answer) = sign_in(&app).await;
    assert_eq!(answer.status(), 303);
    assert_eq!(location(&answer), "/logs", "back where the user was going");
    let cookie = session_cookie(&answer).expect("a session");
    assert_eq!(provider.token_requests(), 1);
    let session = TestSession {
        cookie: cookie.clone(),
        info: SessionInfo {
            username: String::new(),
            display_name: String::new(),
            role: Role::Viewer,
            csrf_token: String::new(),
            expires_at: vigil_proto::Timestamp::from_unix_nanos(0).unwrap(),
        },
    };
    let info: SessionInfo =
        app.with_session(Method::GET, paths::AUTH_SESSION, &session).send().await.unwrap().json().await.unwrap();
    assert_eq!((info.username.as_str(), info.display_name.as_str(), info.role), ("jane", "Jane Doe", Role::Viewer));

    // The next sign-in follows the groups the provider reports now.
    provider.sign_in_as(ProviderUser {
        subject: "248289761001".to_owned(),
        username: "jane".to_owned(),
        name: "Jane Doe".to_owned(),
        groups: vec!["engineering".to_owned(), "sre-leads".to_owned()],
    });
    let (_, _, answer) = sign_in(&app).await;
    let admin_session = TestSession { cookie: session_cookie(&answer).unwrap(), ..session };
    let users: Vec<User> =
        app.with_session(Method::GET, paths::USERS, &admin_session).send().await.unwrap().json().await.unwrap();
    let jane = users.iter().find(|user| user.username == "jane").unwrap();
    assert!(jane.sso && !jane.has_password);
    assert_eq!(jane.role, Role::Admin);
    assert_eq!(users.iter().filter(|user| user.username == "jane").count(), 1, "the same user, found by subject");

    // A password sign-in is impossible for a single-sign-on user.
    assert_eq!(app.login_raw("jane", "anything at all").await.status(), 401);

    let audit = app.with_session(Method::GET, paths::AUDIT, &admin_session).query(&[("action", "login")]).send().await;
    let audit: vigil_proto::auth::AuditPage = audit.unwrap().json().await.unwrap();
    assert!(audit.events.iter().any(|event| event.actor == "jane" && event.detail.contains("single sign-on")));
}

#[tokio::test]
async fn tampered_misaddressed_expired_and_foreign_key_tokens_are_refused() {
    let (app, provider) = start().await;
    for spoil in [Spoil::Signature, Spoil::Audience, Spoil::Expired, Spoil::UnknownKey] {
        provider.spoil_next_token(spoil);
        let (_, _, answer) = sign_in(&app).await;
        refused_with(&answer, "the ID token is invalid");
    }
    assert!(app.state.database.user_by_username("jane").await.unwrap().is_none(), "no user was created");
    let admin = app.admin_session().await;
    let audit = app.with_session(Method::GET, paths::AUDIT, &admin).query(&[("outcome", "failure")]).send().await;
    let audit: vigil_proto::auth::AuditPage = audit.unwrap().json().await.unwrap();
    // Failures from one address are collapsed: the first now, the other three in one entry
    // when the window ends.
    let refusals: Vec<_> = audit.events.iter().filter(|event| event.target == "sso").collect();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(refusals[0].detail.contains("the ID token is invalid"), "{refusals:?}");
}

#[tokio::test]
async fn a_replayed_or_foreign_state_is_refused() {
    let (app, provider) = start().await;
    let (callback, state_cookie, answer) = sign_in(&app).await;
    assert!(session_cookie(&answer).is_some());
    // The same callback again: its state was used.
    let replay = app.client.get(&callback).header("cookie", format!("vigil_oidc_state={state_cookie}")).send().await;
    refused_with(&replay.unwrap(), "already used sign-in state");

    // A callback completed in a browser that did not start the sign-in (no state cookie).
    let begin = app.client.get(app.url(paths::AUTH_OIDC_LOGIN)).send().await.unwrap();
    let approved = app.client.get(location(&begin)).send().await.unwrap();
    let elsewhere = app.client.get(location(&approved)).send().await.unwrap();
    refused_with(&elsewhere, "another browser");
    // A made-up state.
    let forged = app.client.get(app.url(&format!("{}?code=x&state=forged", paths::AUTH_OIDC_CALLBACK))).send().await;
    refused_with(&forged.unwrap(), "no sign-in is in progress in this browser");
    // A made-up state with a cookie this server did not seal.
    let forged = app
        .client
        .get(app.url(&format!("{}?code=x&state=forged", paths::AUTH_OIDC_CALLBACK)))
        .header("cookie", "vigil_oidc_state=v1:AAAA")
        .send()
        .await;
    refused_with(&forged.unwrap(), "no sign-in is in progress in this browser");
    // The state of another sign-in of this browser.
    let begin = app.client.get(app.url(paths::AUTH_OIDC_LOGIN)).send().await.unwrap();
    let other_cookie = cookie_value(&begin, "vigil_oidc_state").unwrap();
    let forged = app
        .client
        .get(app.url(&format!("{}?code=x&state=forged", paths::AUTH_OIDC_CALLBACK)))
        .header("cookie", format!("vigil_oidc_state={other_cookie}"))
        .send()
        .await;
    refused_with(&forged.unwrap(), "does not match the sign-in this browser started");
    // The provider's own refusal is passed on.
    let denied = app
        .client
        .get(app.url(&format!("{}?error=access_denied&error_description=user+cancelled", paths::AUTH_OIDC_CALLBACK)))
        .send()
        .await;
    refused_with(&denied.unwrap(), "access_denied");
    assert_eq!(provider.token_requests(), 1, "no code was exchanged for a refused state");
}

#[tokio::test]
async fn users_without_a_mapped_group_or_with_a_taken_name_are_refused() {
    let (app, provider) = start().await;
    provider.sign_in_as(ProviderUser {
        subject: "1".to_owned(),
        username: "sam".to_owned(),
        name: "Sam".to_owned(),
        groups: vec!["sales".to_owned()],
    });
    let (_, _, answer) = sign_in(&app).await;
    refused_with(&answer, "none of your groups");
    // The provider's user is named like the local administrator: never merged into it.
    provider.sign_in_as(ProviderUser {
        subject: "2".to_owned(),
        username: "admin".to_owned(),
        name: "Mallory".to_owned(),
        groups: vec!["sre-leads".to_owned()],
    });
    let (_, _, answer) = sign_in(&app).await;
    refused_with(&answer, "a local user named \"admin\" exists");
}

/// Anonymous callers can begin as many sign-ins as they like: nothing is kept on the server
/// per sign-in (it is sealed into the browser's cookie), so a flood of them keeps no real
/// user out.
#[tokio::test]
async fn a_flood_of_begun_sign_ins_blocks_no_one() {
    use futures::StreamExt;
    let (app, provider) = start().await;
    let begun = futures::stream::iter(0..10_050)
        .map(|_| {
            let request = app.client.get(app.url(paths::AUTH_OIDC_LOGIN));
            async move { request.send().await.map(|response| response.status().as_u16()).unwrap_or(0) }
        })
        .buffer_unordered(32)
        .filter(|status| std::future::ready(*status == 303))
        .count()
        .await;
    assert_eq!(begun, 10_050);
    provider.sign_in_as(ProviderUser {
        subject: "1001".to_owned(),
        username: "ivan".to_owned(),
        name: "Ivan".to_owned(),
        groups: vec!["engineering".to_owned()],
    });
    let (_, _, answer) = sign_in(&app).await;
    assert_eq!(answer.status(), 303);
    assert!(session_cookie(&answer).is_some(), "a real user still signs in");
}

/// A callback's `error` is the caller's text: bounded, and its repetitions from one address
/// make one audit entry now (and one for the rest when the window ends).
#[tokio::test]
async fn refusals_reported_by_anyone_are_bounded_and_collapsed_in_the_audit_log() {
    let (app, _provider) = start().await;
    let admin = app.admin_session().await;
    let text = "A".repeat(15_000);
    for _ in 0..50 {
        let url = app.url(&format!("{}?error=access_denied&error_description={text}", paths::AUTH_OIDC_CALLBACK));
        let answer = app.client.get(url).send().await.unwrap();
        refused_with(&answer, "access_denied");
        assert!(location(&answer).len() < 1200, "the reason shown is bounded");
    }
    let page = app.audit(&admin, &[("action", "login"), ("outcome", "failure")]).await;
    assert_eq!(page.events.len(), 1, "{:?}", page.events);
    let event = &page.events[0];
    assert_eq!((event.actor.as_str(), event.target.as_str()), ("anonymous", "sso"));
    assert!(event.detail.chars().count() <= 300, "{} characters kept", event.detail.len());
}

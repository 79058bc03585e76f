//! The SQL store, on SQLite and on PostgreSQL alike.

use vigil_backend::store::{AuditFilter, Database, NewAuditEvent, NewSession, NewTokenRow, NewUserRow, StoreError};

use crate::postgres::TestPostgres;

async fn round_trip(database: Database) {
    // users
    let alice = database
        .insert_user(NewUserRow {
            username: "alice",
            display_name: "Alice",
            password_hash: Some("$argon2id$x"),
            role: "viewer",
            sso: None,
        })
        .await
        .unwrap();
    assert_eq!(alice.role, "viewer");
    assert!(!alice.disabled);
    let duplicate = database
        .insert_user(NewUserRow { username: "alice", display_name: "", password_hash: None, role: "admin", sso: None })
        .await;
    assert!(matches!(duplicate, Err(StoreError::Conflict(_))), "{duplicate:?}");
    let bad_role = database
        .insert_user(NewUserRow { username: "root", display_name: "", password_hash: None, role: "root", sso: None })
        .await;
    assert!(bad_role.is_err(), "the schema refuses unknown roles");
    let updated = database.update_user(alice.id, None, Some("deployer"), Some(true)).await.unwrap().unwrap();
    assert_eq!((updated.role.as_str(), updated.disabled, updated.display_name.as_str()), ("deployer", true, "Alice"));

    // sessions end with a password change
    let session = database
        .insert_session(NewSession {
            token_hash: "hash-1",
            user_id: alice.id,
            csrf_token: "csrf",
            now_millis: 1_000,
            expires_at_millis: 10_000,
            source_ip: "127.0.0.1",
            user_agent: "test",
        })
        .await
        .unwrap();
    assert_eq!(database.session_by_hash("hash-1").await.unwrap(), Some(session));
    database.set_password(alice.id, "$argon2id$y").await.unwrap();
    assert_eq!(database.session_by_hash("hash-1").await.unwrap(), None);

    // tokens: service names are unique among live tokens; revoked names may be reused
    let token = NewTokenRow {
        public_id: "0011223344556677",
        name: "host-a",
        scope: Some("ingest"),
        user_id: None,
        secret_hash: "$argon2id$z",
        expires_at_millis: None,
    };
    let created = database.insert_token(token).await.unwrap();
    let again = database.insert_token(NewTokenRow { public_id: "8899aabbccddeeff", ..token }).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert!(database.revoke_token(created.id).await.unwrap());
    assert!(!database.revoke_token(created.id).await.unwrap(), "revoked once");
    database.insert_token(NewTokenRow { public_id: "8899aabbccddeeff", ..token }).await.unwrap();
    let personal = database
        .insert_token(NewTokenRow {
            public_id: "1111111111111111",
            name: "laptop",
            scope: None,
            user_id: Some(alice.id),
            ..token
        })
        .await
        .unwrap();
    assert_eq!((personal.kind.as_str(), personal.owner.as_deref()), ("personal", Some("alice")));
    database.touch_token(personal.id, 2_000).await.unwrap();
    database.touch_token(personal.id, 1_000).await.unwrap(); // never moves backwards
    let mine = database.tokens(Some(alice.id)).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].last_used_at_millis, Some(2_000));
    assert_eq!(database.tokens(None).await.unwrap().len(), 3);
    let bad_scope = database
        .insert_token(NewTokenRow { public_id: "2222222222222222", name: "bad", scope: Some("root"), ..token })
        .await;
    assert!(bad_scope.is_err(), "the schema refuses unknown scopes");

    // the audit log is append-only
    for (actor, action) in [("alice", "login"), ("admin", "user.create"), ("admin", "user.update")] {
        let event =
            NewAuditEvent { actor, source_ip: "127.0.0.1", action, target: "alice", outcome: "success", detail: "" };
        database.append_audit(event).await.unwrap();
    }
    let all = database.audit_events(&AuditFilter { limit: 10, ..AuditFilter::default() }).await.unwrap();
    assert_eq!(
        all.iter().map(|event| event.action.as_str()).collect::<Vec<_>>(),
        ["user.update", "user.create", "login"]
    );
    let users =
        database.audit_events(&AuditFilter { action: Some("user."), limit: 10, ..AuditFilter::default() }).await;
    assert_eq!(users.unwrap().len(), 2);
    let by_alice =
        database.audit_events(&AuditFilter { actor: Some("alice"), limit: 10, ..AuditFilter::default() }).await;
    assert_eq!(by_alice.unwrap().len(), 1);
    let older = AuditFilter { before_id: Some(all[0].id), limit: 1, ..AuditFilter::default() };
    assert_eq!(database.audit_events(&older).await.unwrap()[0].action, "user.create");
    let tamper = sqlx_execute(&database, "UPDATE audit_events SET actor = 'mallory'").await;
    assert!(tamper.is_err(), "audit events cannot be changed");
    let erase = sqlx_execute(&database, "DELETE FROM audit_events").await;
    assert!(erase.is_err(), "audit events cannot be deleted");
    assert_eq!(database.audit_events(&AuditFilter { limit: 10, ..AuditFilter::default() }).await.unwrap().len(), 3);

    // Agents: the first heartbeat registers and binds the host to its caller, later ones
    // from that caller replace the report, others' are refused unless they may take over.
    use vigil_backend::store::Heartbeat;
    let never = async |_: &str| false;
    let Heartbeat::Registered(first) =
        database.record_heartbeat("web-1", r#"{"n":1}"#, "token:1", never).await.unwrap()
    else {
        panic!("the first heartbeat registers")
    };
    assert_eq!(first.first_seen_millis, first.last_seen_millis);
    assert_eq!(first.registered_by, "token:1");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let Heartbeat::Recorded(second) = database.record_heartbeat("web-1", r#"{"n":2}"#, "token:1", never).await.unwrap()
    else {
        panic!("a later heartbeat is recorded")
    };
    assert_eq!(second.first_seen_millis, first.first_seen_millis);
    assert!(second.last_seen_millis > first.last_seen_millis);
    let foreign = database.record_heartbeat("web-1", r#"{"n":3}"#, "token:2", never).await.unwrap();
    assert!(matches!(foreign, Heartbeat::BoundElsewhere(ref row) if row.report == r#"{"n":2}"#), "{foreign:?}");
    let taken = database.record_heartbeat("web-1", r#"{"n":4}"#, "token:2", async |owner: &str| owner == "token:1");
    assert!(matches!(taken.await.unwrap(), Heartbeat::Recorded(ref row) if row.registered_by == "token:2"));
    database.record_heartbeat("db-1", "{}", "token:1", never).await.unwrap();
    let agents = database.agents().await.unwrap();
    assert_eq!(agents.iter().map(|agent| agent.host.as_str()).collect::<Vec<_>>(), ["db-1", "web-1"]);
    assert_eq!(agents[1].report, r#"{"n":4}"#);
    database.ping().await.unwrap();
}

async fn sqlx_execute(database: &Database, statement: &str) -> Result<(), StoreError> {
    database.execute_for_tests(statement).await
}

#[tokio::test]
async fn the_store_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("vigil.db").display());
    let database = Database::connect(&url, 2).await.unwrap();
    round_trip(database).await;
    // Migrations run once: connecting again finds the schema in place.
    let again = Database::connect(&url, 2).await.unwrap();
    assert_eq!(again.users().await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_store_on_postgresql() {
    let url = TestPostgres::shared().create_database().await;
    let database = Database::connect(&url, 2).await.unwrap();
    assert_eq!(database.dialect(), vigil_backend::store::Dialect::Postgres);
    round_trip(database).await;
    let again = Database::connect(&url, 2).await.unwrap();
    assert_eq!(again.users().await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error() {
    let port = crate::helpers::free_port();
    let result = Database::connect(&format!("postgres://postgres@127.0.0.1:{port}/none"), 1).await;
    assert!(matches!(result, Err(StoreError::Connect(_))));
}

/// The SQLite database (and its write-ahead log) can be read by its owner only, also when an
/// earlier version left it readable by everyone.
#[tokio::test]
async fn the_sqlite_files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let app = crate::helpers::spawn_app().await;
    app.post_logs(&[crate::helpers::record("2026-11-29T08:00:00Z", "api", "info", "x")]).await;
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let database = app.data_dir.join("vigil.db");
    assert_eq!(mode(&database), 0o600);
    let wal = app.data_dir.join("vigil.db-wal");
    if wal.exists() {
        assert_eq!(mode(&wal), 0o600);
    }
    std::fs::set_permissions(&database, std::fs::Permissions::from_mode(0o644)).unwrap();
    let data = app.stop_keeping_data().await;
    let _app = crate::helpers::restart_app(data.path()).await;
    assert_eq!(mode(&data.path().join("vigil.db")), 0o600);
}

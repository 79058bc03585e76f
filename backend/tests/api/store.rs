//! The SQL store, on SQLite and on PostgreSQL alike.

use vigil_backend::auth::hash_token;
use vigil_backend::store::{Database, NewToken, StoreError};

use crate::postgres::TestPostgres;

async fn tokens_round_trip(database: Database) {
    let hash = hash_token("vgl_example");
    let created = database.insert_token(NewToken { name: "host-a", scope: "ingest", token_hash: &hash }).await.unwrap();
    assert_eq!(created.name, "host-a");

    let duplicate =
        database.insert_token(NewToken { name: "host-a", scope: "read", token_hash: &hash_token("other") }).await;
    assert!(matches!(duplicate, Err(StoreError::Conflict(_))), "{duplicate:?}");

    let found = database.token_by_hash(&hash).await.unwrap().expect("found by hash");
    assert_eq!(found, created);
    assert!(database.token_by_hash(&hash_token("unknown")).await.unwrap().is_none());

    database.touch_token(created.id, 2_000).await.unwrap();
    database.touch_token(created.id, 1_000).await.unwrap(); // never moves backwards
    let listed = database.tokens().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_used_at_millis, Some(2_000));

    // A scope outside the enumeration is refused by the schema itself.
    let bad = database.insert_token(NewToken { name: "bad", scope: "root", token_hash: &hash_token("bad") }).await;
    assert!(bad.is_err());
    database.ping().await.unwrap();
}

#[tokio::test]
async fn tokens_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("vigil.db").display());
    let database = Database::connect(&url, 2).await.unwrap();
    tokens_round_trip(database).await;
    // Migrations run once: connecting again finds the schema in place.
    let again = Database::connect(&url, 2).await.unwrap();
    assert_eq!(again.tokens().await.unwrap().len(), 1);
}

#[tokio::test]
async fn tokens_on_postgresql() {
    let url = TestPostgres::shared().create_database().await;
    let database = Database::connect(&url, 2).await.unwrap();
    assert_eq!(database.dialect(), vigil_backend::store::Dialect::Postgres);
    tokens_round_trip(database).await;
    let again = Database::connect(&url, 2).await.unwrap();
    assert_eq!(again.tokens().await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error() {
    let port = crate::helpers::free_port();
    let result = Database::connect(&format!("postgres://postgres@127.0.0.1:{port}/none"), 1).await;
    assert!(matches!(result, Err(StoreError::Connect(_))));
}

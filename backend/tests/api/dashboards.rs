//! Dashboards on SQLite and PostgreSQL: create, read, update with versions, duplicate,
//! delete, export and import, and who may change them.

use reqwest::Method;
use serde_json::{Value, json};
use vigil_proto::auth::Role;
use vigil_proto::dashboards::{Dashboard, DashboardExport, DashboardSummary};
use vigil_proto::paths;

use crate::helpers::{Db, TestApp, TestSession, assert_error, spawn_app_with};

fn service_dashboard() -> Value {
    json!({
        "title": "Service: shop",
        "tags": ["service", "shop"],
        "variables": [{"name": "instance", "label": "instance", "selector": "up{job=\"shop\"}", "multi": true}],
        "range": "6h",
        "refresh_seconds": 30,
        "rows": [
            {"title": "Requests", "panels": [
                {"title": "Request rate", "type": "time_series", "width": 8, "unit": "reqps",
                 "queries": [{"expr": "sum by (code) (rate(http_requests_total{job=\"shop\",instance=~\"$instance\"}[5m]))", "legend": "{{code}}"}],
                 "stacked": true},
                {"title": "Error ratio", "type": "stat", "width": 4, "unit": "percent",
                 "query": "sum(rate(http_requests_total{job=\"shop\",code=~\"5..\"}[5m])) / sum(rate(http_requests_total{job=\"shop\"}[5m]))",
                 "thresholds": [{"value": 0.0, "color": "green"}, {"value": 0.05, "color": "red"}]}
            ]},
            {"title": "Logs", "panels": [{"title": "Errors", "type": "logs", "width": 12, "query": "service:shop AND level:error"}]}
        ]
    })
}

async fn crud(db: Db) {
    let app = spawn_app_with(db, |_| {}).await;
    let deployer = app.user_session("dee", Role::Deployer).await;
    let viewer = app.user_session("vic", Role::Viewer).await;
    let request = |method: Method, path: &str, session: &TestSession| app.with_session(method, path, session);

    let created = request(Method::POST, paths::DASHBOARDS, &deployer).json(&service_dashboard()).send().await.unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap_or_default());
    let created: Dashboard = created.json().await.unwrap();
    assert_eq!((created.uid.as_str(), created.version, created.updated_by.as_str()), ("service-shop", 1, "dee"));
    assert_eq!(created.spec.rows[0].panels.len(), 2);
    let one = paths::DASHBOARD.replace("{uid}", "service-shop");

    // Everyone reads; viewers change nothing.
    let read: Dashboard = request(Method::GET, &one, &viewer).send().await.unwrap().json().await.unwrap();
    assert_eq!(read, created);
    let list: Vec<DashboardSummary> =
        request(Method::GET, paths::DASHBOARDS, &viewer).send().await.unwrap().json().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].tags, ["service", "shop"]);
    assert_eq!(request(Method::DELETE, &one, &viewer).send().await.unwrap().status(), 403);

    // Updates name the version they were made from; a stale one is refused.
    let mut changed = service_dashboard();
    changed["title"] = json!("Service: shop (edited)");
    changed["version"] = json!(1);
    let updated: Dashboard =
        request(Method::PUT, &one, &deployer).json(&changed).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        (updated.version, updated.spec.title.as_str(), updated.uid.as_str()),
        (2, "Service: shop (edited)", "service-shop")
    );
    assert_error(
        request(Method::PUT, &one, &deployer).json(&changed).send().await.unwrap(),
        409,
        "conflict",
        "it is at version 2",
    )
    .await;

    // Duplicate, then the same title again gets the next free uid.
    let copy: Dashboard =
        request(Method::POST, &paths::DASHBOARD_DUPLICATE.replace("{uid}", "service-shop"), &deployer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(
        (copy.uid.as_str(), copy.spec.title.as_str()),
        ("service-shop-edited-copy", "Service: shop (edited) (copy)")
    );
    let again: Dashboard = request(Method::POST, paths::DASHBOARDS, &deployer)
        .json(&service_dashboard())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again.uid, "service-shop-2");

    // Export, delete, import: the same dashboard back; importing over it needs overwrite.
    let export: DashboardExport =
        request(Method::GET, &paths::DASHBOARD_EXPORT.replace("{uid}", "service-shop"), &viewer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!((export.schema_version, export.uid.as_str()), (1, "service-shop"));
    assert_eq!(request(Method::DELETE, &one, &deployer).send().await.unwrap().status(), 204);
    assert_eq!(request(Method::GET, &one, &viewer).send().await.unwrap().status(), 404);
    let imported = request(Method::POST, paths::DASHBOARDS_IMPORT, &deployer).json(&export).send().await.unwrap();
    assert_eq!(imported.status(), 201);
    let imported: Dashboard = imported.json().await.unwrap();
    assert_eq!(imported.spec, updated.spec);
    assert_error(
        request(Method::POST, paths::DASHBOARDS_IMPORT, &deployer).json(&export).send().await.unwrap(),
        409,
        "conflict",
        "already exists",
    )
    .await;
    let overwritten = request(Method::POST, &format!("{}?overwrite=true", paths::DASHBOARDS_IMPORT), &deployer)
        .json(&export)
        .send()
        .await;
    assert_eq!(overwritten.unwrap().status(), 200);

    // Every change is in the audit log.
    let admin = app.admin_session().await;
    let audit: vigil_proto::auth::AuditPage = request(Method::GET, paths::AUDIT, &admin)
        .query(&[("action", "dashboard.")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = audit.events.iter().map(|event| event.action.as_str()).collect();
    for action in ["dashboard.create", "dashboard.update", "dashboard.delete", "dashboard.import"] {
        assert!(actions.contains(&action), "{actions:?}");
    }
    assert!(audit.events.iter().all(|event| event.actor == "dee"));
}

#[tokio::test]
async fn dashboards_on_sqlite() {
    crud(Db::Sqlite).await;
}

#[tokio::test]
async fn dashboards_on_postgresql() {
    crud(Db::Postgres).await;
}

#[tokio::test]
async fn invalid_dashboards_are_refused_with_the_reason() {
    let app: TestApp = spawn_app_with(Db::Sqlite, |_| {}).await;
    let admin = app.admin_session().await;
    let post = |body: Value| app.with_session(Method::POST, paths::DASHBOARDS, &admin).json(&body).send();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = service_dashboard();
        change(&mut body);
        body
    };
    assert_error(post(with(&|body| body["title"] = json!(""))).await.unwrap(), 400, "invalid_parameter", "title").await;
    assert_error(
        post(with(&|body| body["range"] = json!("forever"))).await.unwrap(),
        400,
        "invalid_parameter",
        "range",
    )
    .await;
    assert_error(
        post(with(&|body| body["rows"][0]["panels"][0]["width"] = json!(13))).await.unwrap(),
        400,
        "invalid_parameter",
        "row 0, panel 0: width",
    )
    .await;
    assert_error(
        post(with(&|body| body["rows"][0]["panels"][1]["query"] = json!(" "))).await.unwrap(),
        400,
        "invalid_parameter",
        "row 0, panel 1",
    )
    .await;
    assert_error(
        post(with(&|body| body["variables"][0]["name"] = json!("bad name"))).await.unwrap(),
        400,
        "invalid_parameter",
        "variable",
    )
    .await;
    assert_error(
        post(with(&|body| body["rows"][0]["panels"][0]["type"] = json!("pie"))).await.unwrap(),
        400,
        "invalid_json",
        "unknown variant",
    )
    .await;
    assert_error(post(with(&|body| body["uid"] = json!("import"))).await.unwrap(), 400, "invalid_parameter", "uid")
        .await;
    let wrong_schema = json!({"schema_version": 9, "uid": "x", "dashboard": service_dashboard()});
    let import =
        app.with_session(Method::POST, paths::DASHBOARDS_IMPORT, &admin).json(&wrong_schema).send().await.unwrap();
    assert_error(import, 400, "invalid_parameter", "schema_version 9").await;
}

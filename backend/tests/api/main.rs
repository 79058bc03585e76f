//! The backend's integration tests: real servers on loopback (the backend itself, PostgreSQL,
//! Prometheus, Buildbot, Debian's webhook, the agents, Chromium), nothing mocked that can run
//! here; the CI/CD systems that cannot (Jenkins, GitLab, CircleCI, GitHub, Argo CD, a
//! Kubernetes API server) are loopback stand-ins of their documented APIs (`ci_standins_*`).

mod browser;
#[path = "../support/buildbot.rs"]
mod buildbot;
#[path = "../support/ci_standins_a.rs"]
mod ci_standins_a;
#[path = "../support/ci_standins_b.rs"]
mod ci_standins_b;
mod helpers;
mod oidc_provider;
mod postgres;
#[path = "../support/prometheus.rs"]
mod prometheus;
#[path = "../support/server.rs"]
mod server;
#[path = "../support/smtp_sink.rs"]
mod smtp_sink;
#[path = "../support/webhook_tool.rs"]
mod webhook_tool;

mod access;
mod agent;
mod alertmanager;
mod alerts;
mod alerts_page;
mod auth;
mod clients;
mod dashboards;
mod elasticsearch;
mod end_to_end;
mod health;
mod heartbeats;
mod ingest;
mod loki;
mod metrics;
mod otlp;
mod pages;
mod restart;
mod rollout_agent;
mod rollout_comparison;
mod rollout_providers_a;
mod rollout_providers_b;
mod rollouts;
mod search;
mod secrets;
mod sessions;
mod sso;
mod store;
mod tail;
mod tls;

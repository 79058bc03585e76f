//! The Vigil backend: an axum server that ingests logs into a tantivy store, answers searches,
//! authenticates users (sessions) and machines (API tokens), keeps control-plane state in SQL, and serves the
//! Leptos UI (server-rendered, then hydrated by the wasm bundle).
//!
//! `main.rs` is a thin command line over this library; tests drive the same
//! [`startup::Application`].

pub mod accounts;
pub mod agents;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod config;
pub(crate) mod dashboards;
pub mod error;
pub(crate) mod http;
pub mod ingest;
pub mod integrations;
pub(crate) mod prometheus;
pub mod rollouts;
pub(crate) mod routes;
pub(crate) mod search;
pub mod secrets;
pub(crate) mod sessions;
pub mod startup;
pub mod state;
pub mod store;
pub mod tail;
pub mod telemetry;
pub mod ui;

//! Vigil's web UI: the Leptos application, its pages and its server functions.
//!
//! Built twice: with `ssr` into the backend, which renders pages on the server, and with
//! `hydrate` into a wasm bundle that makes the rendered page interactive.
//!
//! Not here: business logic. A server function takes the backend's services from the Leptos
//! context ([`services::UiServices`]) and calls them; the backend provides the implementation.

#![recursion_limit = "256"]

pub mod accounts;
pub mod alerts;
pub mod app;
pub mod error;
pub mod logs;
pub mod metrics;
mod pages;
pub mod promql;
pub mod rollouts;
#[cfg(feature = "ssr")]
pub mod services;

pub use app::{App, shell};

/// Entry point of the wasm bundle: hydrates the server-rendered body.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}

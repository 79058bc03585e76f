//! A backend started in this process on a free loopback port, for the tests and benchmarks
//! alike (`#[path]`): what they do with it is theirs.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_backend::config::Config;
use vigil_backend::startup::Application;
use vigil_backend::state::AppState;

pub struct Server {
    pub port: u16,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub state: Arc<AppState>,
    /// Stops the server gracefully when cancelled.
    pub shutdown: CancellationToken,
    pub task: JoinHandle<std::io::Result<()>>,
}

/// Builds the application from `config` and serves it until its shutdown token is cancelled.
pub async fn start(config: Config) -> Server {
    let application = Application::build(config).await.expect("the application builds");
    let port = application.port();
    let state = application.state();
    let shutdown = application.shutdown_token();
    let task = tokio::spawn(application.run_until_stopped(std::future::pending()));
    Server { port, base: format!("http://127.0.0.1:{port}"), state, shutdown, task }
}

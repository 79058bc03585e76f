//! `cargo xtask demo`: a whole Vigil on this machine, from a fresh `.vigil-demo/` folder.
//!
//! Starts the backend, creates an ingest token with `vigil token create`, starts an agent
//! tailing `.vigil-demo/logs/*.log`, appends a demo line every two seconds, and starts a
//! Prometheus that scrapes the backend when the `prometheus` binary is installed. Stops
//! everything when the backend exits (Ctrl-C reaches the whole process group).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::Workspace;

const PROMETHEUS: &str = "/usr/bin/prometheus";
/// The demo's administrator password: a demo on loopback, not a deployment.
const DEMO_ADMIN_PASSWORD: &str = "vigil-demo-admin";

pub fn run(workspace: &Workspace) -> anyhow::Result<()> {
    let port: u16 = std::env::var("VIGIL_DEMO_PORT").ok().and_then(|port| port.parse().ok()).unwrap_or(8080);
    let prometheus_port: u16 =
        std::env::var("VIGIL_DEMO_PROMETHEUS_PORT").ok().and_then(|port| port.parse().ok()).unwrap_or(9090);
    for (port, variable) in [(port, "VIGIL_DEMO_PORT"), (prometheus_port, "VIGIL_DEMO_PROMETHEUS_PORT")] {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            bail!("port {port} is in use: stop what listens there or choose another port with {variable}=...");
        }
    }
    let demo = workspace.root().join(".vigil-demo");
    if demo.exists() {
        std::fs::remove_dir_all(&demo).context("cannot clear .vigil-demo")?;
    }
    let logs = demo.join("logs");
    std::fs::create_dir_all(&logs)?;
    let log_file = logs.join("shop.log");
    std::fs::write(&log_file, "")?;

    let backend_config = demo.join("vigil.toml");
    std::fs::write(
        &backend_config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[storage]\ndata_dir = {:?}\n\n[ui]\nsite_root = {:?}\n\n\
             [auth]\ninitial_admin_password = {DEMO_ADMIN_PASSWORD:?}\n\n\
             [metrics]\nprometheus_url = \"http://127.0.0.1:{prometheus_port}\"\n",
            demo.join("data"),
            workspace.site_root()
        ),
    )?;
    let vigil = workspace.binary("vigil", false);
    let created = Command::new(&vigil)
        .args(["--config"])
        .arg(&backend_config)
        .args(["token", "create", "--scope", "ingest", "--name", "demo-agent"])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run vigil token create")?;
    if !created.status.success() {
        bail!("vigil token create failed");
    }
    let token = String::from_utf8(created.stdout)?.trim().to_owned();

    let agent_config = demo.join("agent.toml");
    std::fs::write(
        &agent_config,
        format!(
            "host = \"demo-host\"\ndata_dir = {:?}\n\n[backend]\nurl = \"http://127.0.0.1:{port}\"\ntoken = \"{token}\"\n\n[[sources]]\nname = \"shop\"\nservice = \"shop\"\ninclude = [{:?}]\n\n[control]\nlisten = \"127.0.0.1:0\"\n",
            demo.join("agent-data"),
            logs.join("*.log")
        ),
    )?;

    let mut children: Vec<Child> = Vec::new();
    let mut backend =
        Command::new(&vigil).arg("--config").arg(&backend_config).arg("serve").spawn().context("cannot start vigil")?;
    if let Err(error) = wait_ready(port) {
        let _ = backend.kill();
        return Err(error);
    }
    children.push(
        Command::new(workspace.binary("vigil-agent", false))
            .arg("--config")
            .arg(&agent_config)
            .spawn()
            .context("cannot start vigil-agent")?,
    );
    let prometheus_note = if Path::new(PROMETHEUS).exists() {
        let prometheus_dir = demo.join("prometheus");
        std::fs::create_dir_all(&prometheus_dir)?;
        let prometheus_config = prometheus_dir.join("prometheus.yml");
        std::fs::write(
            &prometheus_config,
            format!(
                "global:\n  scrape_interval: 5s\nscrape_configs:\n  - job_name: vigil\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
            ),
        )?;
        children.push(
            Command::new(PROMETHEUS)
                .arg(format!("--config.file={}", prometheus_config.display()))
                .arg(format!("--storage.tsdb.path={}", prometheus_dir.join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
                .arg("--web.enable-remote-write-receiver")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("cannot start prometheus")?,
        );
        format!("Prometheus (scraping Vigil's /metrics): http://127.0.0.1:{prometheus_port}")
    } else {
        "Prometheus is not installed (apt-get install prometheus); metrics are off in this demo".to_owned()
    };
    std::thread::spawn(move || demo_traffic(&log_file));

    println!();
    println!("  Vigil is running: open http://127.0.0.1:{port}/logs");
    println!("  Sign in as admin with the password {DEMO_ADMIN_PASSWORD}");
    println!("  Append a line and search for it:");
    println!("    echo \"hello from $(hostname)\" >> {}", logs.join("shop.log").display());
    println!("  {prometheus_note}");
    println!("  Ctrl-C stops everything.");
    println!();

    let status = backend.wait()?;
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    eprintln!("xtask: vigil exited with {status}");
    Ok(())
}

fn wait_ready(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let request = format!("GET /readyz HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
            let mut answer = String::new();
            let answered = stream.write_all(request.as_bytes()).is_ok() && stream.read_to_string(&mut answer).is_ok();
            if answered && answer.split_whitespace().nth(1) == Some("200") {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("vigil did not become ready on port {port} within 60 s")
}

/// A line every two seconds, as a small web shop would log them.
fn demo_traffic(log_file: &Path) {
    const LINES: [&str; 6] = [
        "INFO GET /products 200 12ms",
        "INFO GET /cart 200 8ms",
        "INFO POST /checkout 201 184ms",
        "WARN payment provider slow: 1.8s",
        "ERROR POST /checkout 502 payment provider timed out",
        "DEBUG cache hit ratio 0.93",
    ];
    for count in 0usize.. {
        let line = LINES[count % LINES.len()];
        let appended = std::fs::OpenOptions::new()
            .append(true)
            .open(log_file)
            .and_then(|mut file| writeln!(file, "{line} request_id={count}"));
        if appended.is_err() {
            return;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

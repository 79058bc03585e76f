//! A throwaway PostgreSQL for the tests: `initdb` and `postgres` from the Debian package, in a
//! temporary directory, on a free loopback port. One cluster serves the whole test binary; each
//! test gets its own database. A watchdog stops the server and removes its directory when the
//! test process ends. As root, the server runs as the `postgres` user (PostgreSQL refuses root).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection};

pub struct TestPostgres {
    port: u16,
    /// Outlives the test process on purpose: it stops the server once this process is gone.
    _watchdog: std::process::Child,
}

static SHARED: OnceLock<TestPostgres> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

fn bin_dir() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: apt-get install postgresql (scripts/setup.sh does)")
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    candidates
        .sort_by_key(|bin| bin.parent().and_then(Path::file_name).and_then(|name| name.to_str()?.parse::<u32>().ok()));
    candidates.pop().expect("no /usr/lib/postgresql/*/bin/initdb")
}

/// The uid and gid to run PostgreSQL as: ours, or `postgres` when we are root.
fn run_as() -> Option<(u32, u32)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let euid: u32 = status.lines().find(|line| line.starts_with("Uid:"))?.split_whitespace().nth(2)?.parse().ok()?;
    if euid != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    let entry = passwd
        .lines()
        .find(|line| line.starts_with("postgres:"))
        .expect("running as root needs the postgres user (apt-get install postgresql)");
    let fields: Vec<&str> = entry.split(':').collect();
    Some((fields[2].parse().unwrap(), fields[3].parse().unwrap()))
}

fn command(program: &Path, user: Option<(u32, u32)>) -> Command {
    let mut command = Command::new(program);
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    command
}

impl TestPostgres {
    /// The cluster of this test process, started on first use.
    pub fn shared() -> &'static TestPostgres {
        SHARED.get_or_init(Self::start)
    }

    fn start() -> Self {
        let bin = bin_dir();
        let user = run_as();
        let root = std::env::temp_dir().join(format!("vigil-test-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&root, Some(uid), Some(gid)).unwrap();
        }
        let data = root.join("data");
        let output = command(&bin.join("initdb"), user)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"])
            .output()
            .expect("initdb runs");
        assert!(output.status.success(), "initdb failed: {}", String::from_utf8_lossy(&output.stderr));

        let port = crate::helpers::free_port();
        // The watchdog: runs the server while this test process lives, then stops it and
        // removes its directory.
        let script = r#"
            "$1/postgres" -D "$2/data" -p "$3" -k "$2" -c listen_addresses=127.0.0.1 \
                -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 \
                >"$2/server.log" 2>&1 &
            server=$!
            while [ -d "/proc/$4" ] && kill -0 "$server" 2>/dev/null; do sleep 0.5; done
            kill -INT "$server" 2>/dev/null; wait "$server"; rm -rf "$2"
        "#;
        let mut watchdog = Command::new("sh");
        if let Some((uid, gid)) = user {
            watchdog.uid(uid).gid(gid);
        }
        let watchdog = watchdog
            .arg("-c")
            .arg(script)
            .arg("watchdog")
            .arg(&bin)
            .arg(&root)
            .arg(port.to_string())
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the PostgreSQL watchdog starts");

        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            if ready {
                break;
            }
            let log = std::fs::read_to_string(root.join("server.log")).unwrap_or_default();
            assert!(Instant::now() < deadline, "PostgreSQL did not start within 60 s:\n{log}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { port, _watchdog: watchdog }
    }

    /// A new, empty database; returns its URL.
    pub async fn create_database(&self) -> String {
        let name = format!("vigil_test_{}", DATABASES.fetch_add(1, Ordering::Relaxed));
        let mut admin = PgConnection::connect(&self.url("postgres")).await.expect("connect to PostgreSQL");
        admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create database");
        admin.close().await.ok();
        self.url(&name)
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

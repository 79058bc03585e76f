//! A real SMTP server for tests: aiosmtpd (Debian's python3-aiosmtpd) on a free loopback
//! port, keeping every message it accepts.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, ChildStdin, Command};

/// A real SMTP server (aiosmtpd, Debian's python3-aiosmtpd) that appends each message it
/// accepts to a JSON-lines file. Options: `refuse` and `defer` (addresses answered 550 and
/// 451 at `RCPT`), `login` (`[user, password]`: login required, in clear), `no_plain` (offer
/// `AUTH LOGIN` only), `tls` (`[certificate, key]` files: `STARTTLS` required, and the login
/// only inside it).
const SINK: &str = r#"
import json, logging, sys, warnings
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

# Logging in without TLS is what the tests check, on loopback.
warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
logging.getLogger("mail.log").setLevel(logging.ERROR)
out, port, options = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])

class Sink:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in options.get("refuse", []):
            return "550 5.1.1 mailbox unavailable"
        if address in options.get("defer", []):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        record = {
            "mail_from": envelope.mail_from,
            "mail_options": envelope.mail_options,
            "rcpt_tos": envelope.rcpt_tos,
            "login": session.auth_data if isinstance(session.auth_data, dict) else None,
            "content": envelope.content.decode("utf-8"),
        }
        with open(out, "a") as file:
            file.write(json.dumps(record) + "\n")
        return "250 OK"

def authenticator(server, session, envelope, mechanism, auth_data):
    good = isinstance(auth_data, LoginPassword) and \
        [auth_data.login.decode(), auth_data.password.decode()] == options["login"]
    return AuthResult(success=good, handled=False,
                      auth_data={"user": auth_data.login.decode(), "mechanism": mechanism})

parameters = dict(hostname="127.0.0.1", port=port, server_hostname="sink.test")
if "login" in options:
    parameters.update(authenticator=authenticator, auth_required=True, auth_require_tls=False)
if options.get("no_plain"):
    parameters.update(auth_exclude_mechanism=["PLAIN"])
if "tls" in options:
    import ssl
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(options["tls"][0], options["tls"][1])
    parameters.update(tls_context=context, require_starttls=True, auth_require_tls=True)
controller = Controller(Sink(), **parameters)
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
"#;

pub struct SmtpSink {
    pub port: u16,
    messages: PathBuf,
    _stdin: ChildStdin,
    _child: Child,
    _directory: TempDir,
}

impl SmtpSink {
    /// Starts the sink on a free loopback port; returns once it accepts connections.
    pub async fn start(options: Value) -> Self {
        let directory = tempfile::tempdir().unwrap();
        let script = directory.path().join("sink.py");
        std::fs::write(&script, SINK).unwrap();
        let messages = directory.path().join("messages.jsonl");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new("/usr/bin/python3")
            .arg(&script)
            .arg(&messages)
            .arg(port.to_string())
            .arg(options.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 starts (the sink needs Debian's python3-aiosmtpd)");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        // The controller has made a test connection before the script says it is ready.
        let ready = tokio::time::timeout(Duration::from_secs(30), stdout.next_line()).await;
        assert!(
            matches!(&ready, Ok(Ok(Some(line))) if line == "ready"),
            "the SMTP sink did not start within 30 s: {ready:?}"
        );
        Self { port, messages, _stdin: stdin, _child: child, _directory: directory }
    }

    /// The messages accepted so far (written before the server answers 250).
    pub fn messages(&self) -> Vec<Value> {
        let Ok(text) = std::fs::read_to_string(&self.messages) else {
            return Vec::new();
        };
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }
}

//! HTTPS: the backend serves the configured certificate (and a new one after SIGHUP), marks its
//! session cookie `Secure`, and the agent trusts only certificates it can verify.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use tokio_util::sync::CancellationToken;
use vigil_agent::config::{AgentConfig, BackendConfig, BatchConfig, FileSourceConfig, TailConfig};
use vigil_proto::paths;

use crate::helpers::{ADMIN, ADMIN_PASSWORD, Db, eventually, free_port, spawn_app_with};

struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        Self { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for 127.0.0.1 and localhost, and its key, in PEM.
    fn server_certificate(&self) -> (String, String) {
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        (certificate.pem(), key.serialize_pem())
    }

    fn write_server_certificate(&self, dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let (certificate, key) = self.server_certificate();
        let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
        // Written whole and renamed, as certificate tools do, so a reload never sees half a file.
        for (path, contents) in [(&cert_file, certificate), (&key_file, key)] {
            let temporary = path.with_extension("tmp");
            std::fs::write(&temporary, contents).unwrap();
            std::fs::rename(&temporary, path).unwrap();
        }
        (cert_file, key_file)
    }

    /// A client that trusts this authority only.
    fn client(&self) -> reqwest::Client {
        let certificate = reqwest::Certificate::from_pem(self.pem().as_bytes()).unwrap();
        reqwest::Client::builder()
            .tls_certs_only([certificate])
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .unwrap()
    }
}

#[tokio::test]
async fn the_backend_serves_https_and_reloads_its_certificate_on_sighup() {
    let first = TestCa::new("first test authority");
    let second = TestCa::new("second test authority");
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = first.write_server_certificate(dir.path());
    let port = free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("serve")
        .env("VIGIL_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("VIGIL_SERVER__TLS_CERT_FILE", &cert_file)
        .env("VIGIL_SERVER__TLS_KEY_FILE", &key_file)
        .env("VIGIL_STORAGE__DATA_DIR", dir.path().join("data"))
        .env("VIGIL_AUTH__INITIAL_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("VIGIL_UI__SITE_ROOT", crate::helpers::site_root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("https://127.0.0.1:{port}");
    let health = format!("{url}{}", paths::HEALTHZ);
    eventually(30, "vigil to answer over https", || async {
        first.client().get(&health).send().await.ok().filter(|response| response.status() == 200)
    })
    .await;
    // A client that does not trust the certificate's authority fails the handshake; so does
    // plain HTTP.
    assert!(second.client().get(&health).send().await.is_err());
    let plain = reqwest::Client::new().get(format!("http://127.0.0.1:{port}{}", paths::HEALTHZ)).send().await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);

    // Served over TLS, the session cookie is `Secure`.
    let login = first
        .client()
        .post(format!("{url}{}", paths::AUTH_LOGIN))
        .json(&serde_json::json!({"username": ADMIN, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    assert!(login.headers()["set-cookie"].to_str().unwrap().contains("; Secure"));

    // A new certificate from another authority, then SIGHUP: the server serves the new one.
    second.write_server_certificate(dir.path());
    let status = Command::new("kill").arg("-HUP").arg(server.id().to_string()).status().unwrap();
    assert!(status.success());
    eventually(10, "the new certificate to be served", || async {
        second.client().get(&health).send().await.ok().filter(|response| response.status() == 200)
    })
    .await;
    assert!(first.client().get(&health).send().await.is_err(), "the old certificate is still served");

    // A broken pair is refused at reload, and the server keeps serving the last good one.
    std::fs::write(&cert_file, "not a certificate").unwrap();
    Command::new("kill").arg("-HUP").arg(server.id().to_string()).status().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(second.client().get(&health).send().await.unwrap().status(), 200);

    Command::new("kill").arg("-TERM").arg(server.id().to_string()).status().unwrap();
    let exit = server.wait().unwrap();
    assert!(exit.success(), "vigil stopped with {exit}");
}

#[tokio::test]
async fn the_agent_ships_over_https_only_to_a_backend_it_can_verify() {
    let authority = TestCa::new("agent test authority");
    let stranger = TestCa::new("unknown authority");
    let certificates = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = authority.write_server_certificate(certificates.path());
    let app = spawn_app_with(Db::Sqlite, |config| {
        config.tls = Some(vigil_backend::config::TlsFiles { cert_file, key_file });
    })
    .await;
    let url = format!("https://127.0.0.1:{}", app.port);
    let ca_file = certificates.path().join("ca.pem");
    std::fs::write(&ca_file, authority.pem()).unwrap();
    let stranger_file = certificates.path().join("stranger.pem");
    std::fs::write(&stranger_file, stranger.pem()).unwrap();
    let backend = |ca_file: Option<&Path>| BackendConfig {
        timeout_seconds: 5,
        ca_file: ca_file.map(Path::to_owned),
        ..BackendConfig::new(url.clone(), app.ingest_token.clone())
    };

    let health = format!("{url}{}", paths::HEALTHZ);
    let trusted = vigil_agent::sink::http_client(&backend(Some(&ca_file))).unwrap();
    assert_eq!(trusted.get(&health).send().await.unwrap().status(), 200);
    for refused in [backend(Some(&stranger_file)), backend(None)] {
        let client = vigil_agent::sink::http_client(&refused).unwrap();
        let error = client.get(&health).send().await.expect_err("an unverifiable certificate is refused");
        assert!(error.is_connect(), "{error:?}");
    }
    let not_pem = certificates.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let error = vigil_agent::sink::http_client(&backend(Some(&not_pem))).unwrap_err();
    assert!(format!("{error:#}").contains("holds no certificate"), "{error:#}");

    // The whole agent, over HTTPS.
    let logs = tempfile::tempdir().unwrap();
    let mut config = AgentConfig::new(backend(Some(&ca_file)), logs.path().join("data"));
    config.host = Some("tls-host".to_owned());
    config.sources = vec![FileSourceConfig::new("app", "app", vec![format!("{}/*.log", logs.path().display())])];
    config.batch = BatchConfig { max_wait_ms: 50, ..BatchConfig::default() };
    config.tail = TailConfig { poll_interval_ms: 50, ..TailConfig::default() };
    let path = logs.path().join("app.log");
    std::fs::write(&path, "").unwrap();
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(vigil_agent::start(config, shutdown.clone()).unwrap().run());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    writeln!(file, "INFO shipped over tls").unwrap();
    file.sync_all().unwrap();
    let read = authority.client();
    eventually(20, "the line to arrive over https", || async {
        let page: vigil_proto::LogPage = read
            .get(format!("{url}{}", paths::LOGS_SEARCH))
            .bearer_auth(&app.read_token)
            .query(&[("q", "\"shipped over tls\"")])
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (page.total == 1).then_some(())
    })
    .await;
    shutdown.cancel();
    agent.await.unwrap();
}

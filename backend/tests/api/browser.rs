//! A headless browser for the tests: Debian's Chromium driven through Debian's ChromeDriver
//! with the W3C WebDriver protocol. Each [`Browser`] has its own driver process, profile
//! directory and session; dropping it ends them.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::{eventually, free_port};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C key under which WebDriver names an element.
pub const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    client: reqwest::Client,
    session: String,
    driver: tokio::process::Child,
    _profile: TempDir,
}

#[derive(Clone, Debug)]
pub struct Element(String);

impl Element {
    /// The WebDriver id, for passing the element to a script.
    pub fn id(&self) -> &str {
        &self.0
    }
}

impl Browser {
    pub async fn start() -> Self {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: apt-get install chromium chromium-driver (scripts/setup.sh does)"
            );
        }
        let port = free_port();
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        // A new connection for every command: ChromeDriver closes idle connections, and a
        // command sent on one it is closing fails ("error sending request").
        let client =
            reqwest::Client::builder().timeout(Duration::from_secs(60)).pool_max_idle_per_host(0).build().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        eventually(30, "chromedriver to listen", || {
            let request = client.get(format!("{base}/status")).send();
            async move { request.await.ok().filter(|response| response.status().is_success()) }
        })
        .await;
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        }}});
        let created: Value = client
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("new session request")
            .json()
            .await
            .expect("new session answer");
        let session_id = created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}"));
        Self { session: format!("{base}/session/{session_id}"), client, driver, _profile: profile }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body).await.unwrap_or_else(|(error, message)| {
            panic!("webdriver {path}: {error}: {message}");
        })
    }

    /// A WebDriver command, and the error it answered with (its code and message) if any.
    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, (Value, Value)> {
        let mut request = self.client.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("webdriver {path}: {error:?}"))
            .json()
            .await
            .unwrap_or_else(|error| panic!("webdriver {path}: {error}"));
        match answer["value"].get("error") {
            Some(error) => Err((error.clone(), answer["value"]["message"].clone())),
            None => Ok(answer["value"].clone()),
        }
    }

    /// Ends the session, which closes the browser.
    pub async fn quit(self) {
        let _ = self.client.delete(&self.session).send().await;
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    pub async fn current_url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": args}))).await
    }

    /// The elements matching a CSS selector now.
    pub async fn find_all(&self, selector: &str) -> Vec<Element> {
        let found = self
            .call(reqwest::Method::POST, "/elements", Some(json!({"using": "css selector", "value": selector})))
            .await;
        found
            .as_array()
            .map(|elements| {
                elements
                    .iter()
                    .filter_map(|element| element[ELEMENT].as_str())
                    .map(|id| Element(id.to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits for an element matching the selector.
    pub async fn wait_for(&self, selector: &str) -> Element {
        eventually(20, &format!("an element matching {selector}"), || async {
            self.find_all(selector).await.into_iter().next()
        })
        .await
    }

    pub async fn text(&self, element: &Element) -> String {
        self.call(reqwest::Method::GET, &format!("/element/{}/text", element.0), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn type_text(&self, element: &Element, text: &str) {
        self.call(reqwest::Method::POST, &format!("/element/{}/value", element.0), Some(json!({"text": text}))).await;
    }

    pub async fn click(&self, element: &Element) {
        self.call(reqwest::Method::POST, &format!("/element/{}/click", element.0), Some(json!({}))).await;
    }

    /// Presses the mouse on `from`, moves to `to` and releases it there.
    pub async fn drag(&self, from: &Element, to: &Element) {
        let origin = |element: &Element| json!({ELEMENT: element.0});
        let actions = json!({"actions": [{
            "type": "pointer",
            "id": "mouse",
            "parameters": {"pointerType": "mouse"},
            "actions": [
                {"type": "pointerMove", "origin": origin(from), "x": 0, "y": 0},
                {"type": "pointerDown", "button": 0},
                {"type": "pointerMove", "origin": origin(to), "x": 0, "y": 0, "duration": 100},
                {"type": "pointerUp", "button": 0},
            ],
        }]});
        self.call(reqwest::Method::POST, "/actions", Some(actions)).await;
    }

    /// Opens `url`: sent to the login page, signs in with the form, and lands on `url`.
    pub async fn goto_signed_in(&self, url: &str, username: &str, password: &str) {
        self.goto(url).await;
        let field = self.wait_for(".login-form input[name='username']").await;
        self.type_text(&field, username).await;
        self.type_text(&self.wait_for(".login-form input[name='password']").await, password).await;
        self.click(&self.wait_for(".login-form button[type='submit']").await).await;
        // Back where it was going: the same path, whatever escaping the browser shows the
        // query in.
        let path_of = |url: &str| {
            url.split_once("://")
                .and_then(|(_, rest)| rest.find('/').map(|slash| rest[slash..].to_owned()))
                .map(|path| path.split('?').next().unwrap_or("/").to_owned())
        };
        let wanted = path_of(url).unwrap_or_else(|| "/".to_owned());
        eventually(20, &format!("to land on {wanted} after signing in"), || async {
            let current = self.current_url().await;
            (path_of(&current).as_deref() == Some(wanted.as_str()) && !current.contains("/login")).then_some(())
        })
        .await;
    }

    /// Presses the mouse at `from_x` pixels from the centre of the element `selector` finds,
    /// moves to `to_x`, and releases it there. An element drawn anew meanwhile (a chart
    /// redrawn when its data arrives) is found again and the drag repeated.
    pub async fn drag_by(&self, selector: &str, from_x: i64, to_x: i64) {
        for _ in 0..5 {
            let element = self.wait_for(selector).await;
            match self.try_drag_by(&element, from_x, to_x).await {
                Ok(_) => return,
                Err((error, _)) if error == "stale element reference" => {
                    // Releases whatever the interrupted drag left pressed.
                    let _ = self.try_call(reqwest::Method::DELETE, "/actions", None).await;
                }
                Err((error, message)) => panic!("webdriver /actions: {error}: {message}"),
            }
        }
        panic!("{selector} was drawn anew at every one of 5 drags");
    }

    async fn try_drag_by(&self, element: &Element, from_x: i64, to_x: i64) -> Result<Value, (Value, Value)> {
        let origin = json!({ELEMENT: element.0});
        let actions = json!({"actions": [{
            "type": "pointer",
            "id": "mouse",
            "parameters": {"pointerType": "mouse"},
            "actions": [
                {"type": "pointerMove", "origin": origin, "x": from_x, "y": 0},
                {"type": "pointerDown", "button": 0},
                {"type": "pointerMove", "origin": origin, "x": (from_x + to_x) / 2, "y": 0, "duration": 100},
                {"type": "pointerMove", "origin": origin, "x": to_x, "y": 0, "duration": 100},
                {"type": "pointerUp", "button": 0},
            ],
        }]});
        self.try_call(reqwest::Method::POST, "/actions", Some(actions)).await
    }

    /// A PNG of the page, for looking at what a failing test saw.
    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let encoded = self.call(reqwest::Method::GET, "/screenshot", None).await;
        if let Some(bytes) =
            encoded.as_str().and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok())
        {
            let _ = std::fs::write(path, bytes);
        }
    }
}

impl Drop for Browser {
    /// Kills the driver's process group, which holds the browser it started.
    fn drop(&mut self) {
        if let Some(pid) = self.driver.id() {
            let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
        }
    }
}

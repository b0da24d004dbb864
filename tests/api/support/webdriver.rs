//! A small W3C WebDriver client for the browser tests, over `reqwest`.
//!
//! [`ChromeDriver::start`] runs the system's `chromedriver` on a port it picks itself
//! (`--port=0`, read back from its start-up line) and [`ChromeDriver::session`] opens a
//! headless Chromium with a fresh profile. Nothing is downloaded: both come from the
//! system (Debian: `apt-get install chromium chromium-driver`), or from `GOIM_CHROMIUM` /
//! `GOIM_CHROMEDRIVER`. Missing binaries fail the test with instructions; they never
//! skip it.
//!
//! Every wait polls with a deadline ([`Session::wait_for`]); a timeout panics with what
//! was awaited and the page's visible text, so a failure explains itself.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use base64::Engine;
use serde_json::{Value, json};

/// How long a UI step may take before the test fails.
pub const UI_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How often a chromedriver or Chromium start is tried before the test fails.
const STARTS: u32 = 3;
/// The W3C name of the key that holds an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// WebDriver key codes, for [`Session::type_into`].
pub mod keys {
    pub const TAB: &str = "\u{E004}";
    pub const ENTER: &str = "\u{E007}";
    pub const ESCAPE: &str = "\u{E00C}";
    pub const ARROW_UP: &str = "\u{E013}";
    pub const ARROW_DOWN: &str = "\u{E015}";
    pub const SHIFT: &str = "\u{E008}";
    /// Releases held modifier keys.
    pub const RELEASE: &str = "\u{E000}";
}

/// A running `chromedriver`; killed on drop.
pub struct ChromeDriver {
    child: Child,
    address: SocketAddr,
    client: reqwest::Client,
    browser: PathBuf,
}

impl ChromeDriver {
    /// Starts chromedriver, or fails the test saying how to install what is missing.
    pub async fn start() -> Self {
        let driver = find_binary("GOIM_CHROMEDRIVER", &["chromedriver"], &[PathBuf::from("/usr/bin/chromedriver")]);
        let mut browser_fallbacks =
            vec![PathBuf::from("/usr/bin/chromium"), PathBuf::from("/usr/bin/chromium-browser")];
        browser_fallbacks.extend(windows_chrome_locations());
        let browser = find_binary(
            "GOIM_CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"],
            &browser_fallbacks,
        );
        let (Some(driver), Some(browser)) = (driver, browser) else {
            panic!(
                "the browser test needs Chromium and ChromeDriver, and did not find them. Install them \
                 (Debian/Ubuntu: `apt-get install -y --no-install-recommends chromium chromium-driver`) or \
                 point GOIM_CHROMIUM and GOIM_CHROMEDRIVER at the binaries."
            );
        };
        // Like Chromium's (see `open`), chromedriver's start-up on a loaded box has been
        // seen to stall: a start that does not report its port is tried again.
        let mut start = 1;
        let (child, port) = loop {
            match start_driver(&driver) {
                Ok(started) => break started,
                Err(why) if start < STARTS => {
                    eprintln!("{why}; trying again");
                    start += 1;
                }
                Err(why) => panic!("{why}"),
            }
        };
        let this = Self {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            client: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client builds"),
            browser,
        };
        let deadline = Instant::now() + UI_TIMEOUT;
        loop {
            let status = this.client.get(format!("{}/status", this.url())).send().await;
            if let Ok(status) = status
                && let Ok(body) = status.json::<Value>().await
                && body["value"]["ready"] == true
            {
                break this;
            }
            assert!(Instant::now() < deadline, "chromedriver did not become ready within {UI_TIMEOUT:?}");
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A new headless Chromium with its own empty profile and the given window size,
    /// acting as a desktop with a mouse: left alone, headless Chromium reports no
    /// pointer at all (`hover: none`), unlike any real desktop browser.
    pub async fn session(&self, width: u32, height: u32) -> Session {
        let desktop =
            "--blink-settings=primaryHoverType=2,availableHoverTypes=2,primaryPointerType=4,availablePointerTypes=4";
        self.open(width, height, vec![desktop.to_owned()], None).await
    }

    /// A phone: Chromium's mobile emulation at `width`×`height` CSS pixels with a touch
    /// screen (`hover: none`, `pointer: coarse`), so that clicks arrive as taps.
    pub async fn phone_session(&self, width: u32, height: u32) -> Session {
        let emulation =
            json!({ "deviceMetrics": { "width": width, "height": height, "pixelRatio": 3, "touch": true } });
        self.open(width, height, vec![], Some(emulation)).await
    }

    async fn open(&self, width: u32, height: u32, extra_args: Vec<String>, mobile: Option<Value>) -> Session {
        // Chromium's start-up on a loaded box sometimes fails ("session not created":
        // it did not open its DevTools port in time; or the request's own 60 s ran out
        // first). That says nothing about the web client, so a start is tried again,
        // with a fresh profile, before the test fails.
        let mut start = 1;
        loop {
            match self.try_open(width, height, &extra_args, mobile.as_ref()).await {
                Ok(session) => return session,
                Err(error)
                    if ["session not created", "transport"].contains(&error.error.as_str()) && start < STARTS =>
                {
                    eprintln!("Chromium did not start ({error}); trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    start += 1;
                }
                Err(error) => panic!("cannot start a Chromium session: {error}"),
            }
        }
    }

    async fn try_open(
        &self,
        width: u32,
        height: u32,
        extra_args: &[String],
        mobile: Option<&Value>,
    ) -> Result<Session, WebDriverError> {
        let profile = tempfile::Builder::new().prefix("goim-chromium-").tempdir().expect("profile dir");
        let mut args = vec![
            "--headless=new".to_owned(),
            // The tests run as root in CI, where Chromium's sandbox cannot start.
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            "--no-default-browser-check".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        args.extend(extra_args.iter().cloned());
        let mut options = json!({ "binary": self.browser, "args": args });
        if let Some(mobile) = mobile {
            options["mobileEmulation"] = mobile.clone();
        }
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": options,
                    "unhandledPromptBehavior": "ignore",
                }
            }
        });
        let value =
            command(&self.client, reqwest::Method::POST, &format!("{}/session", self.url()), Some(&capabilities))
                .await?;
        let id = value["sessionId"].as_str().expect("a session id").to_owned();
        Ok(Session {
            client: self.client.clone(),
            base: format!("{}/session/{id}", self.url()),
            path: format!("/session/{id}"),
            driver: self.address,
            closed: false,
            _profile: profile,
        })
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An error answered by the WebDriver server.
#[derive(Debug)]
pub struct WebDriverError {
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message.lines().next().unwrap_or_default())
    }
}

async fn command(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
) -> Result<Value, WebDriverError> {
    let mut request = client.request(method, url);
    // POST commands always carry a JSON body, even an empty one.
    request = request.json(body.unwrap_or(&json!({})));
    let response = request
        .send()
        .await
        .map_err(|error| WebDriverError { error: "transport".into(), message: error.to_string() })?;
    let ok = response.status().is_success();
    let body: Value = response
        .json()
        .await
        .map_err(|error| WebDriverError { error: "invalid response".into(), message: error.to_string() })?;
    if ok {
        Ok(body["value"].clone())
    } else {
        Err(WebDriverError {
            error: body["value"]["error"].as_str().unwrap_or("unknown error").to_owned(),
            message: body["value"]["message"].as_str().unwrap_or_default().to_owned(),
        })
    }
}

/// One browser. Closed by [`Session::close`], or (best effort) on drop.
pub struct Session {
    client: reqwest::Client,
    base: String,
    path: String,
    driver: SocketAddr,
    closed: bool,
    _profile: tempfile::TempDir,
}

impl Session {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Result<Value, WebDriverError> {
        command(&self.client, method, &format!("{}{path}", self.base), body).await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(&body))
            .await
            .unwrap_or_else(|error| panic!("WebDriver POST {path} failed: {error}"))
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns its result.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.try_execute(script, args).await.unwrap_or_else(|error| panic!("script failed: {error}\n{script}"))
    }

    async fn try_execute(&self, script: &str, args: Vec<Value>) -> Result<Value, WebDriverError> {
        self.call(reqwest::Method::POST, "/execute/sync", Some(&json!({ "script": script, "args": args }))).await
    }

    /// Polls `script` until it returns something truthy (not null/false/0/""/[]), and
    /// returns that; panics after [`UI_TIMEOUT`] naming `what`.
    pub async fn wait_for(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        let deadline = Instant::now() + UI_TIMEOUT;
        loop {
            let last = self.try_execute(script, args.clone()).await;
            if let Ok(value) = &last
                && is_truthy(value)
            {
                return value.clone();
            }
            if Instant::now() >= deadline {
                let page = self.page_text().await;
                panic!(
                    "timed out after {UI_TIMEOUT:?} waiting for {what}; last result: {last:?}\n--- page text ---\n{page}"
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The visible text of the page (for failure messages).
    pub async fn page_text(&self) -> String {
        match self.try_execute("return document.body ? document.body.innerText : ''", vec![]).await {
            Ok(Value::String(text)) => text.chars().take(4000).collect(),
            other => format!("<unavailable: {other:?}>"),
        }
    }

    /// The element matching `css`, once it exists.
    async fn element(&self, css: &str) -> String {
        let deadline = Instant::now() + UI_TIMEOUT;
        loop {
            let found = self
                .call(reqwest::Method::POST, "/element", Some(&json!({ "using": "css selector", "value": css })))
                .await;
            match found {
                Ok(value) => return value[ELEMENT_KEY].as_str().expect("an element reference").to_owned(),
                Err(error) if Instant::now() >= deadline => {
                    let page = self.page_text().await;
                    panic!("no element matches `{css}` after {UI_TIMEOUT:?} ({error})\n--- page text ---\n{page}");
                }
                Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
            }
        }
    }

    /// Clicks the element matching `css`, waiting until it exists and can be clicked.
    pub async fn click(&self, css: &str) {
        self.interact(css, "click", json!({})).await;
    }

    /// Types `text` (may contain [`keys`]) into the element matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        self.interact(css, "value", json!({ "text": text })).await;
    }

    /// Chooses the file at `path` (absolute) in the `<input type=file>` matching `css`,
    /// as a person picking it in the file dialog does: chromedriver sets a file input's
    /// files from the typed path, even when the input itself is out of sight.
    pub async fn choose_file(&self, css: &str, path: &Path) {
        assert!(path.is_absolute(), "a file input needs an absolute path: {}", path.display());
        self.interact(css, "value", json!({ "text": path.to_str().expect("a UTF-8 path") })).await;
    }

    async fn interact(&self, css: &str, action: &str, body: Value) {
        let deadline = Instant::now() + UI_TIMEOUT;
        loop {
            let element = self.element(css).await;
            let result = self.call(reqwest::Method::POST, &format!("/element/{element}/{action}"), Some(&body)).await;
            match result {
                Ok(_) => return,
                // Re-rendered, still animating in, or covered for a moment: try again.
                Err(error) if Instant::now() < deadline && is_transient(&error) => {
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
                Err(error) => panic!("cannot {action} `{css}`: {error}"),
            }
        }
    }

    /// Moves the mouse onto the middle of the element matching `css`.
    pub async fn hover(&self, css: &str) {
        let element = self.element(css).await;
        self.perform(json!([{
            "type": "pointer",
            "id": "mouse",
            "parameters": { "pointerType": "mouse" },
            "actions": [{ "type": "pointerMove", "duration": 0, "origin": { ELEMENT_KEY: element }, "x": 0, "y": 0 }],
        }]))
        .await;
    }

    /// Touches the middle of the element matching `css` for `hold` (a tap when short,
    /// a long press when long).
    pub async fn touch(&self, css: &str, hold: Duration) {
        let element = self.element(css).await;
        self.perform(json!([{
            "type": "pointer",
            "id": "finger",
            "parameters": { "pointerType": "touch" },
            "actions": [
                { "type": "pointerMove", "duration": 0, "origin": { ELEMENT_KEY: element }, "x": 0, "y": 0 },
                { "type": "pointerDown", "button": 0 },
                { "type": "pause", "duration": hold.as_millis() as u64 },
                { "type": "pointerUp", "button": 0 },
            ],
        }]))
        .await;
    }

    /// Presses and releases `key` (one of [`keys`] or a character) on the focused element.
    pub async fn press(&self, key: &str) {
        self.perform(json!([{
            "type": "key",
            "id": "keyboard",
            "actions": [{ "type": "keyDown", "value": key }, { "type": "keyUp", "value": key }],
        }]))
        .await;
    }

    async fn perform(&self, actions: Value) {
        self.post("/actions", json!({ "actions": actions })).await;
        // Release whatever is still held, so the next action starts from rest.
        let _ = self.call(reqwest::Method::DELETE, "/actions", None).await;
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let value = self
            .call(reqwest::Method::GET, "/screenshot", None)
            .await
            .unwrap_or_else(|error| panic!("screenshot failed: {error}"));
        base64::engine::general_purpose::STANDARD.decode(value.as_str().expect("base64 PNG")).expect("valid base64")
    }

    /// Ends the session (Chromium exits and its profile is deleted).
    pub async fn close(mut self) {
        let _ = self.call(reqwest::Method::DELETE, "", None).await;
        self.closed = true;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // A test that panicked never reached `close`: end the session synchronously so
        // no Chromium outlives the test.
        if !self.closed {
            delete_blocking(self.driver, &self.path);
        }
    }
}

fn delete_blocking(address: SocketAddr, path: &str) {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(2)) else { return };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request =
        format!("DELETE {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_ok() {
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
    }
}

fn is_transient(error: &WebDriverError) -> bool {
    matches!(
        error.error.as_str(),
        "stale element reference" | "element click intercepted" | "element not interactable" | "no such element"
    )
}

fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(_) => true,
    }
}

/// Where Chrome's installer puts `chrome.exe`, which is not on `PATH`: machine-wide
/// (64- and 32-bit Program Files) or for one user (`%LOCALAPPDATA%`).
fn windows_chrome_locations() -> Vec<PathBuf> {
    ["ProgramFiles", "ProgramFiles(x86)", "LOCALAPPDATA"]
        .iter()
        .filter_map(std::env::var_os)
        .map(|root| PathBuf::from(root).join("Google").join("Chrome").join("Application").join("chrome.exe"))
        .collect()
}

/// Runs chromedriver on a port it picks itself, and reads the port back from its
/// start-up line.
fn start_driver(driver: &Path) -> Result<(Child, u16), String> {
    let mut child = Command::new(driver)
        .arg("--port=0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", driver.display()));
    let stdout = child.stdout.take().expect("stdout is piped");
    // chromedriver announces its port on stdout; the reader keeps draining the pipe
    // afterwards so that chromedriver never blocks on a full pipe.
    let (port_tx, port_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut port_tx = Some(port_tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(port) = line.split("started successfully on port ").nth(1) {
                let port = port.trim().trim_end_matches('.').parse::<u16>().ok();
                if let (Some(tx), Some(port)) = (port_tx.take(), port) {
                    let _ = tx.send(port);
                }
            }
        }
    });
    match port_rx.recv_timeout(UI_TIMEOUT) {
        Ok(port) => Ok((child, port)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("{} did not report its port within {UI_TIMEOUT:?}", driver.display()))
        }
    }
}

/// `env` if set, else the first of `names` on `PATH`, else the first existing `fallbacks`.
fn find_binary(env: &str, names: &[&str], fallbacks: &[PathBuf]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let on_path =
        std::env::var_os("PATH").into_iter().flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>());
    let dirs: Vec<PathBuf> = on_path.collect();
    names
        .iter()
        .flat_map(|name| dirs.iter().map(move |dir| dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))))
        .chain(fallbacks.iter().cloned())
        .find(|path| is_executable(path))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata().is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

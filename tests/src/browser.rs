//! A real headless Chromium driven over the W3C WebDriver protocol (chromedriver).
//!
//! ```text
//!  test ──WebDriver HTTP (tiny client)──► chromedriver ──DevTools──► chromium --headless=new
//!                                                                       └─HTTP──► callbridge
//! ```
//!
//! - [`ChromeDriver`] spawns `/usr/bin/chromedriver --port=P` (log in the test's [`Workdir`])
//!   and waits for `GET /status` to say `ready`; it is killed by its PID when dropped.
//! - [`Session`] is one browser: [`ChromeDriver::new_session`] starts `/usr/bin/chromium` with
//!   [`CHROMIUM_ARGS`] and a fresh profile directory inside the workdir. A session borrows its
//!   driver, so it is always dropped first; dropping it deletes the session (the browser quits)
//!   and then kills, by PID, any process still running with that profile directory.
//! - Every WebDriver command is one HTTP/1.1 request on its own `TcpStream`; failures are
//!   [`WebDriverError`]s, and the convenience methods panic with the error and the tail of the
//!   chromedriver log.
//!
//! - Elements inside an open shadow root (the embeddable widget renders into one) are found with
//!   [`Session::find_in_shadow`] (W3C "Get Element Shadow Root" + "Find Element From Shadow
//!   Root"), so they are typed into and clicked like any other element.
//! - [`StaticSite`] (in [`crate::site`]) is a tiny HTTP server on loopback serving fixed pages: a third-party web
//!   site (its own origin) for pages that embed callbridge's widget.
//!
//! The packages are `chromium` and `chromium-driver` (Debian), installed by
//! `scripts/install-test-deps`. Nothing here sleeps to wait for something: readiness and page
//! state are polled against deadlines.

use std::cell::RefCell;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::workdir::Workdir;
use crate::{read_log, STARTUP_DEADLINE};

pub use crate::site::{SitePage, StaticSite};

mod wire;
pub use wire::{command, WebDriverError};

/// Where the harness expects chromedriver (Debian package `chromium-driver`).
pub const CHROMEDRIVER_BIN: &str = "/usr/bin/chromedriver";
/// Where the harness expects Chromium (Debian package `chromium`).
pub const CHROMIUM_BIN: &str = "/usr/bin/chromium";

/// Chromium's arguments, besides `--user-data-dir` (a fresh directory per session).
///
/// `--no-sandbox`: the tests run as root, where Chromium refuses to start sandboxed.
/// `--disable-background-networking`, `--disable-component-update`, `--disable-sync`,
/// `--no-first-run`, `--disable-quic`: no connections beyond the page under test (the network is
/// closed; refused connections would only add noise and delays). `--no-proxy-server`: loopback
/// is reached directly whatever the environment says. `--disable-dev-shm-usage`: shared memory
/// in /tmp, so a small /dev/shm (containers) cannot crash the renderer.
pub const CHROMIUM_ARGS: [&str; 10] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    "--disable-dev-shm-usage",
];

/// Socket timeout of one WebDriver command. Generous: starting the browser (new session) and
/// navigating can take several seconds on a loaded two-core machine.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The W3C key under which an element reference is returned.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// The W3C key under which a shadow root reference is returned.
const SHADOW_KEY: &str = "shadow-6066-11e4-a52e-4f735466cecf";

/// The WebDriver key code of Enter (W3C "Keyboard actions"), for [`Session::send_keys`].
pub const KEY_ENTER: &str = "\u{E007}";
/// The WebDriver key code of Escape.
pub const KEY_ESCAPE: &str = "\u{E00C}";

/// A running `chromedriver --port=P`, killed by its PID when dropped.
#[derive(Debug)]
pub struct ChromeDriver {
    child: Option<Child>,
    pid: u32,
    addr: SocketAddr,
    log_path: PathBuf,
    /// Profile directories of the sessions started, to find their browser processes.
    profiles: RefCell<Vec<PathBuf>>,
}

impl ChromeDriver {
    /// Spawns chromedriver on 127.0.0.1:`port` (its log: `chromedriver.log` in `dir`) and waits
    /// up to [`STARTUP_DEADLINE`] for `GET /status` to report `ready: true`.
    ///
    /// # Panics
    /// If chromedriver is missing (saying how to install it), exits, or never becomes ready.
    #[must_use]
    pub fn start(dir: &Workdir, port: u16) -> Self {
        for (bin, pkg) in [
            (CHROMEDRIVER_BIN, "chromium-driver"),
            (CHROMIUM_BIN, "chromium"),
        ] {
            assert!(
                Path::new(bin).is_file(),
                "{bin} not found: install Debian's {pkg} (run scripts/install-test-deps as root)"
            );
        }
        let log_path = dir.file("chromedriver.log");
        let out_path = dir.file("chromedriver.out");
        let out = File::create(&out_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", out_path.display()));
        let out2 = out.try_clone().expect("clone chromedriver output handle");
        let child = Command::new(CHROMEDRIVER_BIN)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log_path.display()))
            .arg("--log-level=INFO")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(out2))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {CHROMEDRIVER_BIN}: {e}"));
        let mut driver = Self {
            pid: child.id(),
            child: Some(child),
            addr: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)),
            log_path,
            profiles: RefCell::new(Vec::new()),
        };
        driver.wait_ready(STARTUP_DEADLINE, &out_path);
        driver
    }

    fn wait_ready(&mut self, deadline: Duration, out_path: &Path) {
        let start = Instant::now();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "chromedriver exited during start-up with {status}\n{}\n===== output =====\n{}",
                    self.log_tail(),
                    read_log(out_path)
                );
            }
            let last = match command(self.addr, "GET", "/status", None) {
                Ok(v) if v["ready"] == true => return,
                Ok(v) => format!("not ready: {v}"),
                Err(e) => e.to_string(),
            };
            assert!(
                start.elapsed() < deadline,
                "chromedriver on {} not ready within {deadline:?} (last: {last})\n{}\n===== output =====\n{}",
                self.addr,
                self.log_tail(),
                read_log(out_path)
            );
            std::thread::sleep(crate::POLL_INTERVAL);
        }
    }

    /// The WebDriver address.
    #[must_use]
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// chromedriver's PID.
    #[must_use]
    pub const fn pid(&self) -> u32 {
        self.pid
    }

    /// The chromedriver log so far (its tail when long), with a header naming the file.
    #[must_use]
    pub fn log_tail(&self) -> String {
        format!(
            "===== chromedriver log ({}) =====\n{}\n===== end of chromedriver log =====",
            self.log_path.display(),
            read_log(&self.log_path)
        )
    }

    /// Starts a browser: Chromium with [`CHROMIUM_ARGS`], a fresh profile directory
    /// `chromium-profile-<n>` inside `dir`, and the browser console log kept (see
    /// [`Session::console_log`]).
    ///
    /// # Panics
    /// If the session cannot be created (with the chromedriver log).
    #[must_use]
    pub fn new_session(&self, dir: &Workdir) -> Session<'_> {
        let n = self.profiles.borrow().len();
        let profile = dir.file(&format!("chromium-profile-{n}"));
        std::fs::create_dir_all(&profile)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", profile.display()));
        self.profiles.borrow_mut().push(profile.clone());
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| (*a).to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "goog:chromeOptions": { "binary": CHROMIUM_BIN, "args": args },
                    "goog:loggingPrefs": { "browser": "ALL" },
                    "pageLoadStrategy": "normal",
                    "timeouts": { "pageLoad": 30_000, "script": 10_000, "implicit": 0 }
                }
            }
        });
        let value = match command(self.addr, "POST", "/session", Some(&caps)) {
            Ok(v) => v,
            Err(e) => {
                kill_processes_using(&profile);
                panic!("cannot start a browser: {e}\n{}", self.log_tail());
            }
        };
        let Some(id) = value["sessionId"].as_str() else {
            kill_processes_using(&profile);
            panic!(
                "new session answered without a sessionId: {value}\n{}",
                self.log_tail()
            );
        };
        Session {
            driver: self,
            id: id.to_string(),
            profile,
            capabilities: value["capabilities"].clone(),
            deleted: false,
        }
    }

    /// Kills chromedriver (by its PID) and waits for it; idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for profile in self.profiles.borrow().iter() {
            kill_processes_using(profile);
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

/// A reference to an element of the current page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The W3C element id.
    pub id: String,
    /// The CSS selector it was found with (for messages).
    pub selector: String,
}

/// An element's position and size in CSS pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
}

/// One browser session; deleted (the browser quits) when dropped.
#[derive(Debug)]
pub struct Session<'d> {
    driver: &'d ChromeDriver,
    id: String,
    profile: PathBuf,
    capabilities: Value,
    deleted: bool,
}

impl Session<'_> {
    /// The session id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The capabilities the driver answered with (browser version, ...).
    #[must_use]
    pub const fn capabilities(&self) -> &Value {
        &self.capabilities
    }

    /// Sends `METHOD /session/{id}{path}`; returns the response's `value`.
    ///
    /// # Errors
    /// See [`command`].
    pub fn try_command(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, WebDriverError> {
        command(
            self.driver.addr,
            method,
            &format!("/session/{}{path}", self.id),
            body,
        )
    }

    /// Like [`Session::try_command`], panicking with the error and the chromedriver log.
    ///
    /// # Panics
    /// When the command fails.
    pub fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.try_command(method, path, body)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.driver.log_tail()))
    }

    /// Sets the window's size in CSS pixels.
    pub fn set_window_size(&self, width: u32, height: u32) {
        self.command(
            "POST",
            "/window/rect",
            Some(&json!({ "width": width, "height": height })),
        );
    }

    /// Navigates to `url` and waits for the page to load.
    pub fn navigate(&self, url: &str) {
        self.command("POST", "/url", Some(&json!({ "url": url })));
    }

    /// The current page's title.
    #[must_use]
    pub fn title(&self) -> String {
        self.command("GET", "/title", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The first element matching the CSS `selector`.
    ///
    /// # Panics
    /// If there is none.
    #[must_use]
    pub fn find(&self, selector: &str) -> Element {
        let v = self.command(
            "POST",
            "/element",
            Some(&json!({ "using": "css selector", "value": selector })),
        );
        let id = v[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("find {selector:?} answered without an element: {v}"));
        Element {
            id: id.to_string(),
            selector: selector.to_string(),
        }
    }

    fn element(&self, el: &Element, method: &str, what: &str, body: Option<&Value>) -> Value {
        self.try_command(method, &format!("/element/{}{what}", el.id), body)
            .unwrap_or_else(|e| panic!("{} ({e})\n{}", el.selector, self.driver.log_tail()))
    }

    /// Types `text` into `el` (WebDriver "element send keys").
    pub fn send_keys(&self, el: &Element, text: &str) {
        self.element(el, "POST", "/value", Some(&json!({ "text": text })));
    }

    /// Clicks `el` (scrolled into view; fails if something else would receive the click).
    pub fn click(&self, el: &Element) {
        self.element(el, "POST", "/click", Some(&json!({})));
    }

    /// The rendered text of `el`.
    #[must_use]
    pub fn text(&self, el: &Element) -> String {
        self.try_text(el)
            .unwrap_or_else(|e| panic!("{} ({e})\n{}", el.selector, self.driver.log_tail()))
    }

    /// The rendered text of `el`, or the error.
    ///
    /// # Errors
    /// See [`command`].
    pub fn try_text(&self, el: &Element) -> Result<String, WebDriverError> {
        self.try_command("GET", &format!("/element/{}/text", el.id), None)
            .map(|v| v.as_str().unwrap_or_default().to_string())
    }

    /// An attribute of `el` (`None` when absent).
    #[must_use]
    pub fn attribute(&self, el: &Element, name: &str) -> Option<String> {
        self.element(el, "GET", &format!("/attribute/{name}"), None)
            .as_str()
            .map(str::to_string)
    }

    /// A DOM property of `el` (`value`, `disabled`, ...).
    #[must_use]
    pub fn property(&self, el: &Element, name: &str) -> Value {
        self.element(el, "GET", &format!("/property/{name}"), None)
    }

    /// Whether `el` is displayed.
    #[must_use]
    pub fn displayed(&self, el: &Element) -> bool {
        self.element(el, "GET", "/displayed", None) == true
    }

    /// Whether `el` is enabled.
    #[must_use]
    pub fn enabled(&self, el: &Element) -> bool {
        self.element(el, "GET", "/enabled", None) == true
    }

    /// The position and size of `el`.
    #[must_use]
    pub fn rect(&self, el: &Element) -> Rect {
        let v = self.element(el, "GET", "/rect", None);
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        Rect {
            x: f("x"),
            y: f("y"),
            width: f("width"),
            height: f("height"),
        }
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page and returns its
    /// result.
    #[must_use]
    pub fn execute(&self, script: &str, args: &[Value]) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": args })),
        )
    }

    /// The first element matching the CSS `selector` inside `parent` (W3C "Find Element From
    /// Element").
    ///
    /// # Panics
    /// If there is none.
    #[must_use]
    pub fn find_within(&self, parent: &Element, selector: &str) -> Element {
        let v = self.element(
            parent,
            "POST",
            "/element",
            Some(&json!({ "using": "css selector", "value": selector })),
        );
        element_from(&v, &format!("{} {selector}", parent.selector))
    }

    /// The first element matching the CSS `selector` inside the open shadow root of the first
    /// element matching `host` (W3C "Get Element Shadow Root", then "Find Element From Shadow
    /// Root"). The element is typed into and clicked like any other; its
    /// [`Element::selector`] reads `host >>> selector`.
    ///
    /// # Panics
    /// If `host` or the element is missing, or `host` has no open shadow root.
    #[must_use]
    pub fn find_in_shadow(&self, host: &str, selector: &str) -> Element {
        let host_el = self.find(host);
        let root = self.element(&host_el, "GET", "/shadow", None);
        let Some(root_id) = root[SHADOW_KEY].as_str() else {
            panic!("{host} answered without a shadow root: {root}");
        };
        let v = self.command(
            "POST",
            &format!("/shadow/{root_id}/element"),
            Some(&json!({ "using": "css selector", "value": selector })),
        );
        element_from(&v, &format!("{host} >>> {selector}"))
    }

    /// Clears a text input or textarea (W3C "Element Clear").
    pub fn clear(&self, el: &Element) {
        self.element(el, "POST", "/clear", Some(&json!({})));
    }

    /// Runs `script` (a function body, `arguments` = `args`) every [`crate::POLL_INTERVAL`]
    /// until it returns something other than `null`, `false` or `""`, and returns that.
    ///
    /// # Errors
    /// When `deadline` passes: the last result (or WebDriver error), as text. A WebDriver error
    /// before then is retried (a page that is navigating answers with errors for a moment).
    pub fn poll_script(
        &self,
        script: &str,
        args: &[Value],
        deadline: Duration,
    ) -> Result<Value, String> {
        let start = Instant::now();
        loop {
            let last = match self.try_command(
                "POST",
                "/execute/sync",
                Some(&json!({ "script": script, "args": args })),
            ) {
                Ok(v)
                    if !matches!(&v, Value::Null | Value::Bool(false))
                        && v.as_str() != Some("") =>
                {
                    return Ok(v);
                }
                Ok(v) => v.to_string(),
                Err(e) => e.to_string(),
            };
            if start.elapsed() > deadline {
                return Err(format!("last result after {deadline:?}: {last}"));
            }
            std::thread::sleep(crate::POLL_INTERVAL);
        }
    }

    /// A PNG screenshot of the viewport.
    ///
    /// # Panics
    /// If the answer is not base64 or not a PNG.
    #[must_use]
    pub fn screenshot_png(&self) -> Vec<u8> {
        let v = self.command("GET", "/screenshot", None);
        let text = v
            .as_str()
            .unwrap_or_else(|| panic!("screenshot answered {v}"));
        let png = base64_decode(text).unwrap_or_else(|e| panic!("screenshot: {e}"));
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "screenshot is not a PNG ({} bytes)",
            png.len()
        );
        png
    }

    /// The browser console entries since the last call (`{"level","message","source",...}`;
    /// chromedriver's `goog:loggingPrefs` extension).
    #[must_use]
    pub fn console_log(&self) -> Vec<Value> {
        match self.try_command("POST", "/se/log", Some(&json!({ "type": "browser" }))) {
            Ok(Value::Array(entries)) => entries,
            Ok(other) => panic!("browser log answered {other}"),
            Err(e) => panic!("{e}\n{}", self.driver.log_tail()),
        }
    }

    /// Deletes the session (the browser quits), then kills whatever still runs with this
    /// session's profile directory. Idempotent.
    ///
    /// # Errors
    /// When the delete command fails (the processes are killed all the same).
    pub fn delete(&mut self) -> Result<(), WebDriverError> {
        if self.deleted {
            return Ok(());
        }
        self.deleted = true;
        let r = self.try_command("DELETE", "", None).map(drop);
        kill_processes_using(&self.profile);
        r
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.delete() {
            eprintln!("deleting browser session {}: {e}", self.id);
        }
    }
}

/// Sends SIGKILL, by PID, to every process whose command line mentions `profile` (the browser
/// processes of one session: the directory is unique to it).
fn kill_processes_using(profile: &Path) {
    let needle = profile.as_os_str().as_encoded_bytes();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    let me = std::process::id();
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline.windows(needle.len()).any(|w| w == needle) {
            crate::server::signal(pid, "KILL");
        }
    }
}

/// The element reference in a WebDriver answer.
fn element_from(v: &Value, selector: &str) -> Element {
    let id = v[ELEMENT_KEY]
        .as_str()
        .unwrap_or_else(|| panic!("find {selector:?} answered without an element: {v}"));
    Element {
        id: id.to_string(),
        selector: selector.to_string(),
    }
}

/// Decodes standard base64 (with or without padding; whitespace ignored).
///
/// # Errors
/// A character outside the alphabet, or a dangling single character.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    fn sextet(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0u32;
    let mut count = 0usize;
    for (i, c) in text.bytes().enumerate() {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == b'=' {
            break;
        }
        let v = sextet(c).ok_or_else(|| format!("not base64: byte {c:#04x} at {i}"))?;
        acc = (acc << 6) | v;
        bits += 6;
        count += 1;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if count % 4 == 1 {
        return Err("not base64: dangling character at the end".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::wire::complete;
    use super::*;

    #[test]
    fn base64_decodes_rfc4648_vectors() {
        for (enc, dec) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
            ("Zm9vYmFy\r\n", "foobar"),
            ("Zm9vYg", "foob"),
        ] {
            assert_eq!(base64_decode(enc).unwrap(), dec.as_bytes(), "{enc:?}");
        }
        assert_eq!(
            base64_decode("iVBORw0KGgo=").unwrap(),
            b"\x89PNG\r\n\x1a\n".to_vec()
        );
        assert_eq!(base64_decode("+/+/").unwrap(), vec![0xfb, 0xff, 0xbf]);
        assert!(base64_decode("Zm9v!").is_err());
        assert!(base64_decode("Zm9vY").is_err());
    }

    #[test]
    fn complete_waits_for_the_whole_body() {
        assert!(!complete(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n"));
        assert!(!complete(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab"));
        assert!(complete(
            b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nabcd"
        ));
        // Without a length only the peer closing ends the response.
        assert!(!complete(b"HTTP/1.1 200 OK\r\n\r\nabcd"));
    }
}

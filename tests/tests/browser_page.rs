//! The web page in a real browser: headless Chromium (driven over WebDriver by chromedriver)
//! opens the classic page `GET /page`, types a number into `#phone`, clicks `#call-button`, and `#status` shows the
//! call's progress in words until "connected" and then "ended". callbridge runs with
//! `[lab] endpoints = true`, so its built-in SIP phones answer as the customer (via the trunk)
//! and as the agent; the call must reach `bridged` and then `completed` in the API too.
//!
//! A screenshot taken while the page shows "connected" is written to the test's workdir and
//! copied to `<target>/browser_page.png`.

use std::time::{Duration, Instant};

use callbridge_tests::browser::{ChromeDriver, Element, Session};
use callbridge_tests::record::{self, is_terminal, media, media_summary, passes_through};
use callbridge_tests::{target_dir, Agent, Callbridge, Config, PortBlock, Workdir, CALL_DEADLINE};
use serde_json::Value;

/// The number typed into the page (sent to the trunk, where the lab customer answers).
const NUMBER: &str = "+15551234567";
/// How often the test reads `#status`.
const STATUS_POLL: Duration = Duration::from_millis(200);
/// Deadline for the page to show a state.
const PAGE_DEADLINE: Duration = Duration::from_secs(60);

/// The texts `#status` shows, in the order a successful call goes through them, with the
/// `data-state` the page sets for each (copied from `controlplane/http/src/page.rs`).
const PROGRESS: [(&str, &str); 7] = [
    ("sending", "Sending your request…"),
    ("queued", "Request received. Waiting for a free agent…"),
    (
        "calling_customer",
        "Calling you now… please pick up your phone.",
    ),
    ("announcing", "Please listen to the short message…"),
    (
        "calling_agent",
        "Please listen to the short message while we connect you to an agent…",
    ),
    ("bridged", "Connected. You are talking to an agent."),
    ("completed", "The call has ended. Thank you for calling!"),
];
const CONNECTED: usize = 5;
const ENDED: usize = 6;

/// Reads `#status` every [`STATUS_POLL`] until it shows `PROGRESS[want]`. Every distinct text
/// seen is appended to `seen`; a text outside [`PROGRESS`], or one that goes backwards, fails
/// at once (that is the page showing an error or a wrong state).
fn wait_for_progress(
    cb: &mut Callbridge,
    browser: &Session<'_>,
    status: &Element,
    want: usize,
    seen: &mut Vec<String>,
) {
    let start = Instant::now();
    loop {
        // A transient WebDriver error is retried until the deadline; the last one is reported.
        let text = browser.try_text(status);
        if let Ok(text) = &text {
            if seen.last() != Some(text) {
                seen.push(text.clone());
                let Some(i) = PROGRESS.iter().position(|(_, t)| t == text) else {
                    cb.fail(&format!(
                        "#status shows {text:?}, which is not a step of a successful call \
                         (texts so far: {seen:?})"
                    ));
                };
                let previous = seen
                    .iter()
                    .rev()
                    .skip(1)
                    .find_map(|s| PROGRESS.iter().position(|(_, t)| t == s));
                if previous.is_some_and(|p| p > i) {
                    cb.fail(&format!("#status went backwards: {seen:?}"));
                }
            }
            if text == PROGRESS[want].1 {
                return;
            }
        }
        if let Some(exit) = cb.try_wait() {
            cb.fail(&format!(
                "callbridge exited with {exit} while the page showed {seen:?}"
            ));
        }
        if start.elapsed() > PAGE_DEADLINE {
            cb.fail(&format!(
                "#status did not show {:?} within {PAGE_DEADLINE:?}; texts seen: {seen:?}; \
                 last read: {text:?}; browser console: {:?}",
                PROGRESS[want].1,
                browser.console_log()
            ));
        }
        std::thread::sleep(STATUS_POLL);
    }
}

/// The call id, from the URLs the page fetched (`GET /v1/call-requests/{id}` while polling; the
/// page keeps the id in a closure, so the browser's resource timing entries are where it shows).
fn call_id_from_page(browser: &Session<'_>) -> Option<String> {
    let urls = browser.execute(
        "return performance.getEntriesByType('resource').map(function (e) { return e.name; });",
        &[],
    );
    let ids: Vec<String> = urls
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|u| u.split_once("/v1/call-requests/").map(|(_, rest)| rest))
        .map(|rest| {
            rest.split(['?', '#'])
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .filter(|id| !id.is_empty())
        .collect();
    let first = ids.first()?.clone();
    assert!(
        ids.iter().all(|id| *id == first),
        "the page polled more than one call: {ids:?}"
    );
    Some(first)
}

fn save_screenshot(browser: &Session<'_>, dir: &Workdir, name: &str) {
    let png = browser.screenshot_png();
    let in_workdir = dir.file(name);
    std::fs::write(&in_workdir, &png)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", in_workdir.display()));
    let copy = target_dir().join(name);
    std::fs::copy(&in_workdir, &copy)
        .unwrap_or_else(|e| panic!("cannot copy the screenshot to {}: {e}", copy.display()));
    eprintln!("screenshot ({} bytes): {}", png.len(), copy.display());
}

#[test]
fn page_shows_a_call_through_to_connected_in_a_real_browser() {
    let dir = Workdir::new("browser_page");
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    // Lab phones: the customer at the trunk address (port 0), agent alice at port 2.
    let lab = PortBlock::reserve(4);
    let webdriver = PortBlock::reserve(2);
    let config = Config::new(&ports, lab.addr(0))
        .agent(Agent::new("alice", &format!("sip:alice@{}", lab.addr(2))))
        .lab_endpoints(true);
    let mut cb = Callbridge::start(&dir, &config);

    // Declared after the server and the workdir, so dropped before them: the session (which
    // borrows the driver) first, then chromedriver, then callbridge, then the workdir.
    let driver = ChromeDriver::start(&dir, webdriver.port(0));
    let mut browser = driver.new_session(&dir);
    eprintln!(
        "browser: {} {}",
        browser.capabilities()["browserName"],
        browser.capabilities()["browserVersion"]
    );
    browser.set_window_size(1024, 800);

    // The classic page (the demo page at / embeds the widget instead).
    let url = format!("http://{}/page", cb.http_addr());
    browser.navigate(&url);
    let title = browser.title();
    assert!(
        title.contains("ACME Corp"),
        "page title {title:?} does not name the business"
    );
    let phone = browser.find("#phone");
    let button = browser.find("#call-button");
    let status = browser.find("#status");
    assert!(browser.displayed(&phone), "#phone is not displayed");
    assert!(browser.displayed(&button), "#call-button is not displayed");
    assert!(
        browser.enabled(&button),
        "#call-button is disabled before any click"
    );
    assert_eq!(browser.text(&button), "Call me");
    assert_eq!(
        browser.text(&status),
        "",
        "#status is not empty before any click"
    );
    // Layout: the input and the button are on screen, the button below the input.
    let viewport = browser.execute("return [window.innerWidth, window.innerHeight];", &[]);
    let (vw, vh) = (
        viewport[0].as_f64().unwrap_or(0.0),
        viewport[1].as_f64().unwrap_or(0.0),
    );
    for el in [&phone, &button] {
        let r = browser.rect(el);
        assert!(
            r.width > 0.0
                && r.height > 0.0
                && r.x >= 0.0
                && r.y >= 0.0
                && r.x + r.width <= vw
                && r.y + r.height <= vh,
            "{} is not fully inside the {vw}x{vh} viewport: {r:?}",
            el.selector
        );
    }
    assert!(
        browser.rect(&button).y >= browser.rect(&phone).y + browser.rect(&phone).height,
        "#call-button is not below #phone"
    );

    browser.send_keys(&phone, NUMBER);
    assert_eq!(
        browser.property(&phone, "value"),
        NUMBER,
        "#phone value after typing"
    );
    browser.click(&button);

    let mut seen = Vec::new();
    wait_for_progress(&mut cb, &browser, &status, CONNECTED, &mut seen);
    assert_eq!(
        browser.attribute(&status, "data-state").as_deref(),
        Some(PROGRESS[CONNECTED].0),
        "#status data-state while it shows the connected text"
    );
    assert_eq!(
        browser.property(&button, "disabled"),
        true,
        "#call-button must stay disabled while the call runs"
    );
    save_screenshot(&browser, &dir, "browser_page.png");

    // The API agrees: the call the page polls is (or was) bridged.
    let Some(id) = call_id_from_page(&browser) else {
        cb.fail("the page never fetched /v1/call-requests/{id} (no resource timing entry)");
    };
    let rec = cb.call_request(&id);
    if !passes_through(&rec, &["queued", "bridged"]) {
        cb.fail(&format!(
            "the page shows connected, but the API record is not bridged: {rec:#}"
        ));
    }
    assert_eq!(rec["business"], "acme", "{rec:#}");
    assert_eq!(rec["customer"], NUMBER, "{rec:#}");
    assert_eq!(rec["agent"], "alice", "{rec:#}");

    // The lab agent hangs up after its talk time: the page says the call ended.
    wait_for_progress(&mut cb, &browser, &status, ENDED, &mut seen);
    assert_eq!(
        browser.attribute(&status, "data-state").as_deref(),
        Some(PROGRESS[ENDED].0)
    );
    assert!(
        browser.enabled(&button),
        "#call-button is still disabled after the call ended"
    );
    let end = cb.wait_for_status(&id, is_terminal, CALL_DEADLINE);
    if record::status(&end) != "completed"
        || !passes_through(
            &end,
            &[
                "queued",
                "calling_customer",
                "announcing",
                "calling_agent",
                "bridged",
                "completed",
            ],
        )
    {
        cb.fail(&format!("the call did not go the whole way: {end:#}"));
    }
    if media(&end, "customer", "rx_packets") == 0 || media(&end, "agent", "rx_packets") == 0 {
        cb.fail(&format!(
            "no RTP from both lab phones ({}): {end:#}",
            media_summary(&end)
        ));
    }
    eprintln!("#status texts seen: {seen:#?}");
    eprintln!("API events: {:?}", record::statuses(&end));

    // Nothing went wrong in the page's script (network errors, including a missing favicon,
    // and exceptions are `SEVERE`).
    let console = browser.console_log();
    let severe: Vec<&Value> = console.iter().filter(|e| e["level"] == "SEVERE").collect();
    if !severe.is_empty() {
        cb.fail(&format!("browser console errors: {severe:#?}"));
    }
    if let Err(e) = browser.delete() {
        panic!("{e}");
    }
}

//! The embeddable widget on a third-party site and the agent desktop, in two real browsers
//! (headless Chromium over WebDriver), with SIPp as the customer's and the agent's phones.
//!
//! ```text
//!  browser "shop" ─► StaticSite 127.0.0.1:S  (/ links to /lungo-3000.html?…, which embeds
//!        │             <script src="http://127.0.0.1:C/widget.js" data-business="acme" data-key=… async>)
//!        └─CORS: POST /v1/call-requests (X-Widget-Key), GET …/widget, SSE …/events ─► callbridge :C
//!  browser "desk" ─► callbridge :C /agent: token login, presence, WebSocket (screen pop, status), sale
//!  callbridge ─SIP─► SIPp customer (behind the trunk; rings 3 s, answers)
//!             └SIP─► SIPp agent alice (rings 1 s, answers, hangs up after 3 s)
//! ```
//!
//! Business `acme` has a `widget_key` and allows only the shop's origin; agent `alice` has a
//! desktop `token`. The desktop signs in, switches presence to away and back to available (the
//! API agrees each time) and waits for its WebSocket; the shop page loads the widget, which must
//! be isolated from the page's rude global CSS (shadow root), rejects a national number (acme has
//! no default country) with an accessible error, takes `+1 (555) 123-4567`, and Enter submits.
//! Then: the desktop shows the screen pop (customer, business, page URL as a link, title,
//! referrer); the widget shows the live status through "Connected" to "Call ended. Thank you!";
//! the desktop's call status reaches `completed` and the wrap-up form records a sale, which
//! `GET /v1/records` then shows with the page the visitor was on.
//!
//! **Why the screen pop is proven to come before the agent's phone rings.** The desktop page
//! gets a `MutationObserver` (installed by the test, so the proof does not depend on the
//! desktop's own code) that stores `Date.now()` in `window.__pop.at` in the same task in which
//! `#screen-pop` first shows the call with a link to the shop page. SIPp's message log stamps
//! the agent's INVITE with the wall-clock time it was received (local time, microseconds);
//! that stamp is turned into epoch milliseconds by the desktop browser itself (`new Date(y, m,
//! d, h, mi, s, ms)`), so both numbers come from the same host clock and time zone. The test
//! asserts `pop < INVITE`. This is not timing-fragile: nothing is sampled by polling (the
//! observer fires as the DOM changes, SIPp logs as the datagram arrives), and by design the
//! call is assigned (and popped) as the customer is dialled, while the agent is dialled only
//! after the customer's 3 s of ringing, so the margin is about 3 s against the few
//! milliseconds a WebSocket message takes to render; a slow machine stretches the ringing
//! side too. The margin is printed.
//!
//! Screenshots of both pages at the end are written to the workdir and copied to
//! `<target>/browser_widget_desktop_{desk,shop}.png`.

use std::time::Duration;

use callbridge_tests::browser::{
    ChromeDriver, Element, Session, SitePage, StaticSite, KEY_ENTER, KEY_ESCAPE,
};
use callbridge_tests::http::request_with_headers;
use callbridge_tests::record::{self, is_terminal, passes_through};
use callbridge_tests::scenario::{rings, rings_then_hangs_up, FULL_CALL_PATH};
use callbridge_tests::{
    target_dir, Agent, Callbridge, Config, PortBlock, Scenario, Sipp, Workdir, CALL_DEADLINE,
    SIPP_EXIT_DEADLINE,
};
use serde_json::{json, Value};

/// What the visitor types (spaces, parentheses and a dash are stripped by the widget).
const TYPED: &str = "+1 (555) 123-4567";
/// The E.164 number the widget must send.
const NUMBER: &str = "+15551234567";
/// A national number: refused, because `acme` has no default country.
const NATIONAL: &str = "030 1234567";
const WIDGET_KEY: &str = "wk_acme_4f1c9e2b7d";
const TOKEN: &str = "tok_alice_8b3e51c0a9f2";
const PRODUCT_TITLE: &str = "Lungo 3000 espresso machine – Example Shop";
/// The customer rings this long before answering; the screen pop must come before the agent's
/// phone rings, which is after this.
const CUSTOMER_RING_MS: u32 = 3000;
const AGENT_RING_MS: u32 = 1000;
const TALK_MS: u32 = 3000;
/// Deadline for the pages to show a state.
const PAGE_DEADLINE: Duration = Duration::from_secs(60);

/// The shop's landing page: a link to the product page, so that the product page has a
/// referrer.
fn shop_index() -> String {
    r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Example Shop</title><link rel="icon" href="data:,"></head>
<body><h1>Example Shop</h1><p><a id="go" href="/lungo-3000.html?utm_source=home">Lungo 3000</a></p></body></html>
"#
    .to_string()
}

/// The product page embedding the widget, with CSS that would break a widget not isolated in a
/// shadow root.
fn shop_product(widget_src: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{PRODUCT_TITLE}</title><link rel="icon" href="data:,">
<style>
  * {{ font-size: 31px; font-family: "Comic Sans MS", cursive; color: rgb(0, 128, 0); }}
  button {{ background: rgb(255, 0, 255); border: 6px dotted rgb(0, 0, 255); width: 100%; text-transform: uppercase; }}
  input, select {{ display: none; }}
  p {{ margin: 80px; }}
</style></head>
<body>
<h1>Lungo 3000</h1>
<p>Questions? We call you back.</p>
<button id="page-button" type="button">Add to cart</button>
<script src="{widget_src}" data-business="acme" data-key="{WIDGET_KEY}" data-agent="alice" async></script>
</body></html>
"#
    )
}

/// `GET path` with the agent's token, expecting 200 JSON.
fn get_as_agent(cb: &Callbridge, path: &str) -> Value {
    let auth = format!("Bearer {TOKEN}");
    let r = request_with_headers(
        cb.http_addr(),
        "GET",
        path,
        &[("Authorization", auth.as_str())],
        None,
    )
    .unwrap_or_else(|e| cb.fail(&format!("GET {path}: {e}")));
    if r.status != 200 {
        cb.fail(&format!("GET {path} answered {} {:?}", r.status, r.body));
    }
    r.json()
}

/// Polls `script` in `browser` until it returns a truthy value; fails with both logs otherwise.
fn wait_js(
    cb: &mut Callbridge,
    browser: &Session<'_>,
    what: &str,
    script: &str,
    args: &[Value],
) -> Value {
    if let Some(exit) = cb.try_wait() {
        cb.fail(&format!("callbridge exited with {exit} before {what}"));
    }
    match browser.poll_script(script, args, PAGE_DEADLINE) {
        Ok(v) => v,
        Err(last) => {
            let page = browser
                .try_command(
                    "POST",
                    "/execute/sync",
                    Some(&json!({ "script": PAGE_STATE, "args": [] })),
                )
                .map_or_else(|e| e.to_string(), |v| v.to_string());
            cb.fail(&format!(
                "timed out waiting for {what} ({last}); page: {page}; browser console: {:#?}",
                browser.console_log()
            ))
        }
    }
}

/// Selects `<option value=value>` of the `select` (a click, as a user would).
fn choose(browser: &Session<'_>, select: &Element, value: &str) {
    let option = browser.find_within(select, &format!("option[value=\"{value}\"]"));
    browser.click(&option);
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

/// Waits until `GET /v1/agents/alice/presence` says `want`.
fn wait_presence(cb: &mut Callbridge, want: &str) {
    let start = std::time::Instant::now();
    loop {
        let v = get_as_agent(cb, "/v1/agents/alice/presence");
        if v["presence"] == want {
            return;
        }
        if start.elapsed() > PAGE_DEADLINE {
            cb.fail(&format!("presence never became {want:?}; last: {v}"));
        }
        std::thread::sleep(callbridge_tests::POLL_INTERVAL);
    }
}

/// The local wall-clock stamp (`2026-12-06 06:56:27.719224`) SIPp logged for the first
/// request `method` it received.
fn received_at(sipp: &Sipp, method: &str) -> Option<String> {
    let log = sipp.messages();
    let mut stamp: Option<&str> = None;
    let mut lines = log.lines();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("-----") {
            stamp = Some(rest.trim_start_matches('-').trim());
            continue;
        }
        if line.contains("message received") {
            let first = lines
                .by_ref()
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default();
            if first.starts_with(&format!("{method} ")) {
                return stamp.map(str::to_string);
            }
        }
    }
    None
}

/// What a page shows, for failure messages: its URL, its text, and the widget's text.
const PAGE_STATE: &str = r#"
  var h = document.querySelector('#callbridge-widget');
  return { url: location.href, text: document.body ? document.body.innerText : null,
           widget: h && h.shadowRoot ? h.shadowRoot.querySelector('.cb').innerText : null };
"#;

/// Records, in the shop page, every (status, text) the widget's `#cb-status` shows, in
/// `window.__widget` (a `MutationObserver`, so no state is missed between two polls).
const WATCH_WIDGET: &str = r#"
  var st = document.querySelector('#callbridge-widget').shadowRoot.querySelector('#cb-status');
  window.__widget = [];
  var note = function () {
    var s = st.getAttribute('data-status') || '', t = st.textContent;
    var last = window.__widget[window.__widget.length - 1];
    if (!last || last.status !== s || last.text !== t) {
      window.__widget.push({ status: s, text: t, id: st.getAttribute('data-call-id'), at: Date.now() });
    }
  };
  new MutationObserver(note).observe(st, { attributes: true, childList: true, characterData: true, subtree: true });
  return true;
"#;

/// Records, in the desktop page, the moment `#screen-pop` first shows a call with a link to
/// `arguments[0]` (`window.__pop`), and every `#call-status` `data-status`
/// (`window.__desk`).
const WATCH_DESK: &str = r#"
  var url = arguments[0];
  window.__pop = null;
  window.__desk = [];
  var check = function () {
    var pop = document.querySelector('#screen-pop');
    if (!window.__pop && pop && pop.getAttribute('data-call-id') && !pop.hidden && pop.offsetParent !== null) {
      var links = Array.prototype.filter.call(pop.querySelectorAll('a'), function (a) {
        return a.getAttribute('href') === url;
      });
      if (links.length) {
        window.__pop = { at: Date.now(), id: pop.getAttribute('data-call-id'), text: pop.innerText };
      }
    }
    var cs = document.querySelector('#call-status');
    var s = cs && cs.getAttribute('data-status');
    if (s && window.__desk[window.__desk.length - 1] !== s) { window.__desk.push(s); }
  };
  new MutationObserver(check).observe(document.body, { attributes: true, childList: true, characterData: true, subtree: true });
  check();
  return true;
"#;

/// `2026-12-06 06:56:27.719224` (local time) → epoch milliseconds, in the browser's time zone.
const LOCAL_STAMP_TO_MS: &str = r#"
  var m = /^(\d{4})-(\d{2})-(\d{2})\s+(\d{2}):(\d{2}):(\d{2})\.(\d{3})/.exec(arguments[0]);
  if (!m) { return null; }
  return new Date(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6], +m[7]).getTime();
"#;

#[test]
fn widget_call_pops_the_desktop_before_the_agent_rings_and_the_sale_is_recorded() {
    let dir = Workdir::new("browser_widget_desktop");
    // The browsers start first: SIPp's global timeout runs from its start.
    let webdriver = PortBlock::reserve(2);
    let driver = ChromeDriver::start(&dir, webdriver.port(0));
    let mut desk = driver.new_session(&dir);
    let mut shop = driver.new_session(&dir);
    desk.set_window_size(1024, 900);
    shop.set_window_size(1024, 900);

    let mut customer = Sipp::spawn(&dir, "customer", Scenario::Answer, &rings(CUSTOMER_RING_MS));
    let mut agent = Sipp::spawn(
        &dir,
        "agent",
        Scenario::AnswerBye,
        &rings_then_hangs_up(AGENT_RING_MS, TALK_MS),
    );
    let site_ports = PortBlock::reserve(2);
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let site_origin = format!("http://{}", site_ports.addr(0));
    let config = Config::new(&ports, customer.sip_addr())
        .business_toml(
            "acme",
            &format!("widget_key = \"{WIDGET_KEY}\"\nallowed_origins = [\"{site_origin}\"]"),
        )
        .agent(
            Agent::new("alice", &agent.sip_uri("alice"))
                .with_toml(&format!("name = \"Alice Example\"\ntoken = \"{TOKEN}\"")),
        );
    let mut cb = Callbridge::start(&dir, &config);
    let site = StaticSite::start(
        site_ports.port(0),
        vec![
            SitePage::html("/", &shop_index()),
            SitePage::html(
                "/lungo-3000.html",
                &shop_product(&format!("http://{}/widget.js", cb.http_addr())),
            ),
        ],
    );
    let product_url = site.url("/lungo-3000.html?utm_source=home");
    let index_url = site.url("/");

    // The assets exist, and acme is open now (no hours configured).
    for (path, kind) in [
        ("/widget.js", "javascript"),
        ("/agent", "text/html"),
        ("/", "text/html"),
    ] {
        let r = cb.get(path);
        if r.status != 200 || !r.header("content-type").unwrap_or_default().contains(kind) {
            cb.fail(&format!(
                "GET {path} answered {} {:?}",
                r.status,
                r.header("content-type")
            ));
        }
    }
    let info = cb.get_json("/v1/businesses/acme/widget");
    if info["open_now"] != true || info["name"] != "ACME Corp" {
        cb.fail(&format!("acme must be open now without hours: {info:#}"));
    }

    // ---- the agent desktop: sign in, presence, live connection -----------------------------
    desk.navigate(&format!("http://{}/agent", cb.http_addr()));
    let token = desk.find("#token");
    desk.send_keys(&token, TOKEN);
    desk.click(&desk.find("#login"));
    wait_js(
        &mut cb,
        &desk,
        "the desktop to sign in and connect its WebSocket",
        "var n = document.querySelector('#agent-name'), c = document.querySelector('#connection');
         return n && n.textContent.indexOf('Alice Example') >= 0 && c && c.getAttribute('data-state') === 'connected';",
        &[],
    );
    assert_eq!(
        desk.execute(
            "return sessionStorage.getItem('callbridge.agent.token');",
            &[]
        ),
        TOKEN,
        "the token is remembered for the tab"
    );
    let presence = desk.find("#presence");
    choose(&desk, &presence, "away");
    wait_presence(&mut cb, "away");
    choose(&desk, &presence, "available");
    wait_presence(&mut cb, "available");
    assert_eq!(desk.property(&presence, "value"), "available");
    let _ = desk.execute(WATCH_DESK, &[json!(product_url)]);

    // ---- the shop: the widget on a third-party page ------------------------------------------
    shop.navigate(&index_url);
    shop.click(&shop.find("#go"));
    wait_js(
        &mut cb,
        &shop,
        "the widget to render in its shadow root on the product page",
        "var h = document.querySelector('#callbridge-widget');
         return document.title === arguments[0] && !!h && !!h.shadowRoot && !!h.shadowRoot.querySelector('#cb-open');",
        &[json!(PRODUCT_TITLE)],
    );
    // The page's `*` and `button` rules do not reach into the widget.
    let styles = shop.execute(
        "var b = document.querySelector('#callbridge-widget').shadowRoot.querySelector('#cb-open');
         var p = document.querySelector('#page-button');
         var cs = getComputedStyle(b), ps = getComputedStyle(p);
         return { widget: [cs.backgroundColor, cs.fontSize, cs.textTransform, cs.borderTopStyle],
                  page: [ps.backgroundColor, ps.fontSize, ps.textTransform, ps.borderTopStyle] };",
        &[],
    );
    assert_eq!(
        styles["page"],
        json!(["rgb(255, 0, 255)", "31px", "uppercase", "dotted"]),
        "the shop's own CSS applies to its own button"
    );
    for (i, leaked) in ["rgb(255, 0, 255)", "31px", "uppercase", "dotted"]
        .iter()
        .enumerate()
    {
        assert_ne!(
            styles["widget"][i], *leaked,
            "the page's CSS leaked into the widget: {styles}"
        );
    }
    let _ = shop.execute(WATCH_WIDGET, &[]);

    let open = shop.find_in_shadow("#callbridge-widget", "#cb-open");
    assert_eq!(shop.text(&open).trim_start_matches('☎').trim(), "Call me");
    shop.click(&open);
    let phone = shop.find_in_shadow("#callbridge-widget", "#cb-phone");
    let when = shop.find_in_shadow("#callbridge-widget", "#cb-when");
    let error = shop.find_in_shadow("#callbridge-widget", "#cb-error");
    assert!(
        shop.displayed(&phone),
        "#cb-phone is not shown after clicking Call me"
    );
    assert_eq!(
        shop.attribute(&phone, "autocomplete").as_deref(),
        Some("tel")
    );
    assert_eq!(shop.attribute(&phone, "inputmode").as_deref(), Some("tel"));
    assert_eq!(
        shop.execute(
            "return document.querySelector('#callbridge-widget').shadowRoot.activeElement.id;",
            &[]
        ),
        "cb-phone",
        "opening the form moves the focus to the phone input"
    );
    // A national number without a default country: an accessible error while typing.
    shop.send_keys(&phone, NATIONAL);
    assert_eq!(
        shop.attribute(&phone, "aria-invalid").as_deref(),
        Some("true")
    );
    assert!(
        !shop.text(&error).is_empty(),
        "no error shown for {NATIONAL:?}"
    );
    assert_eq!(
        shop.attribute(&error, "aria-live").as_deref(),
        Some("polite")
    );
    shop.clear(&phone);
    shop.send_keys(&phone, TYPED);
    assert_eq!(
        shop.attribute(&phone, "aria-invalid").as_deref(),
        Some("false")
    );
    assert_eq!(shop.text(&error), "", "an error is shown for {TYPED:?}");
    assert_eq!(shop.property(&when, "value"), "now");
    // Enter submits.
    shop.send_keys(&phone, KEY_ENTER);

    // ---- the screen pop --------------------------------------------------------------------
    let pop = wait_js(
        &mut cb,
        &desk,
        "the screen pop with the page URL",
        "return window.__pop;",
        &[],
    );
    let call_id = pop["id"].as_str().unwrap_or_default().to_string();
    let pop_text = pop["text"].as_str().unwrap_or_default();
    for (what, want) in [
        ("customer", NUMBER),
        ("business", "ACME Corp"),
        ("page URL", product_url.as_str()),
        ("page title", PRODUCT_TITLE),
        ("referrer", index_url.as_str()),
    ] {
        if !pop_text.contains(want) {
            cb.fail(&format!(
                "the screen pop does not show the {what} {want:?}: {pop_text:?}"
            ));
        }
    }

    // ---- the call, in the widget -------------------------------------------------------------
    let seen = wait_js(
        &mut cb,
        &shop,
        "the widget to show the call ended",
        "var w = window.__widget || [];
         var f = w.filter(function (e) { return ['completed', 'failed', 'cancelled', 'error'].indexOf(e.status) >= 0; });
         return f.length ? w : null;",
        &[],
    );
    eprintln!("widget statuses: {seen:#}");
    let seen = seen.as_array().cloned().unwrap_or_default();
    let text_of = |status: &str| {
        seen.iter()
            .find(|e| e["status"] == status)
            .and_then(|e| e["text"].as_str())
            .map(str::to_string)
    };
    if text_of("bridged").as_deref() != Some("Connected")
        || text_of("completed").as_deref() != Some("Call ended. Thank you!")
    {
        cb.fail(&format!(
            "the widget did not show Connected, then Call ended: {seen:#?}"
        ));
    }
    if let Some(t) = text_of("calling_customer") {
        assert_eq!(t, "Calling you now…");
    }
    let order = [
        "sending",
        "queued",
        "calling_customer",
        "announcing",
        "calling_agent",
        "bridged",
        "completed",
    ];
    let positions: Vec<Option<usize>> = seen
        .iter()
        .map(|e| order.iter().position(|s| e["status"] == *s))
        .collect();
    if positions.iter().any(Option::is_none) || positions.windows(2).any(|w| w[0] > w[1]) {
        cb.fail(&format!(
            "the widget showed statuses out of order: {seen:#?}"
        ));
    }
    let widget_ids: Vec<&str> = seen.iter().filter_map(|e| e["id"].as_str()).collect();
    if widget_ids.iter().any(|id| *id != call_id) {
        cb.fail(&format!(
            "the widget followed {widget_ids:?}, the desktop popped {call_id}"
        ));
    }

    // Escape closes the form and gives the focus back to the Call me button.
    shop.send_keys(&phone, KEY_ESCAPE);
    assert!(
        !shop.displayed(&phone),
        "Escape did not close the widget's form"
    );
    assert_eq!(
        shop.execute(
            "return document.querySelector('#callbridge-widget').shadowRoot.activeElement.id;",
            &[]
        ),
        "cb-open",
        "closing the form moves the focus back to Call me"
    );

    // ---- the screen pop came before the agent's INVITE ---------------------------------------
    let Some(invite) = received_at(&agent, "INVITE") else {
        agent.fail("the agent never received an INVITE");
    };
    let invite_ms = desk.execute(LOCAL_STAMP_TO_MS, &[json!(invite)]);
    let (Some(pop_ms), Some(invite_ms)) = (pop["at"].as_i64(), invite_ms.as_i64()) else {
        cb.fail(&format!(
            "cannot compare the pop ({pop}) with the INVITE stamp {invite:?}"
        ));
    };
    eprintln!(
        "screen pop at {pop_ms}, agent INVITE at {invite_ms} ({invite}): {} ms earlier",
        invite_ms - pop_ms
    );
    if pop_ms >= invite_ms {
        cb.fail(&format!(
            "the screen pop ({pop_ms}) did not come before the agent's INVITE ({invite_ms}, {invite})"
        ));
    }

    // ---- wrap-up: the sale, in the desktop ---------------------------------------------------
    wait_js(
        &mut cb,
        &desk,
        "the desktop to show the call completed and the sale form",
        "var s = document.querySelector('#call-status'), f = document.querySelector('#sale-form');
         return s && s.getAttribute('data-status') === 'completed' && f && !f.hidden && f.offsetParent !== null;",
        &[],
    );
    let desk_statuses = desk.execute("return window.__desk;", &[]);
    eprintln!("desktop call statuses: {desk_statuses}");
    let outcome = desk.find("#sale-outcome");
    choose(&desk, &outcome, "sale");
    assert_eq!(desk.property(&desk.find("#sale-currency"), "value"), "EUR");
    desk.send_keys(&desk.find("#sale-amount"), "49.90");
    desk.send_keys(&desk.find("#sale-product"), "Lungo 3000");
    desk.send_keys(&desk.find("#sale-notes"), "Wants the milk frother too");
    desk.click(&desk.find("#sale-submit"));
    wait_js(
        &mut cb,
        &desk,
        "the desktop to say the sale was saved",
        "var r = document.querySelector('#sale-result'); return r && r.textContent.indexOf('Saved') >= 0;",
        &[],
    );

    // ---- the API agrees --------------------------------------------------------------------
    let done = cb.wait_for_status(&call_id, is_terminal, CALL_DEADLINE);
    if record::status(&done) != "completed" || !passes_through(&done, &FULL_CALL_PATH) {
        cb.fail(&format!("the call did not go the whole way: {done:#}"));
    }
    let records = cb.get_json("/v1/records?business=acme");
    let Some(rec) = records
        .as_array()
        .and_then(|a| a.iter().find(|r| r["id"] == call_id.as_str()))
    else {
        cb.fail(&format!("{call_id} is not in /v1/records: {records:#}"));
    };
    let expected_sale = json!({
        "outcome": "sale", "amount": "49.90", "currency": "EUR",
        "product": "Lungo 3000", "notes": "Wants the milk frother too",
    });
    for (k, v) in expected_sale.as_object().into_iter().flatten() {
        if rec["sale"][k] != *v {
            cb.fail(&format!(
                "record sale.{k} is {}, expected {v}: {rec:#}",
                rec["sale"][k]
            ));
        }
    }
    let expected = json!({
        "page": { "url": product_url, "title": PRODUCT_TITLE, "referrer": index_url },
        "customer": NUMBER,
        "status": "completed",
    });
    for (k, v) in expected.as_object().into_iter().flatten() {
        let got = match v {
            Value::Object(fields) => fields
                .keys()
                .map(|f| (f.clone(), rec[k][f].clone()))
                .collect(),
            _ => rec[k].clone(),
        };
        if got != *v {
            cb.fail(&format!("record {k} is {got}, expected {v}: {rec:#}"));
        }
    }

    agent.assert_passed(SIPP_EXIT_DEADLINE);
    customer.assert_passed(SIPP_EXIT_DEADLINE);
    for (name, browser) in [("desk", &desk), ("shop", &shop)] {
        save_screenshot(browser, &dir, &format!("browser_widget_desktop_{name}.png"));
    }

    // Nothing went wrong in either page's script (network errors and exceptions are SEVERE).
    for (name, browser) in [("desktop", &desk), ("shop", &shop)] {
        let console = browser.console_log();
        let severe: Vec<&Value> = console.iter().filter(|e| e["level"] == "SEVERE").collect();
        if !severe.is_empty() {
            cb.fail(&format!(
                "{name} console errors: {severe:#?}\nshop site served: {:#?}",
                site.served()
            ));
        }
    }
    for b in [&mut shop, &mut desk] {
        if let Err(e) = b.delete() {
            panic!("{e}");
        }
    }
}

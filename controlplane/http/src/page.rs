//! The click-to-call web page (claims 15–17): one self-contained HTML document, inline CSS and
//! JS, no external assets. Contract for browser tests: `#phone`, `#call-button`, `#status`.

use crate::model::BusinessInfo;

/// Escapes text for HTML element content and double-quoted attributes.
#[must_use]
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page for one business. `all` lists every business; when there are several, the page
/// links to the others.
#[must_use]
pub fn render(business: &BusinessInfo, all: &[BusinessInfo]) -> String {
    let name = escape_html(&business.name);
    let id = escape_html(business.id.as_str());
    let others: String = if all.len() > 1 {
        let links: Vec<String> = all
            .iter()
            .map(|b| {
                let current = if b.id == business.id {
                    " aria-current=\"page\""
                } else {
                    ""
                };
                format!(
                    "<a href=\"/page?business={}\"{current}>{}</a>",
                    escape_html(b.id.as_str()),
                    escape_html(&b.name)
                )
            })
            .collect();
        format!("<nav aria-label=\"Businesses\">{}</nav>", links.join(" · "))
    } else {
        String::new()
    };
    fill(
        PAGE,
        &[
            ("{{NAME}}", &name),
            ("{{ID}}", &id),
            ("{{OTHERS}}", &others),
        ],
    )
}

/// Replaces placeholders in one pass, so that inserted text is never scanned again.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        match values.iter().find(|(k, _)| tail.starts_with(k)) {
            Some((k, v)) => {
                out.push_str(v);
                rest = &tail[k.len()..];
            }
            None => {
                out.push_str("{{");
                rest = &tail[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A small HTML page for errors (unknown business, nothing configured).
#[must_use]
pub fn message(title: &str, text: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>{t}</title></head><body><main><h1>{t}</h1>\
         <p>{x}</p></main></body></html>",
        t = escape_html(title),
        x = escape_html(text)
    )
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Call me back – {{NAME}}</title>
<link rel="icon" href="data:,">
<style>
  :root { color-scheme: light dark; --accent: #0b6bcb; --bg: #f6f7f9; --card: #fff; --text: #1b1f24; --muted: #59636e; }
  @media (prefers-color-scheme: dark) { :root { --bg: #14171a; --card: #1e2226; --text: #e8eaed; --muted: #a0a8b0; --accent: #5aa9ff; } }
  * { box-sizing: border-box; }
  body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--text); }
  main { max-width: 28rem; margin: 3rem auto; padding: 2rem; background: var(--card); border-radius: 12px; box-shadow: 0 2px 12px rgba(0,0,0,.08); }
  h1 { margin: 0 0 .25rem; font-size: 1.5rem; }
  p.lead { margin: 0 0 1.5rem; color: var(--muted); }
  label { display: block; font-weight: 600; margin: 1rem 0 .25rem; }
  .hint { font-weight: 400; color: var(--muted); font-size: .9rem; }
  input { width: 100%; padding: .65rem .75rem; font: inherit; color: inherit; background: transparent; border: 1px solid var(--muted); border-radius: 8px; }
  input:focus-visible, button:focus-visible, a:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
  button { margin-top: 1.5rem; width: 100%; padding: .8rem; font: inherit; font-weight: 700; color: #fff; background: var(--accent); border: 0; border-radius: 8px; cursor: pointer; }
  button:disabled { opacity: .6; cursor: progress; }
  #status { min-height: 1.5em; margin-top: 1.25rem; font-weight: 600; }
  #status[data-state="failed"], #status[data-state="error"] { color: #c62828; }
  #status[data-state="bridged"] { color: #2e7d32; }
  nav { margin-top: 2rem; font-size: .9rem; color: var(--muted); }
  nav a { color: var(--accent); }
</style>
</head>
<body>
<main>
  <h1>{{NAME}}</h1>
  <p class="lead">Leave your number and we will call you back and connect you to one of our agents.</p>
  <form id="call-form" data-business="{{ID}}" novalidate>
    <label for="phone">Your phone number <span class="hint">(international format, e.g. +15551234567)</span></label>
    <input id="phone" name="phone" type="tel" autocomplete="tel" inputmode="tel" required placeholder="+15551234567" aria-describedby="status">
    <label for="when">When should we call? <span class="hint">(optional, leave empty for now)</span></label>
    <input id="when" name="when" type="datetime-local">
    <button id="call-button" type="submit" data-business="{{ID}}">Call me</button>
  </form>
  <p id="status" role="status" aria-live="polite"></p>
  {{OTHERS}}
</main>
<script>
(function () {
  "use strict";
  var form = document.getElementById("call-form");
  var phone = document.getElementById("phone");
  var when = document.getElementById("when");
  var button = document.getElementById("call-button");
  var statusEl = document.getElementById("status");
  var business = button.getAttribute("data-business");
  var TEXT = {
    queued: "Request received. Waiting for a free agent…",
    scheduled: "Your call is booked. We will call you at the time you chose.",
    calling_customer: "Calling you now… please pick up your phone.",
    announcing: "Please listen to the short message…",
    calling_agent: "Please listen to the short message while we connect you to an agent…",
    bridged: "Connected. You are talking to an agent.",
    completed: "The call has ended. Thank you for calling!",
    cancelled: "The call was cancelled."
  };
  var REASON = {
    customer_busy: "your line was busy",
    customer_no_answer: "you did not answer",
    customer_rejected: "your phone declined the call",
    customer_hung_up: "you hung up before an agent joined",
    customer_unreachable: "your number could not be reached",
    no_agent: "no agent is available right now",
    agent_no_answer: "no agent could take your call",
    agent_unreachable: "no agent could take your call",
    media_timeout: "the connection was lost",
    internal: "something went wrong on our side",
    interrupted: "the call was interrupted"
  };
  var FINAL = { completed: true, failed: true, cancelled: true };
  var timer = null;

  function show(text, state) {
    statusEl.textContent = text;
    statusEl.setAttribute("data-state", state || "");
  }
  function describe(v) {
    if (v.status === "failed") {
      return "The call did not go through: " + (REASON[v.reason] || "an unknown error") + ". Please try again.";
    }
    return TEXT[v.status] || v.status;
  }
  function poll(id) {
    fetch("/v1/call-requests/" + encodeURIComponent(id), { headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(function (v) {
        show(describe(v), v.status);
        if (FINAL[v.status]) { button.disabled = false; return; }
        timer = setTimeout(function () { poll(id); }, 500);
      })
      .catch(function () {
        show("Lost contact with the server, retrying…", "error");
        timer = setTimeout(function () { poll(id); }, 500);
      });
  }
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    clearTimeout(timer);
    var number = phone.value.trim();
    if (number.charAt(0) === "+") { number = "+" + number.slice(1).replace(/[\s().\-]/g, ""); }
    if (!number) { show("Please enter your phone number.", "error"); phone.focus(); return; }
    var body = { business: business, customer: number, page: { url: location.href, title: document.title } };
    if (when.value) {
      var d = new Date(when.value);
      if (!isNaN(d.getTime())) { body.contact_time = d.toISOString(); }
    }
    button.disabled = true;
    show("Sending your request…", "sending");
    fetch("/v1/call-requests", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
      .then(function (r) { return r.json().then(function (v) { return { code: r.status, v: v }; }); })
      .then(function (res) {
        if (res.code !== 202) {
          show(res.v.error || ("The request failed (HTTP " + res.code + ")."), "error");
          button.disabled = false;
          if (res.v.field === "contact_time") { when.focus(); } else if (res.v.field === "customer") { phone.focus(); }
          return;
        }
        show(describe(res.v), res.v.status);
        poll(res.v.id);
      })
      .catch(function () {
        show("Could not reach the server. Please try again.", "error");
        button.disabled = false;
      });
  });
})();
</script>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_once() {
        assert_eq!(
            fill(
                "a {{X}} b {{Y}} {{Z}}",
                &[("{{X}}", "{{Y}}"), ("{{Y}}", "y")]
            ),
            "a {{Y}} b y {{Z}}"
        );
        assert_eq!(
            escape_html("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}

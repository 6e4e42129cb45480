/*! callbridge click-to-call widget: <script src="https://HOST/widget.js" data-business="ID"
 * data-key="KEY" data-agent="AGENT" data-api="URL" data-target="#ID" async></script>.
 * Shadow-root ids (stable): #cb-open #cb-phone #cb-when #cb-submit #cb-status #cb-error. */
(function () {
"use strict";
var script = document.currentScript;
if (!script || !script.getAttribute("data-business") || script.__cbWidget) {
  script = null;
  var all = document.querySelectorAll('script[src*="widget.js"][data-business]');
  for (var i = 0; i < all.length && !script; i++) { if (!all[i].__cbWidget) { script = all[i]; } }
}
if (!script) { return; }
script.__cbWidget = true;
var ds = script.dataset;
var business = ds.business;
if (!business) { return; }
var key = ds.key || "";
var api = (ds.api || new URL(script.src, location.href).origin).replace(/\/+$/, "");
// Calling codes for national numbers, by default_country.
var CC = { US: "1", CA: "1", GB: "44", UK: "44", DE: "49", FR: "33", NL: "31", AT: "43", CH: "41" };
var FINAL = { completed: 1, failed: 1, cancelled: 1 };
var REASON = {
  customer_busy: "Your line was busy. Please try again.",
  customer_no_answer: "We called, but nobody answered. Please try again.",
  customer_rejected: "Your phone declined our call.",
  customer_hung_up: "The call ended before an agent could join.",
  customer_unreachable: "We could not reach your phone. Please check the number.",
  no_agent: "Sorry, no agent is free right now. Please try again later.",
  agent_no_answer: "Sorry, no agent could take your call. Please try again later.",
  agent_unreachable: "Sorry, no agent could take your call. Please try again later.",
  media_timeout: "The connection was lost.",
  internal: "Something went wrong on our side. Please try again.",
  interrupted: "The call was interrupted. Please try again."
};
var CSS =
  ".cb{all:initial;display:block;font:16px/1.4 system-ui,sans-serif;color:#1b1f24;text-align:left;max-width:360px}" +
  ":where(.cb *){box-sizing:border-box;font:inherit;color:inherit;margin:0}.title{font-weight:700}" +
  "button{cursor:pointer;border:0;border-radius:8px;padding:10px 16px;font-weight:700;background:#0b6bcb;color:#fff;min-height:44px}" +
  "button:disabled{opacity:.6;cursor:progress}" +
  ".panel{margin-top:8px;padding:14px;background:#fff;border:1px solid #c9d1d9;border-radius:12px;box-shadow:0 4px 16px rgba(0,0,0,.12)}" +
  "[hidden]{display:none!important}.head{display:flex;justify-content:space-between;align-items:center}" +
  "#cb-close{background:none;color:#59636e;padding:4px 10px;font-size:20px}" +
  "label{display:block;font-weight:600;margin:10px 0 4px;font-size:14px}" +
  "input,select{display:block;width:100%;padding:9px 10px;border:1px solid #8c959f;border-radius:8px;background:#fff;min-height:44px}" +
  "input[aria-invalid=true]{border-color:#b3261e;box-shadow:0 0 0 1px #b3261e}" +
  ".note{font-size:13px;color:#59636e;margin-top:4px}#cb-error{font-size:14px;color:#b3261e;margin-top:6px}" +
  "#cb-submit{width:100%;margin-top:12px}#cb-status{margin-top:8px;font-weight:600}" +
  "#cb-error:empty,#cb-status:empty{margin:0}" +
  "#cb-status[data-status=failed],#cb-status[data-status=error]{color:#b3261e}" +
  "#cb-status[data-status=bridged]{color:#1e7b34}:focus{outline:none}" +
  ":focus-visible{outline:3px solid #174ea6;outline-offset:2px}";

var info = null; // GET /v1/businesses/{id}/widget
var es = null;
var current = null; // { id, when }
var retries = 0;
var root, el = {};

function h(tag, attrs, text) {
  var e = document.createElement(tag);
  for (var k in attrs) { if (attrs.hasOwnProperty(k)) { e.setAttribute(k, attrs[k]); } }
  if (text) { e.textContent = text; }
  return e;
}

function mount() {
  var target = ds.target && document.querySelector(ds.target);
  var parent = script.parentNode;
  var host = h("div", { "data-callbridge-widget": business });
  if (!document.getElementById("callbridge-widget")) { host.id = "callbridge-widget"; }
  if (target) { target.appendChild(host); }
  else if (!parent || parent.nodeName === "HEAD") { document.body.appendChild(host); }
  else { parent.insertBefore(host, script.nextSibling); }
  var shadow = host.attachShadow({ mode: "open" });
  shadow.appendChild(h("style", {}, CSS));
  root = h("div", { "class": "cb", part: "root", lang: "en" });
  shadow.appendChild(root);

  el.open = h("button", { id: "cb-open", part: "open", type: "button", "aria-expanded": "false", "aria-controls": "cb-panel" });
  el.open.appendChild(h("span", { "aria-hidden": "true" }, "\u260e "));
  el.open.appendChild(document.createTextNode("Call me"));
  root.appendChild(el.open);

  el.panel = h("div", { id: "cb-panel", "class": "panel", part: "panel", role: "dialog", "aria-labelledby": "cb-title", hidden: "" });
  var form = h("form", { id: "cb-form", novalidate: "" });
  var head = h("div", { "class": "head" });
  head.appendChild(h("span", { id: "cb-title", "class": "title" }, "We'll call you back"));
  el.close = h("button", { id: "cb-close", type: "button", "aria-label": "Close" }, "\u00d7");
  head.appendChild(el.close);
  form.appendChild(head);
  form.appendChild(h("label", { "for": "cb-phone" }, "Your phone number"));
  el.phone = h("input", {
    id: "cb-phone", name: "phone", type: "tel", autocomplete: "tel", inputmode: "tel", required: "",
    placeholder: "+49 30 1234567", "aria-invalid": "false", "aria-describedby": "cb-hint cb-error"
  });
  form.appendChild(el.phone);
  el.hint = h("p", { id: "cb-hint", "class": "note" }, "With country code, e.g. +49 30 1234567");
  form.appendChild(el.hint);
  form.appendChild(h("label", { "for": "cb-when" }, "When should we call?"));
  el.when = h("select", { id: "cb-when", name: "when", "aria-describedby": "cb-closed" });
  el.when.appendChild(h("option", { value: "now" }, "Now"));
  form.appendChild(el.when);
  el.closed = h("p", { id: "cb-closed", "class": "note", hidden: "" });
  form.appendChild(el.closed);
  el.error = h("p", { id: "cb-error", part: "error", "aria-live": "polite" });
  form.appendChild(el.error);
  el.submit = h("button", { id: "cb-submit", type: "submit" }, "Call me");
  form.appendChild(el.submit);
  el.panel.appendChild(form);
  root.appendChild(el.panel);
  el.status = h("p", { id: "cb-status", part: "status", role: "status", "aria-live": "polite", "data-status": "" });
  root.appendChild(el.status);

  el.open.addEventListener("click", function () { toggle(el.panel.hidden); });
  el.close.addEventListener("click", function () { toggle(false); });
  root.addEventListener("keydown", function (ev) {
    if ((ev.key === "Escape" || ev.key === "Esc") && !el.panel.hidden) { ev.preventDefault(); toggle(false); }
  });
  el.phone.addEventListener("input", function () { validate(false); });
  el.phone.addEventListener("blur", function () { if (el.phone.value) { validate(true); } });
  form.addEventListener("submit", function (ev) { ev.preventDefault(); submit(); });
  loadInfo();
}

function toggle(open) {
  el.panel.hidden = !open;
  el.open.setAttribute("aria-expanded", open ? "true" : "false");
  if (open) { el.phone.focus(); } else { el.open.focus(); }
}

function fmtTime(iso, withDay) {
  var d = new Date(iso);
  if (isNaN(d.getTime())) { return iso; }
  var o = { hour: "2-digit", minute: "2-digit" };
  if (withDay) { o.weekday = "short"; o.day = "numeric"; o.month = "short"; }
  try { return d.toLocaleString(undefined, o); } catch (e) { return d.toString(); }
}

function loadInfo() {
  fetch(api + "/v1/businesses/" + encodeURIComponent(business) + "/widget")
    .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
    .then(function (v) { info = v; applyInfo(); })
    .catch(function () { /* "now" stays the only choice */ });
}

function applyInfo() {
  var cc = info.default_country && CC[String(info.default_country).toUpperCase()];
  el.hint.textContent = (info.name ? info.name + " will call you back. " : "") +
    (cc ? "Your number, e.g. 030 1234567 or +" + cc + " 30 1234567" : "With country code, e.g. +49 30 1234567");
  while (el.when.options.length > 1) { el.when.remove(1); }
  var slots = (info.slots || []).slice();
  if (info.next_opening && slots.indexOf(info.next_opening) < 0 && !info.open_now) { slots.unshift(info.next_opening); }
  for (var i = 0; i < slots.length; i++) {
    el.when.appendChild(h("option", { value: slots[i] }, fmtTime(slots[i], true)));
  }
  var now = el.when.options[0];
  if (info.open_now === false) {
    now.disabled = true;
    now.textContent = "Now (closed)";
    el.closed.hidden = false;
    el.closed.textContent = info.next_opening
      ? "We're closed now and open again " + fmtTime(info.next_opening, true) + "."
      : "We're closed now; please pick a time.";
    if (el.when.options.length > 1) { el.when.selectedIndex = 1; }
  } else {
    now.disabled = false;
    now.textContent = "Now";
    el.closed.hidden = true;
  }
}

// The number as E.164 (or a SIP URI as typed), or an error sentence.
function normalize(raw) {
  var s = raw.trim();
  if (/^sips?:/i.test(s)) { return { value: s }; }
  s = s.replace(/[\s\-.()\/]/g, "");
  if (!s) { return { error: "Please enter your phone number." }; }
  if (s.slice(0, 2) === "00") { s = "+" + s.slice(2); }
  if (s.charAt(0) !== "+") {
    var cc = info && info.default_country && CC[String(info.default_country).toUpperCase()];
    if (!cc) { return { error: "Please start with + and your country code." }; }
    if (!/^\d+$/.test(s)) { return { error: "Please use digits only." }; }
    if (cc === "1") { s = s.length === 11 && s.charAt(0) === "1" ? s.slice(1) : s; }
    else { s = s.replace(/^0/, ""); }
    s = "+" + cc + s;
  }
  if (!/^\+\d+$/.test(s)) { return { error: "Please use digits only after the +." }; }
  var n = s.length - 1;
  if (n < 8) { return { error: "That number looks too short.", partial: true }; }
  if (n > 15) { return { error: "That number is too long." }; }
  if (s.charAt(1) === "0") { return { error: "Country codes never start with 0." }; }
  return { value: s };
}

function setError(text) {
  el.error.textContent = text || "";
  el.phone.setAttribute("aria-invalid", text ? "true" : "false");
}

// final: on submit or blur every problem is shown; while typing, "too short" is not.
function validate(final) {
  var r = normalize(el.phone.value);
  if (!el.phone.value.trim() && !final) { setError(""); return r; }
  if (r.error && (final || !r.partial)) { setError(r.error); } else { setError(""); }
  return r;
}

function setStatus(status, text, id) {
  el.status.textContent = text;
  el.status.setAttribute("data-status", status);
  if (id) { el.status.setAttribute("data-call-id", id); }
}

function describe(v) {
  switch (v.status) {
    case "queued":
      if (v.queue_position == null) { return "You are in line. We will call you shortly."; }
      var t = "You are number " + v.queue_position + " in line";
      if (v.estimated_wait_s != null) { t += ", about " + Math.max(1, Math.ceil(v.estimated_wait_s / 60)) + " min"; }
      return t + ".";
    case "scheduled":
      var at = v.contact_time || (current && current.when);
  return at ? "We will call you at " + fmtTime(at, true) + "." : "We will call you at the time you chose.";
    case "calling_customer": return "Calling you now\u2026";
    case "announcing": return "Please hold \u2014 we're connecting you to an agent.";
    case "calling_agent": return "Connecting you to an agent\u2026";
    case "bridged": return "Connected";
    case "completed": return "Call ended. Thank you!";
    case "cancelled": return "The call was cancelled.";
    case "failed": return REASON[v.reason] || "The call did not go through. Please try again.";
    default: return v.status;
  }
}

function busy(on) {
  el.submit.disabled = on;
  el.submit.textContent = on ? "Please wait\u2026" : "Call me";
}

function submit() {
  if (current && !current.done) { return; }
  var r = validate(true);
  if (r.error) { el.phone.focus(); return; }
  var body = {
    business: business,
    customer: r.value,
    page: { url: location.href, title: document.title, referrer: document.referrer }
  };
  var when = el.when.value;
  if (when && when !== "now") { body.contact_time = when; }
  if (ds.agent) { body.preferred_agent = ds.agent; }
  var headers = { "Content-Type": "application/json" };
  if (key) { headers["X-Widget-Key"] = key; }
  busy(true);
  setError("");
  setStatus("sending", "Sending your request\u2026");
  fetch(api + "/v1/call-requests", { method: "POST", headers: headers, body: JSON.stringify(body) })
    .then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (v) { return { res: res, v: v }; });
    })
    .then(function (x) {
      if (x.res.status !== 202) {
        busy(false);
        var text = x.v.error || "Your request could not be sent (HTTP " + x.res.status + ").";
        var after = x.res.headers.get("Retry-After");
        if (x.res.status === 429 && after && /^\d+$/.test(after)) {
          text += after < 90 ? " Please try again in " + after + " s." : " Please try again in " + Math.ceil(after / 60) + " min.";
        }
        setStatus("error", "");
        el.error.textContent = text;
        if (x.v.field === "customer") { el.phone.setAttribute("aria-invalid", "true"); el.phone.focus(); }
        else if (x.v.field === "contact_time") { el.when.focus(); }
        return;
      }
      current = { id: x.v.id, when: body.contact_time || null, done: false };
      retries = 0;
      show(x.v);
      listen();
    })
    .catch(function () {
      busy(false);
      setStatus("error", "");
      el.error.textContent = "We could not reach the call service. Please try again.";
    });
}

function show(v) {
  if (!current || (v.id && v.id !== current.id)) { return; }
  setStatus(v.status, describe(v), current.id);
  if (FINAL[v.status]) {
    current.done = true;
    busy(false);
    if (es) { es.close(); es = null; }
  }
}

function listen() {
  if (!current || current.done || typeof EventSource === "undefined") { return; }
  var call = current;
  es = new EventSource(api + "/v1/call-requests/" + encodeURIComponent(call.id) + "/events");
  var on = function (ev) {
    var v;
    try { v = JSON.parse(ev.data); } catch (e) { return; }
    retries = 0;
    show(v);
  };
  es.addEventListener("status", on);
  es.onmessage = on;
  es.onerror = function () {
    if (call !== current || call.done) { return; }
    // The browser retries by itself while CONNECTING; once CLOSED, we reopen with backoff.
    if (es && es.readyState === 2) {
      es.close();
      es = null;
      if (retries > 6) { el.error.textContent = "Live updates are unavailable right now."; return; }
      var delay = Math.min(30000, 1000 * Math.pow(2, retries++));
      setTimeout(function () { if (call === current && !call.done) { listen(); } }, delay);
    }
  };
}

if (document.body || (script.parentNode && script.parentNode.nodeName !== "HEAD")) { mount(); }
else { document.addEventListener("DOMContentLoaded", mount); }
})();

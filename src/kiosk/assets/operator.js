// keyward kiosk operator view (docs/kiosk.md "Operator view"). No inline
// script (the Content-Security-Policy forbids it); every text comes from
// the catalogue at /assets/messages.json (the op.* keys). The session is
// the server's: this page only shows what /api/operator/* answers.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const RUNS_EVERY_MS = 5000;
let text = {};
let pending = null; // the binding awaiting the revoke confirmation
let runsTimer = null;

const $ = (id) => document.getElementById(id);

function t(key, values) {
  const s = Object.prototype.hasOwnProperty.call(text, key) ? text[key] : key;
  return s.replace(/\{(\w+)\}/g, (m, name) =>
    values && Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : m);
}

function el(tag, attrs, children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children || []) e.append(c);
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

function time(unix) {
  return new Date(unix * 1000).toISOString().slice(11, 16);
}

function pct(r) {
  return r === null || r === undefined ? t("op.na") : `${Math.round(r * 1000) / 10}%`;
}

// A call to the operator API. A 403 means the operator session is gone
// (signed out, idle, or never there): back to the sign-in screen.
async function api(path, body) {
  const init = { credentials: "same-origin" };
  if (body !== undefined) {
    init.method = "POST";
    init.headers = { "Content-Type": "application/json" };
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch (_) {
    return { ok: false, status: 0, doc: { error: { message: t("op.unreachable") } } };
  }
  let doc = {};
  try { doc = await r.json(); } catch (_) { /* not JSON */ }
  if (r.status === 403 && path !== "/api/operator/sign-in") {
    signedOut(t("op.session_ended"));
  }
  return { ok: r.ok, status: r.status, doc };
}

function errorText(res) {
  const e = (res.doc && res.doc.error) || {};
  return e.code ? t("op.refused", { message: e.message || "", code: e.code }) : (e.message || t("op.unreachable"));
}

function signedOut(message) {
  if (runsTimer) clearInterval(runsTimer);
  runsTimer = null;
  $("op-who").hidden = true;
  $("op-sign-out").hidden = true;
  $("screen-view").hidden = true;
  $("screen-sign-in").hidden = false;
  $("op-password").value = "";
  $("sign-in-error").textContent = message || "";
  $("op-name").focus();
}

async function signIn() {
  const name = $("op-name").value.trim();
  const password = $("op-password").value;
  if (!name || !password) {
    $("sign-in-error").textContent = t("op.sign_in.empty");
    return;
  }
  $("sign-in-submit").disabled = true;
  $("sign-in-submit").textContent = t("op.sign_in.checking");
  $("sign-in-error").textContent = "";
  const res = await api("/api/operator/sign-in", { name, password });
  $("op-password").value = "";
  $("sign-in-submit").disabled = false;
  $("sign-in-submit").textContent = t("op.sign_in.submit");
  if (!res.ok) {
    $("sign-in-error").textContent = errorText(res);
    $("op-password").focus();
    return;
  }
  showView(res.doc.name);
}

function showView(name) {
  $("op-who").textContent = t("op.signed_in_as", { name });
  $("op-who").hidden = false;
  $("op-sign-out").hidden = false;
  $("screen-sign-in").hidden = true;
  $("screen-view").hidden = false;
  $("view-title").focus();
  loadFigures();
  loadRuns();
  runsTimer = setInterval(loadRuns, RUNS_EVERY_MS);
}

// One bar chart: values per hour, as SVG with a text alternative (its
// aria-label gives the day's figure) and the same values as a table.
function chart(id, title, dayText, hours, value, format) {
  const W = 480, H = 200, L = 44, B = 28, T = 10;
  const vals = hours.map(value);
  const max = Math.max(1, ...vals.filter((v) => v !== null));
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
    "aria-label": `${title}: ${dayText}`, focusable: "false" });
  s.append(svg("line", { x1: L, y1: H - B, x2: W - 4, y2: H - B, class: "axis" }));
  s.append(svg("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }));
  const top = svg("text", { x: L - 4, y: T + 8, "text-anchor": "end" });
  top.textContent = format(max);
  s.append(top);
  const zero = svg("text", { x: L - 4, y: H - B, "text-anchor": "end" });
  zero.textContent = format(0);
  s.append(zero);
  const slot = (W - L - 8) / 24;
  hours.forEach((h, i) => {
    const v = vals[i];
    const x = L + 2 + i * slot;
    if (v !== null && v > 0) {
      const hgt = ((H - B - T) * v) / max;
      s.append(svg("rect", { x, y: H - B - hgt, width: Math.max(2, slot - 3), height: hgt, class: "bar" }));
    }
    if (i % 3 === 0) {
      const lab = svg("text", { x: x + slot / 2, y: H - B + 14, "text-anchor": "middle" });
      lab.textContent = time(h.since).slice(0, 2);
      s.append(lab);
    }
  });
  const rows = hours.map((h, i) => el("tr", {}, [
    el("th", { scope: "row" }, [`${time(h.since)}–${time(Math.min(h.until, h.since + 3600))}`]),
    el("td", {}, [vals[i] === null ? t("op.na") : format(vals[i])]),
  ]));
  const table = el("table", {}, [
    el("caption", { class: "visually-hidden" }, [title]),
    el("thead", {}, [el("tr", {}, [
      el("th", { scope: "col" }, [t("op.figures.hour")]),
      el("th", { scope: "col" }, [title]),
    ])]),
    el("tbody", {}, rows),
  ]);
  const details = el("details", {}, [el("summary", {}, [t("op.figures.as_table", { title })]), table]);
  return el("figure", { id }, [el("figcaption", {}, [`${title}: ${dayText}`]), s, details]);
}

async function loadFigures() {
  const res = await api("/api/operator/figures");
  if (!res.ok) {
    if (res.status !== 403) $("figures-error").textContent = errorText(res);
    return;
  }
  $("figures-error").textContent = "";
  const f = res.doc;
  const d = f.day;
  const enroll = (d.runs && d.runs.enroll) || { started: 0, completed: 0 };
  const tti = d.time_to_issue;
  $("figures-summary").textContent = t("op.figures.summary", {
    from: time(f.since), to: time(f.until - 1),
    started: enroll.started, completed: enroll.completed, rate: pct(d.completion_rate),
    median: tti ? tti.median : t("op.na"), resets: d.resets, exceptions: d.exceptions,
    revocations: d.revocations,
  });
  const seconds = (v) => t("op.seconds", { n: v });
  const count = (v) => String(v);
  const hours = f.hours;
  const charts = $("charts");
  charts.replaceChildren(
    chart("chart-completion", t("op.figures.completion"), pct(d.completion_rate), hours,
      (h) => (h.completion_rate === null || h.completion_rate === undefined ? null : h.completion_rate),
      (v) => `${Math.round(v * 100)}%`),
    chart("chart-time", t("op.figures.time_to_issue"), tti ? seconds(tti.median) : t("op.na"), hours,
      (h) => (h.time_to_issue ? h.time_to_issue.median : null), seconds),
    chart("chart-resets", t("op.figures.resets"), String(d.resets), hours, (h) => h.resets, count),
    chart("chart-exceptions", t("op.figures.exceptions"), String(d.exceptions), hours, (h) => h.exceptions, count),
  );
}

const REVOCABLE = new Set(["active", "suspended", "lost"]);

async function find() {
  const query = $("find-query").value.trim();
  $("revoked").textContent = "";
  $("replace-next").hidden = true;
  $("confirm").hidden = true;
  if (!query) {
    $("find-error").textContent = t("op.revoke.query_empty");
    return;
  }
  const res = await api("/api/operator/bindings", { query });
  if (!res.ok) {
    if (res.status !== 403) $("find-error").textContent = errorText(res);
    return;
  }
  $("find-error").textContent = "";
  const list = res.doc.bindings || [];
  const out = $("find-results");
  if (list.length === 0) {
    out.replaceChildren(el("p", { role: "status" }, [t("op.revoke.none", { query })]));
    return;
  }
  const head = ["op.col.subject", "op.col.state", "op.col.serial", "op.col.created", "op.col.binding", "op.col.action"]
    .map((k) => el("th", { scope: "col" }, [t(k)]));
  const rows = list.map((b) => {
    const action = el("td");
    if (REVOCABLE.has(b.state)) {
      const btn = el("button", { type: "button", class: "secondary", "data-binding": b.id }, [t("op.revoke.button")]);
      btn.setAttribute("aria-label", t("op.revoke.button_for", { subject: b.subject, serial: b.device_serial || "-" }));
      btn.addEventListener("click", () => askConfirm(b));
      action.append(btn);
    } else {
      action.append(t("op.revoke.not_revocable"));
    }
    return el("tr", {}, [
      el("td", {}, [b.subject]),
      el("td", {}, [b.state]),
      el("td", {}, [`${b.device_kind} ${b.device_serial || "-"}`]),
      el("td", {}, [new Date(b.created_at * 1000).toISOString().slice(0, 16).replace("T", " ")]),
      el("td", { class: "id" }, [b.id]),
      action,
    ]);
  });
  out.replaceChildren(el("table", {}, [
    el("caption", {}, [t("op.revoke.found", { n: list.length })]),
    el("thead", {}, [el("tr", {}, head)]),
    el("tbody", {}, rows),
  ]));
}

function askConfirm(b) {
  pending = b;
  for (const r of document.querySelectorAll("input[name=reason]")) r.checked = false;
  $("confirm-what").textContent = t("op.revoke.confirm_what",
    { subject: b.subject, kind: b.device_kind, serial: b.device_serial || "-", id: b.id });
  $("confirm-error").textContent = "";
  $("confirm").hidden = false;
  $("confirm-title").focus();
}

async function revoke() {
  const reason = document.querySelector("input[name=reason]:checked");
  if (!reason) {
    $("confirm-error").textContent = t("op.revoke.reason_needed");
    $("reason-lost").focus();
    return;
  }
  const b = pending;
  $("confirm-revoke").disabled = true;
  const res = await api("/api/operator/revoke", { binding: b.id, reason: reason.value });
  $("confirm-revoke").disabled = false;
  if (!res.ok) {
    if (res.status !== 403) $("confirm-error").textContent = errorText(res);
    return;
  }
  pending = null;
  $("confirm").hidden = true;
  $("find-results").replaceChildren();
  $("revoked").textContent = t("op.revoke.done",
    { subject: res.doc.subject, serial: res.doc.device_serial || "-", reason: t(`op.reason.${res.doc.reason}`) });
  $("replace-next").hidden = false;
  $("revoke-title").focus();
  loadFigures();
  loadRuns();
}

async function loadRuns() {
  const res = await api("/api/operator/runs");
  if (!res.ok) {
    if (res.status !== 403) $("runs-error").textContent = errorText(res);
    return;
  }
  $("runs-error").textContent = "";
  const slots = res.doc.slots || [];
  const out = $("runs-slots");
  if (slots.length === 0) {
    out.replaceChildren(el("p", {}, [t("op.runs.none")]));
  } else {
    out.replaceChildren(...slots.map((s) => {
      const done = s.runs.filter((r) => r.outcome === "completed").length;
      const title = s.slot === "-" ? t("op.runs.no_slot") : t("op.runs.slot", { slot: s.slot });
      const rows = s.runs.map((r) => el("tr", {}, [
        el("td", {}, [time(r.started_at)]),
        el("td", {}, [r.kind]),
        el("td", {}, [r.outcome ? t(`op.outcome.${r.outcome}`) : t("op.outcome.running")]),
        el("td", {}, [r.subject || "-"]),
        el("td", {}, [r.device_serial || "-"]),
        el("td", {}, [r.reason || ""]),
      ]));
      const head = ["op.col.started", "op.col.kind", "op.col.outcome", "op.col.subject", "op.col.serial", "op.col.reason"]
        .map((k) => el("th", { scope: "col" }, [t(k)]));
      return el("table", { class: "slot" }, [
        el("caption", {}, [t("op.runs.caption", { title, n: s.runs.length, done })]),
        el("thead", {}, [el("tr", {}, head)]),
        el("tbody", {}, rows),
      ]);
    }));
  }
  $("runs-updated").textContent = t("op.runs.updated", { at: new Date().toISOString().slice(11, 19) });
}

async function start() {
  const r = await fetch("/assets/messages.json", { credentials: "same-origin" });
  text = await r.json();
  for (const e of document.querySelectorAll("[data-i18n]")) {
    e.textContent = t(e.dataset.i18n);
  }
  document.title = t("op.title");
  $("sign-in-form").addEventListener("submit", (e) => { e.preventDefault(); signIn(); });
  $("find-form").addEventListener("submit", (e) => { e.preventDefault(); find(); });
  $("confirm-revoke").addEventListener("click", revoke);
  for (const r of document.querySelectorAll("input[name=reason]")) {
    r.addEventListener("change", () => { $("confirm-error").textContent = ""; });
  }
  $("confirm-cancel").addEventListener("click", () => {
    pending = null;
    $("confirm").hidden = true;
    $("find-query").focus();
  });
  $("op-sign-out").addEventListener("click", async () => {
    await api("/api/operator/sign-out", {});
    signedOut(t("op.signed_out"));
  });
  const res = await api("/api/operator/session");
  if (res.ok && res.doc.name) {
    showView(res.doc.name);
  } else {
    signedOut("");
  }
  document.body.dataset.ready = "true";
}

start();

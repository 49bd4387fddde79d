// keyward kiosk page (docs/kiosk.md). No inline script (the server's
// Content-Security-Policy forbids it); every text comes from the catalogue
// at /assets/messages.json.
"use strict";

const MAX_TICKET_BYTES = 16 * 1024;
let text = {};

const $ = (id) => document.getElementById(id);

// A catalogue text with {name} placeholders filled in.
function t(key, values) {
  const s = Object.prototype.hasOwnProperty.call(text, key) ? text[key] : key;
  return s.replace(/\{(\w+)\}/g, (m, name) =>
    values && Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : m);
}

function show(screen) {
  for (const s of document.querySelectorAll("main > section")) {
    s.hidden = s.id !== screen;
  }
}

function fail(message) {
  $("ticket-error").textContent = message;
  $("ticket-text").setAttribute("aria-invalid", message ? "true" : "false");
}

async function submitTicket() {
  const ticket = $("ticket-text").value.trim();
  if (!ticket) {
    fail(t("ticket.empty"));
    return;
  }
  fail("");
  $("ticket-submit").disabled = true;
  $("ticket-submit").textContent = t("ticket.checking");
  try {
    const r = await fetch("/api/ticket", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ticket }),
    });
    const doc = await r.json();
    if (r.ok) {
      showSubject(doc);
    } else {
      const e = doc.error || {};
      fail(t("ticket.refused", { message: e.message || "", code: e.code || r.status }));
    }
  } catch (_) {
    fail(t("ticket.unreachable"));
  } finally {
    $("ticket-submit").disabled = false;
    $("ticket-submit").textContent = t("ticket.submit");
  }
}

function showSubject(p) {
  $("subject-name").textContent = p.subject;
  $("subject-issuer").textContent = p.issuer;
  $("subject-policy").textContent = p.policy;
  $("subject-ops").textContent = (p.ops || []).join(", ");
  $("subject-replaces").textContent = p.replaces || t("subject.replaces_none");
  const pin = p.pin || {};
  $("subject-pin").textContent = t(pin.digits_only ? "subject.pin_digits" : "subject.pin_rules",
    { min: pin.min_length, max: pin.max_length });
  show("screen-subject");
  $("subject-title").focus();
}

async function openFile() {
  const f = $("ticket-file").files[0];
  if (!f) return;
  if (f.size > MAX_TICKET_BYTES) {
    fail(t("ticket.file_too_large"));
    return;
  }
  $("ticket-text").value = await f.text();
  await submitTicket();
}

async function start() {
  const r = await fetch("/assets/messages.json", { credentials: "same-origin" });
  text = await r.json();
  for (const el of document.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  document.title = t("app.title");
  $("ticket-form").addEventListener("submit", (e) => {
    e.preventDefault();
    submitTicket();
  });
  // A keyboard-wedge scanner types the ticket and presses Enter.
  $("ticket-text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      submitTicket();
    }
  });
  $("ticket-file").addEventListener("change", openFile);
  $("subject-back").addEventListener("click", () => {
    $("ticket-text").value = "";
    fail("");
    show("screen-ticket");
    $("ticket-text").focus();
  });
  show("screen-ticket");
  $("ticket-text").focus();
  document.body.dataset.ready = "true";
}

start();

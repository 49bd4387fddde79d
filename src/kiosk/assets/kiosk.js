// keyward kiosk page (docs/kiosk.md). No inline script (the server's
// Content-Security-Policy forbids it); every text comes from the catalogue
// at /assets/messages.json.
"use strict";

const MAX_TICKET_BYTES = 16 * 1024;
// How often the insert-your-key screen asks which keys are present.
const DEVICE_POLL_MS = 1000;
let text = {};
// The person's flow: the ticket and its preview, the key picked, the job.
const flow = { ticket: "", preview: null, key: null, job: 0, after: 0, polling: 0, countdown: 0 };

const $ = (id) => document.getElementById(id);

// A catalogue text with {name} placeholders filled in.
function t(key, values) {
  const s = Object.prototype.hasOwnProperty.call(text, key) ? text[key] : key;
  return s.replace(/\{(\w+)\}/g, (m, name) =>
    values && Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : m);
}

function show(screen, focus) {
  for (const s of document.querySelectorAll("main > section")) {
    s.hidden = s.id !== screen;
  }
  const heading = document.querySelector(`#${screen} h1`);
  if (focus !== false && heading) $(focus || heading.id).focus();
  say(heading ? heading.textContent : "");
}

// The live region: screen changes and progress, for screen readers.
function say(message) {
  $("status").textContent = message;
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
      flow.ticket = ticket;
      flow.preview = doc;
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
  $("subject-replacing").hidden = !p.replaces;
  $("subject-replacing").textContent = p.replaces ? t("subject.replacing", { old: p.replaces }) : "";
  show("screen-subject");
}

// ---- insert your key ------------------------------------------------------

function keyLabel(k) {
  return t("insert.key", { serial: k.serial == null ? t("key.unknown") : k.serial, place: k.place });
}

async function pollKeys() {
  const mine = ++flow.polling;
  while (mine === flow.polling && !$("screen-insert").hidden) {
    try {
      const r = await fetch("/api/devices", { credentials: "same-origin" });
      const doc = await r.json();
      if (mine !== flow.polling) return;
      if (r.ok) listKeys(doc.devices || []);
      else $("insert-state").textContent = (doc.error || {}).message || t("ticket.unreachable");
    } catch (_) {
      $("insert-state").textContent = t("ticket.unreachable");
    }
    await new Promise((res) => setTimeout(res, DEVICE_POLL_MS));
  }
}

function listKeys(devices) {
  const usable = devices.filter((d) => !d.problem);
  const list = $("insert-keys");
  // One key: take it, unless the person asked for another one.
  if (usable.length === 1 && !flow.choose) {
    flow.polling++;
    showKey(usable[0]);
    return;
  }
  const state = usable.length === 0 ? t("insert.waiting") : t("insert.choose", { n: usable.length });
  if ($("insert-state").textContent !== state) {
    $("insert-state").textContent = state;
    say(state);
  }
  const ids = usable.map((d) => d.id).join("\n");
  if (list.dataset.ids === ids) return;
  list.dataset.ids = ids;
  list.replaceChildren(...usable.map((d) => {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "secondary key";
    b.dataset.device = d.id;
    b.textContent = keyLabel(d);
    b.addEventListener("click", () => {
      flow.polling++;
      showKey(d);
    });
    li.append(b);
    return li;
  }));
}

function showInsert(choose) {
  flow.choose = choose === true;
  flow.key = null;
  $("insert-keys").replaceChildren();
  $("insert-keys").dataset.ids = "";
  $("insert-state").textContent = t("insert.waiting");
  show("screen-insert");
  pollKeys();
}

// ---- the key's state ------------------------------------------------------

function showKey(k) {
  flow.key = k;
  $("key-place").textContent = k.place;
  $("key-serial").textContent = k.serial == null ? t("key.unknown") : String(k.serial);
  $("key-firmware").textContent = k.firmware || t("key.unknown");
  const apps = [k.fido2 ? "FIDO2" : null, k.piv ? "PIV" : null].filter(Boolean);
  $("key-apps").textContent = apps.length ? apps.join(", ") : t("key.none");
  const ops = (flow.preview && flow.preview.ops) || [];
  const missing = ops.some((o) => o.startsWith("fido2") && !k.fido2) || ops.some((o) => o.startsWith("piv") && !k.piv);
  $("key-findings").textContent = missing ? t("reason.device-unsupported") : t("key.ready");
  $("key-findings").className = missing ? "error" : "state";
  $("key-next").disabled = missing;
  show("screen-key");
}

// ---- PIN ------------------------------------------------------------------

function trivial(chars) {
  if (chars.length < 2) return true;
  const step = chars[1].codePointAt(0) - chars[0].codePointAt(0);
  if (step < -1 || step > 1) return false;
  for (let i = 2; i < chars.length; i++) {
    if (chars[i].codePointAt(0) - chars[i - 1].codePointAt(0) !== step) return false;
  }
  return true;
}

// The profile's rules against what is typed (the server checks again).
function pinProblems() {
  const rules = flow.preview.pin;
  const pin = [...$("pin-new").value];
  const again = $("pin-again").value;
  const checks = {
    "rule-length": pin.length >= rules.min_length && pin.length <= rules.max_length,
    "rule-digits": !rules.digits_only || pin.every((c) => c >= "0" && c <= "9"),
    "rule-trivial": !rules.reject_trivial || (pin.length > 0 && !trivial(pin)),
    "rule-same": pin.length > 0 && again === $("pin-new").value,
  };
  for (const [id, ok] of Object.entries(checks)) {
    $(id).dataset.ok = String(ok);
    $(id).textContent = t(ok ? "pin.rule_met" : "pin.rule_unmet", { rule: $(id).dataset.rule });
  }
  return Object.entries(checks).filter(([, ok]) => !ok).map(([id]) => id);
}

function showPin() {
  const rules = flow.preview.pin;
  $("rule-length").dataset.rule = t("pin.rule_length", { min: rules.min_length, max: rules.max_length });
  $("rule-digits").dataset.rule = t("pin.rule_digits");
  $("rule-digits").hidden = !rules.digits_only;
  $("rule-trivial").dataset.rule = t("pin.rule_trivial");
  $("rule-trivial").hidden = !rules.reject_trivial;
  $("rule-same").dataset.rule = t("pin.rule_same");
  $("pin-new").inputMode = rules.digits_only ? "numeric" : "text";
  $("pin-new").maxLength = rules.max_length;
  $("pin-again").maxLength = rules.max_length;
  $("pin-new").value = "";
  $("pin-again").value = "";
  $("pin-error").textContent = "";
  pinProblems();
  show("screen-pin", "pin-new");
}

async function submitPin() {
  const problems = pinProblems();
  if (problems.length) {
    $("pin-error").textContent = t("pin.refused", { rule: $(problems[0]).dataset.rule });
    $("pin-new").setAttribute("aria-invalid", "true");
    $("pin-new").focus();
    return;
  }
  $("pin-new").setAttribute("aria-invalid", "false");
  const pin = $("pin-new").value;
  $("pin-new").value = "";
  $("pin-again").value = "";
  await startJob(pin);
}

// ---- the job --------------------------------------------------------------

async function startJob(pin) {
  $("pin-submit").disabled = true;
  try {
    const r = await fetch("/api/enroll", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ticket: flow.ticket, device: flow.key.id, pin }),
    });
    const doc = await r.json();
    if (!r.ok) {
      const e = doc.error || {};
      showFailed(e.code || String(r.status), e.message || "");
      return;
    }
    flow.job = doc.job;
    flow.after = 0;
    $("work-steps").replaceChildren();
    show("screen-work");
    follow(doc.job);
  } catch (_) {
    showFailed("unreachable", t("ticket.unreachable"));
  } finally {
    $("pin-submit").disabled = false;
  }
}

async function follow(job) {
  while (flow.job === job) {
    let doc;
    try {
      const r = await fetch(`/api/events?job=${job}&after=${flow.after}`, { credentials: "same-origin" });
      doc = await r.json();
      if (!r.ok) {
        showFailed((doc.error || {}).code || "no-job", (doc.error || {}).message || "");
        return;
      }
    } catch (_) {
      showFailed("unreachable", t("ticket.unreachable"));
      return;
    }
    for (const e of doc.events) {
      flow.after = Math.max(flow.after, e.seq);
      onEvent(e);
    }
    if (doc.done) return;
  }
}

function stepName(step) {
  return t(`step.${step}`);
}

function stepItem(step) {
  let li = document.querySelector(`#work-steps li[data-step="${step}"]`);
  if (!li) {
    li = document.createElement("li");
    li.dataset.step = step;
    $("work-steps").append(li);
  }
  return li;
}

function onEvent(e) {
  switch (e.event) {
    case "step-started":
      stopCountdown();
      stepItem(e.step).textContent = t("work.running", { step: stepName(e.step) });
      if ($("screen-work").hidden) show("screen-work");
      else say(stepName(e.step));
      break;
    case "step-done":
      stopCountdown();
      stepItem(e.step).textContent = t("work.done", { step: stepName(e.step) });
      stepItem(e.step).dataset.state = "done";
      if (e.step === "fido-attestation" || e.step === "piv-attestation") flow.verdict = verdict(e.detail || {});
      if ($("screen-work").hidden) show("screen-work");
      break;
    case "step-failed":
      stopCountdown();
      stepItem(e.step).textContent = t("work.failed", { step: stepName(e.step) });
      stepItem(e.step).dataset.state = "failed";
      break;
    case "touch-needed":
      showTouch("touch.help", e.timeout_ms);
      break;
    case "reinsert-needed":
      showTouch("touch.reinsert", e.within_ms);
      break;
    case "finished":
      stopCountdown();
      flow.job = 0;
      showDone(e.outcome || {});
      break;
    case "failed":
      stopCountdown();
      flow.job = 0;
      showFailed(e.reason, e.message);
      break;
    default:
      break;
  }
}

function verdict(d) {
  const model = d.mds && (d.mds.description || d.mds.model);
  return t("done.verdict", { format: d.format || "?", model: model || d.aaguid || t("key.unknown") });
}

function showTouch(key, ms) {
  stopCountdown();
  $("touch-help").textContent = t(key);
  const end = Date.now() + (ms || 0);
  const tick = () => {
    const left = Math.max(0, Math.ceil((end - Date.now()) / 1000));
    $("touch-countdown").textContent = t("touch.countdown", { s: left });
  };
  tick();
  flow.countdown = setInterval(tick, 1000);
  show("screen-touch");
}

function stopCountdown() {
  if (flow.countdown) clearInterval(flow.countdown);
  flow.countdown = 0;
}

async function cancelJob() {
  try {
    await fetch("/api/cancel", { method: "POST", credentials: "same-origin" });
  } catch (_) {
    // The job's own end arrives on the event poll either way.
  }
}

// ---- the end ----------------------------------------------------------------

function showDone(o) {
  $("done-subject").textContent = o.subject || "";
  $("done-serial").textContent = o.serial || t("key.unknown");
  $("done-model").textContent = o.aaguid || t("key.unknown");
  $("done-binding").textContent = o.binding || "";
  $("done-replaced").textContent = o.replaced || t("subject.replaces_none");
  $("done-verdict").textContent = flow.verdict || t("done.verdict_piv");
  show("screen-done");
}

function showFailed(code, message) {
  const key = `reason.${code}`;
  $("failed-what").textContent = Object.prototype.hasOwnProperty.call(text, key) ? t(key) : t("reason.other");
  $("failed-detail").textContent = message || "";
  $("failed-code").textContent = t("failed.code", { code });
  show("screen-failed");
}

function startAgain() {
  stopCountdown();
  flow.polling++;
  flow.job = 0;
  flow.ticket = "";
  flow.preview = null;
  flow.key = null;
  flow.verdict = "";
  $("ticket-text").value = "";
  fail("");
  show("screen-ticket", "ticket-text");
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
  $("subject-back").addEventListener("click", startAgain);
  $("subject-next").addEventListener("click", () => showInsert(false));
  $("insert-back").addEventListener("click", startAgain);
  $("key-back").addEventListener("click", () => showInsert(true));
  $("key-next").addEventListener("click", showPin);
  $("pin-back").addEventListener("click", startAgain);
  $("pin-new").addEventListener("input", pinProblems);
  $("pin-again").addEventListener("input", pinProblems);
  $("pin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    submitPin();
  });
  $("work-cancel").addEventListener("click", cancelJob);
  $("touch-cancel").addEventListener("click", cancelJob);
  $("done-again").addEventListener("click", startAgain);
  $("failed-again").addEventListener("click", startAgain);
  show("screen-ticket", "ticket-text");
  document.body.dataset.ready = "true";
}

start();

// Informações Gerais: the overview's fields, open alerts, the schedule form, the
// per-table reconciliation and the run log with its run detail (followed live).

import { $, h, replace, show, status } from "./dom.js";
import { lang, msg, onLang, t, tOr } from "./i18n.js";
import * as f from "./format.js";
import { Code, fieldViolations, asConnectError, isCanceled } from "./api.js";
import { followRun, closeRun, refreshRunLabels } from "./run.js";

const RUNS_PAGE = 20;

let s = null; // the session (see main.js)
let ov = null; // the last Overview
let runs = [];
let nextRuns = "";
let drawnOnce = false;

export function init() {
  $("schedule-form").addEventListener("submit", (e) => {
    e.preventDefault();
    save();
  });
  for (const r of document.querySelectorAll('input[name="schedule-mode"]')) r.addEventListener("change", syncMode);
  $("runs-more").addEventListener("click", () => loadRuns(false));
  $("sync-now").addEventListener("click", syncNow);
  const body = $("runs").tBodies[0];
  body.addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-run-id]");
    if (tr) openRun(tr.dataset.runId);
  });
  body.addEventListener("keydown", (e) => {
    const tr = e.target.closest("tr[data-run-id]");
    if (!tr || (e.key !== "Enter" && e.key !== " ")) return;
    e.preventDefault();
    openRun(tr.dataset.runId);
  });
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  replace($("timezones"), zones.map((z) => h("option", { value: z })));
  for (const id of ["daily-times", "cron", "timezone", "max-without-success"]) {
    const el = $(id);
    el.dataset.describedbyBase = el.getAttribute("aria-describedby") ?? "";
  }
  onLang(redraw);
}

/** Starts a session: GetOverview first (drawn as soon as it arrives), the run log beside it. */
export async function start(session) {
  s = session;
  ov = null;
  runs = [];
  nextRuns = "";
  replace($("runs").tBodies[0]);
  show($("runs-empty"), false);
  show($("runs-more"), false);
  replace($("alerts"));
  show($("alerts-box"), false);
  closeRun();
  status($("schedule-status"), "");
  status($("sync-status"), "");
  status($("overview-status"), msg("loading"), "busy");
  const overview = s.api.client.getOverview({ tenantId: s.tenant }, { signal: s.signal });
  loadRuns(true);
  try {
    ov = await overview;
  } catch (err) {
    status($("overview-status"), s.fail(err), "error");
    return;
  }
  status($("overview-status"), "");
  s.setOverview(ov);
  drawOverview();
  fillForm();
  if (!drawnOnce) {
    drawnOnce = true;
    document.body.dataset.overview = "drawn";
    performance.mark("erpsync:overview-drawn");
  }
}

/** Reloads the overview (after a run ends, or a held item is resolved elsewhere). */
export async function refresh() {
  if (!s) return;
  try {
    ov = await s.api.client.getOverview({ tenantId: s.tenant }, { signal: s.signal });
    s.setOverview(ov);
    s.reachable();
    drawOverview();
  } catch (err) {
    if (!isCanceled(err)) s.fail(err);
  }
}

function redraw() {
  if (!s) return;
  if (ov) drawOverview();
  drawRuns();
}

function field(name, ...content) {
  const dd = document.querySelector(`dd[data-field="${name}"]`);
  replace(dd, ...content);
  return dd;
}

function drawOverview() {
  const e = (enumName, n) => s.api.enumName(enumName, n);
  const tz = s.tz();
  const it = e("IntegrationType", ov.integrationType);
  field("integration_type", tOr(`it.${it}`, it));
  const erp = [ov.erpName, ov.erpVersion].filter((x) => x.trim() !== "").join(" ");
  field("erp", erp || t("not_informed")).classList.toggle("muted", !erp);
  const ds = e("DeploymentStatus", ov.deploymentStatus);
  field("deployment_status", tOr(`ds.${ds}`, ds));
  field("active", ov.active ? t("yes") : t("no"));
  field("scheduled", ov.scheduled ? t("yes") : t("no"));
  const next = f.tsDate(ov.nextRunAt);
  if (next) {
    field(
      "next_run",
      h("time", { datetime: ov.nextRunLocal || next.toISOString(), text: f.formatDateTime(next, tz, lang()) }),
      h("span", { class: "muted", text: ` (${tz})` }),
    ).classList.remove("muted");
  } else {
    field("next_run", t("not_scheduled")).classList.add("muted");
  }
  field("database_size", f.formatBytes(ov.dbSizeBytes, lang()));
  const avg = f.durationMs(ov.averageDuration);
  field("average_duration", avg === null ? t("no_runs_yet") : f.formatDuration(avg)).classList.toggle("muted", avg === null);
  const health = e("Health", ov.health);
  // A value this page does not know yet shows its name (or number) in a neutral badge.
  const reason = (ov.healthReason || "").trim();
  field(
    "health",
    h("span", { class: `badge health-${health.toLowerCase()}`, text: tOr(`health.${health}`, health), title: reason || undefined }),
    ...(reason ? [h("span", { class: "muted health-reason", text: ` ${reason}` })] : []),
  );
  const last = f.tsDate(ov.lastSuccessAt);
  field("last_success", last ? f.formatDateTime(last, tz, lang()) : t("never")).classList.toggle("muted", !last);
  field("business_rule", ov.businessRule.trim() || t("not_informed")).classList.toggle("muted", !ov.businessRule.trim());
  drawAlerts();
  drawRecon();
}

function drawAlerts() {
  const items = ov.openAlerts.map((a) => {
    const kind = s.api.enumName("AlertKind", a.kind);
    const opened = f.tsDate(a.openedAt);
    const li = h(
      "li",
      { dataset: { alertKind: kind }, class: "alert" },
      h("strong", { text: tOr(`alert.${kind}`, kind) }),
      a.message ? ` ${a.message}` : "",
      opened ? h("span", { class: "when", text: ` · ${t("alert.since", { when: f.formatDateTime(opened, s.tz(), lang()) })}` }) : "",
    );
    if (typeof a.table === "string" && a.table) li.dataset.table = a.table;
    if (kind === "DELETES_HELD") li.append(" ", h("button", { type: "button", class: "link", text: t("alert.see_deletes"), on: { click: () => s.goTo("panel-historico") } }));
    if (kind === "ABC_SHIFT_HELD") li.append(" ", h("button", { type: "button", class: "link", text: t("alert.see_abc"), on: { click: () => s.goTo("panel-abc") } }));
    if (a.runId) li.append(" ", h("button", { type: "button", class: "link", text: t("alert.see_run"), on: { click: () => openRun(a.runId) } }));
    return li;
  });
  replace($("alerts"), items);
  show($("alerts-box"), items.length > 0);
}

function drawRecon() {
  const rows = ov.tables.map((rt) =>
    h(
      "tr",
      { dataset: { table: rt.table } },
      h("th", { scope: "row", text: s.tableLabel(rt.table) }),
      h("td", { class: "num", dataset: { col: "erp" }, text: rt.erpCount === undefined ? "—" : f.formatInt(rt.erpCount, lang()) }),
      h("td", { class: "num", dataset: { col: "staged" }, text: f.formatInt(rt.stagedCount, lang()) }),
      h("td", { class: "num", dataset: { col: "crm" }, text: crmCell(rt) }),
    ),
  );
  replace($("recon-table").tBodies[0], rows);
  show($("recon"), rows.length > 0);
}

/** The CRM count of a run table, or "—" for tables the CRM does not hold. */
export function crmCell(rt) {
  const source = s.api.enumName("CrmCountSource", rt.crmCountSource);
  if (source === "UNSPECIFIED" && rt.crmCount === 0n) return "—";
  return f.formatInt(rt.crmCount, lang());
}

// ---- schedule form ----

function syncMode() {
  const cron = document.querySelector('input[name="schedule-mode"]:checked').value === "cron";
  show($("field-daily"), !cron);
  show($("field-cron"), cron);
}

function fillForm() {
  const sch = ov.schedule;
  const cron = sch && sch.cron !== "";
  document.querySelector(`input[name="schedule-mode"][value="${cron ? "cron" : "daily"}"]`).checked = true;
  $("daily-times").value = sch ? sch.dailyTimes.join(", ") : "";
  $("cron").value = sch ? sch.cron : "";
  $("timezone").value = ov.timezone;
  $("max-without-success").value = f.formatHours(f.durationMs(ov.maxTimeWithoutSuccess), lang());
  syncMode();
  clearViolations();
}

const VIOLATION_INPUT = [
  ["schedule.daily_times", "daily-times", "v-daily"],
  ["schedule.cron", "cron", "v-cron"],
  ["timezone", "timezone", "v-timezone"],
  ["max_time_without_success", "max-without-success", "v-max"],
];

function clearViolations() {
  for (const el of document.querySelectorAll("#schedule-form [data-violation-for]")) {
    if (el.dataset.dynamic) el.remove();
    else {
      el.textContent = "";
      el.hidden = true;
    }
  }
  for (const [, inputId] of VIOLATION_INPUT) {
    const input = $(inputId);
    input.removeAttribute("aria-invalid");
    const base = input.dataset.describedbyBase;
    if (base) input.setAttribute("aria-describedby", base);
    else input.removeAttribute("aria-describedby");
  }
}

let violationSeq = 0;

/** Shows one violation next to the input it names; returns that input (or null). */
function showViolation(fieldName, description) {
  let input = null;
  let anchor = null;
  for (const [prefix, inputId, staticId] of VIOLATION_INPUT) {
    if (fieldName === prefix || fieldName.startsWith(`${prefix}[`) || fieldName.startsWith(`${prefix}.`)) {
      input = $(inputId);
      anchor = $(staticId);
    }
  }
  if (!input && fieldName === "schedule") {
    const cron = document.querySelector('input[name="schedule-mode"]:checked').value === "cron";
    input = $(cron ? "cron" : "daily-times");
    anchor = $("v-schedule");
  }
  let target = document.querySelector(`#schedule-form [data-violation-for="${CSS.escape(fieldName)}"]`);
  if (!target && anchor) {
    violationSeq += 1;
    target = h("p", { class: "violation", id: `v-dyn-${violationSeq}`, dataset: { violationFor: fieldName, dynamic: "1" } });
    anchor.after(target);
  }
  if (!target) return null;
  const m = /\[(\d+)\]$/.exec(fieldName);
  let text = description;
  if (m && input) {
    const value = f.parseDailyTimes(input.value)[Number(m[1])];
    if (value !== undefined && !description.includes(value)) text = `${value}: ${description}`;
  }
  target.textContent = text;
  target.hidden = false;
  if (input) {
    input.setAttribute("aria-invalid", "true");
    const ids = new Set((input.getAttribute("aria-describedby") ?? "").split(/\s+/).filter(Boolean));
    ids.add(target.id);
    input.setAttribute("aria-describedby", [...ids].join(" "));
  }
  return input;
}

async function save() {
  if (!s || !ov) return;
  clearViolations();
  const cron = document.querySelector('input[name="schedule-mode"]:checked').value === "cron";
  const hours = f.parseHours($("max-without-success").value);
  if (hours === null) {
    showViolation("max_time_without_success", t("sch.err_hours"));
    status($("schedule-status"), msg("sch.not_saved"), "error");
    $("max-without-success").focus();
    return;
  }
  const req = {
    tenantId: s.tenant,
    schedule: cron ? { dailyTimes: [], cron: $("cron").value.trim() } : { dailyTimes: f.parseDailyTimes($("daily-times").value), cron: "" },
    timezone: $("timezone").value.trim(),
    maxTimeWithoutSuccess: f.msDuration(Math.round(hours * 3_600_000)),
  };
  const button = $("schedule-save");
  button.disabled = true;
  status($("schedule-status"), msg("saving"), "busy");
  try {
    ov = await s.api.client.updateSchedule(req, { signal: s.signal });
    s.setOverview(ov);
    drawOverview();
    fillForm();
    status($("schedule-status"), msg("saved"), "ok");
  } catch (err) {
    const violations = fieldViolations(err);
    if (asConnectError(err).code === Code.InvalidArgument && violations.length > 0) {
      let first = null;
      const loose = [];
      for (const v of violations) {
        const input = showViolation(v.field, v.description);
        if (!input) loose.push(`${v.field}: ${v.description}`);
        first ??= input;
      }
      status($("schedule-status"), loose.length ? [t("sch.not_saved"), ...loose].join(" ") : msg("sch.not_saved"), "error");
      first?.focus();
    } else {
      status($("schedule-status"), s.fail(err), "error");
    }
  } finally {
    button.disabled = false;
  }
}

// ---- run log ----

async function loadRuns(reset) {
  const sess = s;
  const more = $("runs-more");
  more.disabled = true;
  try {
    const res = await sess.api.client.listRuns(
      { tenantId: sess.tenant, pageSize: RUNS_PAGE, pageToken: reset ? "" : nextRuns },
      { signal: sess.signal },
    );
    if (sess !== s) return;
    runs = reset ? res.runs : runs.concat(res.runs);
    nextRuns = res.nextPageToken;
    drawRuns();
  } catch (err) {
    if (sess === s && !isCanceled(err)) status($("sync-status"), sess.fail(err), "error");
  } finally {
    more.disabled = false;
  }
}

/** The Log cell: the first error, else how the run was started and how long it took. */
function runSummary(run) {
  if (run.errors.length > 0) return run.errors[0];
  const st = s.api.enumName("RunStatus", run.status);
  if (st === "RUNNING") return t("runs.running");
  const trigger = s.api.enumName("RunTrigger", run.trigger);
  const parts = [tOr(`trigger.${trigger}`, trigger), f.formatDuration(f.durationMs(run.duration))];
  // ListRuns answers runs without their tables; GetRun has them.
  if (run.tables.length > 0) {
    let received = 0n;
    let rejected = 0n;
    for (const tb of run.tables) {
      received += tb.received;
      rejected += tb.rejected;
    }
    parts.push(t("runs.summary", { received: f.formatInt(received, lang()), rejected: f.formatInt(rejected, lang()) }));
  }
  if (st === "PARTIAL") parts.push(t("runs.partial"));
  return parts.filter(Boolean).join(" · ");
}

/** A status badge for a run status suffix. */
export function statusBadge(suffix) {
  return h("span", { class: `badge run-${suffix.toLowerCase()}`, text: tOr(`rs.${suffix}`, suffix) });
}

function drawRuns() {
  if (!s) return;
  const tz = s.tz();
  const rows = runs.map((run) => {
    const st = s.api.enumName("RunStatus", run.status);
    return h(
      "tr",
      { dataset: { runId: run.runId }, tabindex: 0, class: "clickable" },
      h("td", { dataset: { col: "date" }, text: f.formatDateTime(f.tsDate(run.startedAt), tz, lang(), { seconds: true }) }),
      h("td", { dataset: { col: "status", status: st } }, statusBadge(st)),
      h("td", { dataset: { col: "log" } }, h("span", { class: "summary", text: runSummary(run) }), h("span", { class: "open-hint", text: t("runs.open") })),
    );
  });
  replace($("runs").tBodies[0], rows);
  show($("runs-empty"), runs.length === 0);
  show($("runs-more"), nextRuns !== "");
  refreshRunLabels();
}

function openRun(runId) {
  followRun(s, runId, {
    onFinished: () => {
      loadRuns(true);
      refresh();
    },
  });
}

async function syncNow() {
  if (!s) return;
  const button = $("sync-now");
  button.disabled = true;
  status($("sync-status"), msg("sync.starting"), "busy");
  try {
    const res = await s.api.client.triggerSync({ tenantId: s.tenant }, { signal: s.signal });
    status($("sync-status"), msg(res.alreadyRunning ? "sync.already" : "sync.started"), "ok");
    await loadRuns(true);
    if (res.run) openRun(res.run.runId);
  } catch (err) {
    status($("sync-status"), s.fail(err), "error");
  } finally {
    button.disabled = false;
  }
}

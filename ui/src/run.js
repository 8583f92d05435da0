// The run detail: status, stages with durations, per-table counts (ERP / staged / CRM),
// errors and the run's log, followed live with StreamLogs while the run is RUNNING.

import { $, h, replace, show, status } from "./dom.js";
import { has, lang, msg, onLang, t, tOr } from "./i18n.js";
import * as f from "./format.js";
import { isCanceled } from "./api.js";

const POLL_MS = 1500;
const RETRY_MS = 2000;

let current = null; // {session, runId, run, log, cursor, abort, following, onFinished}

export function init() {
  $("run-close").addEventListener("click", () => {
    const back = current?.runId;
    closeRun();
    // Back to the row that opened it, for keyboard users.
    const row = back && document.querySelector(`#runs tr[data-run-id="${CSS.escape(back)}"]`);
    (row || $("runs-title")).focus?.();
  });
  onLang(() => {
    if (current?.run) drawRun();
    if (current) drawLog(true);
  });
}

/** Marks the row of the open run in the run log. */
export function refreshRunLabels() {
  for (const tr of document.querySelectorAll("#runs tr[data-run-id]")) {
    const open = current !== null && tr.dataset.runId === current.runId;
    tr.classList.toggle("selected", open);
    if (open) tr.setAttribute("aria-current", "true");
    else tr.removeAttribute("aria-current");
  }
}

export function closeRun() {
  if (current) current.abort.abort();
  current = null;
  show($("run-detail"), false);
  refreshRunLabels();
}

/** Opens a run's detail and, while it runs, follows its log and progress live. */
export async function followRun(session, runId, { onFinished } = {}) {
  closeRun();
  const me = { session, runId, run: null, log: [], cursor: undefined, abort: new AbortController(), following: false, onFinished };
  current = me;
  session.signal.addEventListener("abort", () => me.abort.abort(), { once: true });
  replace($("run-title"), t("run.title", { id: runId }));
  for (const id of ["run-status", "run-trigger", "run-started", "run-finished", "run-duration"]) replace($(id));
  replace($("run-stages").tBodies[0]);
  replace($("run-tables").tBodies[0]);
  replace($("run-errors"));
  replace($("run-log"));
  show($("run-progress"), false);
  status($("run-live"), msg("loading"), "busy");
  show($("run-detail"), true);
  refreshRunLabels();
  $("run-title").focus();
  let res;
  try {
    res = await session.api.client.getRun({ tenantId: session.tenant, runId }, { signal: me.abort.signal });
  } catch (err) {
    if (current === me && !isCanceled(err)) status($("run-live"), session.fail(err), "error");
    return;
  }
  if (current !== me) return;
  me.run = res.run;
  me.log = res.log.filter((ev) => !ev.heartbeat);
  for (const ev of me.log) if (me.cursor === undefined || ev.cursor > me.cursor) me.cursor = ev.cursor;
  drawRun();
  drawLog(true);
  if (isRunning(me)) {
    follow(me);
    poll(me);
  } else {
    status($("run-live"), "");
  }
}

function isRunning(me) {
  return me.run && me.session.api.enumName("RunStatus", me.run.status) === "RUNNING";
}

/** StreamLogs from the last cursor, reconnecting after a broken stream. */
async function follow(me) {
  me.following = true;
  while (current === me && isRunning(me)) {
    status($("run-live"), msg("run.following"), "busy");
    const req = { tenantId: me.session.tenant, runId: me.runId, follow: true };
    if (me.cursor !== undefined) req.afterCursor = me.cursor;
    try {
      for await (const ev of me.session.api.client.streamLogs(req, { signal: me.abort.signal })) {
        if (current !== me) return;
        if (ev.cursor > (me.cursor ?? -1n)) me.cursor = ev.cursor;
        if (ev.heartbeat) continue;
        me.log.push(ev);
        appendLog(ev);
        if (ev.stage === "finish") poll(me, true);
      }
      // The server closed a followed stream (a restart, a proxy): resume after a pause.
      if (current === me && isRunning(me)) await new Promise((r) => setTimeout(r, RETRY_MS));
    } catch (err) {
      if (current !== me || isCanceled(err)) return;
      status($("run-live"), msg("run.reconnecting", { error: me.session.describe(err) }), "error");
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  }
}

/** GetRun again while the run is RUNNING (progress, stages, counts); once more at the end. */
async function poll(me, once = false) {
  if (me.polling && !once) return;
  if (!once) me.polling = true;
  do {
    if (!once) await new Promise((r) => setTimeout(r, POLL_MS));
    if (current !== me) return;
    let res;
    try {
      res = await me.session.api.client.getRun({ tenantId: me.session.tenant, runId: me.runId }, { signal: me.abort.signal });
    } catch (err) {
      if (current !== me || isCanceled(err)) return;
      continue;
    }
    if (current !== me) return;
    const wasRunning = isRunning(me);
    me.run = res.run;
    drawRun();
    if (wasRunning && !isRunning(me)) {
      finish(me, res.log);
      return;
    }
  } while (!once && current === me && isRunning(me));
}

function finish(me, log) {
  // Any line the stream had not delivered yet comes with the final GetRun.
  for (const ev of log) {
    if (ev.heartbeat || (me.cursor !== undefined && ev.cursor <= me.cursor)) continue;
    me.log.push(ev);
    me.cursor = ev.cursor;
    appendLog(ev);
  }
  me.abort.abort();
  me.abort = new AbortController();
  status($("run-live"), msg("run.ended", { status: runStatusMsg(me.session.api.enumName("RunStatus", me.run.status)) }), "ok");
  me.onFinished?.();
}

function drawRun() {
  const me = current;
  const run = me.run;
  const api = me.session.api;
  const tz = me.session.tz();
  const st = api.enumName("RunStatus", run.status);
  const started = f.tsDate(run.startedAt);
  replace($("run-title"), t("run.title", { id: run.runId }));
  replace($("run-status"), h("span", { class: `badge run-${st.toLowerCase()}`, text: runStatusLabel(st) }));
  $("run-status").dataset.status = st;
  const trigger = api.enumName("RunTrigger", run.trigger);
  replace($("run-trigger"), tOr(`trigger.${trigger}`, trigger));
  replace($("run-started"), f.formatDateTime(started, tz, lang(), { seconds: true }));
  const finished = f.tsDate(run.finishedAt);
  replace($("run-finished"), finished ? f.formatDateTime(finished, tz, lang(), { seconds: true }) : t("run.not_finished"));
  const dur = f.durationMs(run.duration);
  replace($("run-duration"), dur !== null && (finished || dur > 0) ? f.formatDuration(dur) : started ? f.formatDuration(Date.now() - started.getTime()) : "");

  const p = run.current;
  const running = st === "RUNNING";
  show($("run-progress"), running && !!p && p.stage !== "");
  if (running && p && p.stage) {
    const bar = $("run-progress-bar");
    if (p.total > 0n) {
      bar.max = Number(p.total);
      bar.value = Number(p.done);
    } else {
      bar.removeAttribute("value");
    }
    const where = p.table ? `${stageLabel(p.stage)} · ${me.session.tableLabel(p.table)}` : stageLabel(p.stage);
    const count = p.total > 0n ? t("run.progress_of", { done: f.formatInt(p.done, lang()), total: f.formatInt(p.total, lang()) }) : t("run.progress_done", { done: f.formatInt(p.done, lang()) });
    $("run-progress-text").textContent = `${where}: ${count}`;
  }

  replace($("run-errors"), run.errors.map((e) => h("li", { text: e })));
  replace(
    $("run-stages").tBodies[0],
    run.stages.map((sg) =>
      h(
        "tr",
        { dataset: { stage: sg.stage } },
        h("th", { scope: "row", text: stageLabel(sg.stage) }),
        h("td", { class: "num", text: f.formatSeconds(f.durationMs(sg.duration), lang()) }),
        h("td", { text: sg.outcome }),
      ),
    ),
  );
  const n = (v) => f.formatInt(v, lang());
  replace(
    $("run-tables").tBodies[0],
    run.tables.length === 0 ? [h("tr", {}, h("td", { colspan: 10, class: "muted", text: t(running ? "run.no_tables" : "run.no_tables_done") }))] : [],
    run.tables.map((rt) =>
      h(
        "tr",
        { dataset: { table: rt.table } },
        h("th", { scope: "row", text: me.session.tableLabel(rt.table) }),
        h("td", { class: "num", dataset: { col: "received" }, text: n(rt.received) }),
        h("td", { class: "num", dataset: { col: "inserted" }, text: n(rt.inserted) }),
        h("td", { class: "num", dataset: { col: "updated" }, text: n(rt.updated) }),
        h("td", { class: "num", dataset: { col: "deleted" }, text: n(rt.deleted) }),
        h("td", { class: "num", dataset: { col: "held" }, text: n(rt.held) }),
        h("td", { class: "num", dataset: { col: "rejected" }, text: n(rt.rejected) }),
        h("td", { class: "num", dataset: { col: "erp" }, text: rt.erpCount === undefined ? "—" : n(rt.erpCount) }),
        h("td", { class: "num", dataset: { col: "staged" }, text: n(rt.stagedCount) }),
        h("td", { class: "num", dataset: { col: "crm" }, text: crmText(me, rt) }),
      ),
    ),
  );
}

function crmText(me, rt) {
  const source = me.session.api.enumName("CrmCountSource", rt.crmCountSource);
  if (source === "UNSPECIFIED" && rt.crmCount === 0n && !f.tsDate(rt.crmCountedAt)) return "—";
  return f.formatInt(rt.crmCount, lang());
}

/** A stage's name in the page's language (unknown stages as the server names them). */
function stageLabel(stage) {
  return tOr(`stage.${stage}`, stage);
}

const runStatusLabel = (st) => tOr(`rs.${st}`, st);
const runStatusMsg = (st) => (has(`rs.${st}`) ? msg(`rs.${st}`) : st);

/** A log event's fields (a google.protobuf.Struct, which protobuf-es hands over as a JSON object). */
function fieldsText(fields) {
  if (!fields || typeof fields !== "object") return "";
  return Object.entries(fields)
    .map(([k, v]) => `${k}=${v !== null && typeof v === "object" ? JSON.stringify(v) : String(v)}`)
    .join(" ");
}

function logItem(ev) {
  const me = current;
  const level = me.session.api.enumName("LogLevel", ev.level);
  const fields = fieldsText(ev.fields);
  return h(
    "li",
    { class: `lvl-${level.toLowerCase()}`, dataset: { cursor: String(ev.cursor), level } },
    h("time", { text: f.formatTime(f.tsDate(ev.at), me.session.tz()) }),
    " ",
    h("span", { class: "level", text: tOr(`level.${level}`, level) }),
    " ",
    h("span", { class: "stage", text: ev.table ? `${ev.stage} · ${ev.table}` : ev.stage }),
    " ",
    h("span", { class: "msg", text: ev.message }),
    fields ? h("span", { class: "kv", text: ` ${fields}` }) : "",
  );
}

function drawLog() {
  const list = $("run-log");
  replace(list, current.log.map(logItem));
  list.scrollTop = list.scrollHeight;
}

function appendLog(ev) {
  const list = $("run-log");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.append(logItem(ev));
  if (atBottom) list.scrollTop = list.scrollHeight;
}

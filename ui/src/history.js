// Histórico: the period picker (dd/mm/aaaa, at most 7 days), the table checkboxes from
// ListTables, "Baixar Excel" (ExportHistory streamed into a Blob with visible progress)
// and Excessivos Deletes (ListPendingDeletes, ResolvePendingDeletes, their export).

import { $, h, replace, show, status } from "./dom.js";
import { lang, msg, onLang, t, tOr } from "./i18n.js";
import * as f from "./format.js";
import { Code, asConnectError, fieldViolations, isCanceled } from "./api.js";

const XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const DELETES_PAGE = 100;

let s = null;
let loaded = false;
let tables = [];
let deletes = [];
let nextDeletes = "";
let exporting = null; // AbortController of the running download

export function init() {
  for (const id of ["period-from", "period-to"]) {
    const input = $(id);
    input.addEventListener("input", () => {
      // "29112026" → "29/11/2026" while typing digits only.
      const digits = input.value.replace(/\D/g, "");
      if (/^\d{8}$/.test(input.value)) input.value = `${digits.slice(0, 2)}/${digits.slice(2, 4)}/${digits.slice(4)}`;
      clearPeriodError();
    });
    input.addEventListener("blur", () => {
      if ($("period-from").value && $("period-to").value) checkPeriod();
    });
  }
  $("tables-all").addEventListener("change", (e) => {
    for (const box of tableBoxes()) box.checked = e.target.checked;
    syncAll();
  });
  $("tables").tBodies[0].addEventListener("change", syncAll);
  $("export-form").addEventListener("submit", (e) => {
    e.preventDefault();
    exportRequests();
  });
  $("export-cancel").addEventListener("click", () => exporting?.abort());
  $("deletes-table").addEventListener("change", () => loadDeletes(true));
  $("deletes-more").addEventListener("click", () => loadDeletes(false));
  $("deletes-all").addEventListener("change", (e) => {
    for (const box of deleteBoxes()) if (!box.disabled) box.checked = e.target.checked;
  });
  $("deletes-approve").addEventListener("click", () => resolve("APPROVE"));
  $("deletes-discard").addEventListener("click", () => resolve("DISCARD"));
  $("deletes-export").addEventListener("click", exportDeletes);
  onLang(() => {
    if (!s) return;
    drawHint();
    drawTables();
    drawDeletes();
  });
}

export function start(session) {
  s = session;
  loaded = false;
  tables = [];
  deletes = [];
  nextDeletes = "";
  exporting?.abort();
  replace($("tables").tBodies[0]);
  replace($("deletes").tBodies[0]);
  clearPeriodError();
  status($("tables-error"), "");
  status($("deletes-status"), "");
  show($("export-progress"), false);
  show($("deletes-progress"), false);
  $("period-from").value = "";
  $("period-to").value = "";
}

/** Called when the tab is shown: loads its data the first time. */
export async function shown() {
  if (!s || loaded) return;
  loaded = true;
  const sess = s;
  const today = f.todayIn(sess.tz());
  if (!$("period-from").value) $("period-from").value = f.isoToBr(f.addDays(today, -(f.MAX_EXPORT_DAYS - 1)));
  if (!$("period-to").value) $("period-to").value = f.isoToBr(today);
  drawHint();
  loadDeletes(true);
  try {
    tables = await sess.tables();
  } catch (err) {
    if (sess === s) status($("tables-error"), sess.fail(err), "error");
    return;
  }
  if (sess === s) drawTables();
}

function drawHint() {
  const today = f.todayIn(s.tz());
  $("period-hint").textContent = t("period.hint", {
    max: f.MAX_EXPORT_DAYS,
    from: formatDay(f.addDays(today, -(f.MAX_EXPORT_DAYS - 1))),
    to: formatDay(today),
    tz: s.tz(),
  });
}

const formatDay = (iso) => f.isoToBr(iso);

function clearPeriodError() {
  status($("period-error"), "");
  for (const id of ["period-from", "period-to"]) $(id).removeAttribute("aria-invalid");
}

/** The period as {from, to} ("YYYY-MM-DD"), or null after explaining what is wrong. */
function checkPeriod() {
  clearPeriodError();
  const today = f.todayIn(s.tz());
  const r = f.checkPeriod($("period-from").value, $("period-to").value, today);
  if (r.error) {
    const input = $(r.field === "from" ? "period-from" : "period-to");
    input.setAttribute("aria-invalid", "true");
    status($("period-error"), msg(r.error, { ...r.vars, which: msg(r.field === "from" ? "period.the_from" : "period.the_to") }), "error");
    return null;
  }
  return r;
}

function tableBoxes() {
  return [...document.querySelectorAll('#tables input[name="table"]')];
}

function syncAll() {
  const boxes = tableBoxes();
  const on = boxes.filter((b) => b.checked).length;
  const all = $("tables-all");
  all.checked = on === boxes.length && on > 0;
  all.indeterminate = on > 0 && on < boxes.length;
  if (on > 0) status($("tables-error"), "");
}

function drawTables() {
  const chosen = new Set(tableBoxes().filter((b) => b.checked).map((b) => b.value));
  const first = chosen.size === 0 && tableBoxes().length === 0;
  // In label order, as on the seed's screen (Contato, Cotação, Empresa, …).
  const sorted = [...tables].sort((a, b) => s.tableLabel(a.id).localeCompare(s.tableLabel(b.id), lang()));
  replace(
    $("tables").tBodies[0],
    sorted.map((tb) => {
      const id = `table-${tb.id}`;
      return h(
        "tr",
        {},
        h("td", { class: "check" }, h("input", { type: "checkbox", name: "table", value: tb.id, id, checked: first ? $("tables-all").checked : chosen.has(tb.id) })),
        h("td", {}, h("label", { for: id, text: s.tableLabel(tb.id) })),
        h("td", { class: "muted", text: s.tableDescription(tb.id) }),
      );
    }),
  );
  syncAll();
}

/** Streams one ExportHistory call into a file, with progress in `progressId`. */
async function download({ kind, tables: chosen, name, progressId, button }) {
  const sess = s;
  const period = checkPeriod();
  if (!period) {
    $("period-error").scrollIntoView?.({ block: "center" });
    return;
  }
  exporting?.abort();
  const abort = new AbortController();
  exporting = abort;
  sess.signal.addEventListener("abort", () => abort.abort(), { once: true });
  const box = $(progressId);
  const bar = $(`${progressId}-bar`);
  const text = $(`${progressId}-text`);
  show(box, true);
  bar.removeAttribute("value");
  status(text, msg("export.starting"), "busy");
  button.disabled = true;
  show($("export-cancel"), progressId === "export-progress");
  const parts = [];
  let bytes = 0;
  let chunks = 0;
  let fileName = "";
  let type = "";
  try {
    const req = { tenantId: sess.tenant, fromDate: period.from, toDate: period.to, tables: chosen, kind: sess.api.enumValue("ExportKind", kind) };
    for await (const chunk of sess.api.client.exportHistory(req, { signal: abort.signal })) {
      if (chunk.filename) fileName = chunk.filename;
      if (chunk.contentType) type = chunk.contentType;
      parts.push(chunk.data);
      bytes += chunk.data.byteLength;
      chunks += 1;
      status(text, msg("export.received", { size: f.formatBytes(bytes, lang()), chunks }), "busy");
    }
    const file = name(period) || fileName || `erpsync-${kind.toLowerCase()}-${period.from}-${period.to}.xlsx`;
    saveFile(new Blob(parts, { type: type || XLSX }), file);
    bar.max = 1;
    bar.value = 1;
    status(text, msg("export.done", { name: file, size: f.formatBytes(bytes, lang()) }), "ok");
  } catch (err) {
    bar.max = 1;
    bar.value = 0;
    if (isCanceled(err)) {
      status(text, msg("export.canceled"), "");
    } else {
      const ce = asConnectError(err);
      const period = fieldViolations(err).filter((v) => v.field === "from_date" || v.field === "to_date");
      if (ce.code === Code.InvalidArgument && period.length > 0) {
        status($("period-error"), period.map((v) => `${t(v.field === "from_date" ? "period.the_from" : "period.the_to")}: ${v.description}`).join(" "), "error");
        for (const v of period) $(v.field === "from_date" ? "period-from" : "period-to").setAttribute("aria-invalid", "true");
        status(text, msg("export.failed"), "error");
      } else {
        status(text, sess.fail(err), "error");
      }
    }
  } finally {
    if (exporting === abort) exporting = null;
    button.disabled = false;
    show($("export-cancel"), false);
  }
}

/** Saves a Blob through an a[download] click (the only way a page can save a file). */
function saveFile(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name, class: "visually-hidden", tabindex: -1, text: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function exportRequests() {
  const boxes = tableBoxes();
  const chosen = boxes.filter((b) => b.checked).map((b) => b.value);
  if (boxes.length > 0 && chosen.length === 0) {
    status($("tables-error"), msg("hist.pick_table"), "error");
    return;
  }
  download({
    kind: "REQUESTS",
    // Every table ticked: ask for all (the server's "empty means all tables").
    tables: chosen.length === boxes.length ? [] : chosen,
    name: (p) => f.exportFileName(s.tenant, p.from, p.to),
    progressId: "export-progress",
    button: $("export"),
  });
}

function exportDeletes() {
  download({
    kind: "EXCESSIVE_DELETES",
    tables: [$("deletes-table").value],
    name: () => "",
    progressId: "deletes-progress",
    button: $("deletes-export"),
  });
}

// ---- Excessivos Deletes ----

function deleteBoxes() {
  return [...document.querySelectorAll('#deletes input[name="pending"]')];
}

async function loadDeletes(reset) {
  const sess = s;
  const table = $("deletes-table").value;
  const more = $("deletes-more");
  more.disabled = true;
  try {
    const res = await sess.api.client.listPendingDeletes(
      { tenantId: sess.tenant, table, pageSize: DELETES_PAGE, pageToken: reset ? "" : nextDeletes },
      { signal: sess.signal },
    );
    if (sess !== s || table !== $("deletes-table").value) return;
    deletes = reset ? res.pendingDeletes : deletes.concat(res.pendingDeletes);
    nextDeletes = res.nextPageToken;
    drawDeletes({ keepSelection: !reset });
  } catch (err) {
    if (sess === s && !isCanceled(err)) status($("deletes-status"), sess.fail(err), "error");
  } finally {
    more.disabled = false;
  }
}

function drawDeletes({ keepSelection = true } = {}) {
  const checked = new Set(keepSelection ? deleteBoxes().filter((b) => b.checked).map((b) => b.value) : []);
  const tz = s.tz();
  replace(
    $("deletes").tBodies[0],
    deletes.map((d, i) => {
      const id = `pending-${i}`;
      return h(
        "tr",
        { dataset: { recordId: d.externalId, state: d.state } },
        h(
          "td",
          { class: "check" },
          h("input", { type: "checkbox", name: "pending", value: d.externalId, id, checked: checked.has(d.externalId) }),
          h("label", { for: id, class: "visually-hidden", text: t("del.select_one", { name: d.name || d.externalId }) }),
        ),
        h("td", { text: d.externalId }),
        h("td", { text: d.name }),
        h("td", { text: d.document }),
        h("td", { text: f.formatDateTime(f.tsDate(d.detectedAt), tz, lang()) }),
        h("td", {}, h("span", { class: `badge del-${d.state.toLowerCase()}`, text: stateLabel(d.state) })),
      );
    }),
  );
  $("deletes-all").checked = false;
  show($("deletes-empty"), deletes.length === 0);
  show($("deletes-more"), nextDeletes !== "");
}

function stateLabel(state) {
  return tOr(`del.state.${state}`, state);
}

async function resolve(action) {
  const sess = s;
  const ids = deleteBoxes().filter((b) => b.checked).map((b) => b.value);
  if (ids.length === 0) {
    status($("deletes-status"), msg("del.pick"), "error");
    return;
  }
  const table = $("deletes-table").value;
  for (const id of ["deletes-approve", "deletes-discard"]) $(id).disabled = true;
  status($("deletes-status"), msg("working"), "busy");
  try {
    const res = await sess.api.client.resolvePendingDeletes(
      { tenantId: sess.tenant, table, ids, action: sess.api.enumValue("ResolveAction", action) },
      { signal: sess.signal },
    );
    status($("deletes-status"), msg(action === "APPROVE" ? "del.approved" : "del.discarded", { n: f.formatInt(res.resolved, lang()) }), "ok");
    await loadDeletes(true);
    sess.refreshOverview();
  } catch (err) {
    if (!isCanceled(err)) status($("deletes-status"), sess.fail(err), "error");
  } finally {
    for (const id of ["deletes-approve", "deletes-discard"]) $(id).disabled = false;
  }
}

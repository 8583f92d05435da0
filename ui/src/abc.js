// Curva ABC: the Pareto curve and class counts (GetAbcReport) drawn as inline SVG, a
// held ABC shift (ResolveAbcShift), the company search (ListCompanies) opening a
// company's category history (GetCompanyHistory) and its record trace where the
// server has GetRecordTrace.

import { $, h, replace, show, status, svg } from "./dom.js";
import { lang, msg, onLang, say, t, tOr } from "./i18n.js";
import * as f from "./format.js";
import { Code, asConnectError, isCanceled } from "./api.js";

// Plot area inside the 440×300 viewBox.
const X0 = 52;
const X1 = 424;
const Y0 = 262;
const Y1 = 16;
const MAX_POINTS = 800;
const COMPANY_PAGE = 1000;
const PAGES_PER_SEARCH = 5;
const MAX_RESULTS = 25;

let s = null;
let loaded = false;
let report = null;
let search = null; // {q, cls, token, scanned, found, exact}
let company = null; // {res, trace: {state, text}}

export function init() {
  $("abc-shift-approve").addEventListener("click", () => resolveShift("APPROVE"));
  $("abc-shift-reject").addEventListener("click", () => resolveShift("DISCARD"));
  $("company-form").addEventListener("submit", (e) => {
    e.preventDefault();
    startSearch();
  });
  $("company-more").addEventListener("click", () => continueSearch());
  onLang(() => {
    if (!s) return;
    if (report) drawReport();
    drawResults();
    if (company) drawCompany();
  });
}

export function start(session) {
  s = session;
  loaded = false;
  report = null;
  search = null;
  company = null;
  status($("abc-status"), "");
  show($("abc-shift"), false);
  clearChart();
  replace($("abc-counts").tBodies[0]);
  replace($("abc-summary"));
  replace($("company-results"));
  status($("company-status"), "");
  show($("company-more"), false);
  show($("company-detail"), false);
}

/** Called when the tab is shown: loads the report the first time. */
export function shown() {
  if (!s || loaded) return;
  loaded = true;
  loadReport();
}

async function loadReport() {
  const sess = s;
  status($("abc-status"), msg("loading"), "busy");
  try {
    report = await sess.api.client.getAbcReport({ tenantId: sess.tenant }, { signal: sess.signal });
  } catch (err) {
    if (sess !== s || isCanceled(err)) return;
    report = null;
    clearChart();
    replace($("abc-counts").tBodies[0]);
    show($("abc-shift"), false);
    if (asConnectError(err).code === Code.NotFound) status($("abc-status"), msg("abc.none"), "");
    else status($("abc-status"), sess.fail(err), "error");
    return;
  }
  if (sess !== s) return;
  status($("abc-status"), "");
  drawReport();
}

function clearChart() {
  const chart = $("abc-chart");
  for (const el of [...chart.children]) if (el.tagName !== "title" && el.tagName !== "desc") el.remove();
  $("abc-chart-title").textContent = t("abc.title");
  $("abc-chart-desc").textContent = "";
}

const px = (share) => X0 + ((X1 - X0) * share) / 100;
const py = (share) => Y0 - ((Y0 - Y1) * share) / 100;
const num = (v) => {
  const n = Number.parseFloat(v);
  return Number.isFinite(n) ? Math.min(100, Math.max(0, n)) : 0;
};

/** At most MAX_POINTS points of the curve, always keeping the first and last. */
export function thin(points, max = MAX_POINTS) {
  if (points.length <= max) return points;
  const step = (points.length - 1) / (max - 1);
  const out = [];
  for (let i = 0; i < max; i += 1) out.push(points[Math.round(i * step)]);
  return out;
}

function drawReport() {
  const r = report;
  const a = num(r.aThreshold);
  const b = num(r.bThreshold);
  clearChart();
  const chart = $("abc-chart");
  const e = (n) => s.api.enumName("AbcClass", n);
  const byClass = new Map(r.classes.map((c) => [e(c.abcClass), c]));
  // Bands: each class's share of the classified companies, in rank order (A first).
  const counts = ["A", "B", "C"].map((cls) => Number(byClass.get(cls)?.companies ?? 0n));
  const total = counts.reduce((x, y) => x + y, 0);
  const bands = svg("g", { class: "bands" });
  let from = 0;
  ["A", "B", "C"].forEach((cls, i) => {
    if (total === 0 || counts[i] === 0) return;
    const to = i === 2 ? 100 : from + (100 * counts[i]) / total;
    bands.append(
      svg("rect", { x: px(from), y: Y1, width: Math.max(0, px(to) - px(from)), height: Y0 - Y1, class: `band-${cls.toLowerCase()}` }),
      px(to) - px(from) >= 12 ? svg("text", { x: (px(from) + px(to)) / 2, y: Y0 - 8, class: "band-label", text: cls }) : null,
    );
    from = to;
  });
  const grid = svg("g", { class: "grid" });
  for (let v = 0; v <= 100; v += 20) {
    grid.append(
      svg("line", { x1: X0, x2: X1, y1: py(v), y2: py(v) }),
      svg("line", { x1: px(v), x2: px(v), y1: Y0, y2: Y1 }),
      svg("text", { x: X0 - 6, y: py(v) + 4, class: "tick end", text: `${v}%` }),
      svg("text", { x: px(v), y: Y0 + 16, class: "tick mid", text: `${v}%` }),
    );
  }
  const thresholds = svg(
    "g",
    { class: "thresholds" },
    svg("line", { x1: X0, x2: X1, y1: py(a), y2: py(a), class: "th-a" }),
    svg("text", { x: X1 - 4, y: py(a) + 12, class: "tick end", text: t("abc.limit", { cls: "A", v: f.formatDecimalString(r.aThreshold, lang()) }) }),
    svg("line", { x1: X0, x2: X1, y1: py(b), y2: py(b), class: "th-b" }),
    svg("text", { x: X1 - 4, y: py(b) + 12, class: "tick end", text: t("abc.limit", { cls: "B", v: f.formatDecimalString(r.bThreshold, lang()) }) }),
  );
  const pts = [{ x: 0, y: 0 }, ...thin(r.curve).map((p) => ({ x: num(p.companyShare), y: num(p.revenueShare) }))];
  const curve = svg("polyline", {
    id: "abc-curve",
    class: "curve",
    points: pts.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(" "),
  });
  const axes = svg(
    "g",
    { class: "axes" },
    svg("line", { x1: X0, x2: X1, y1: Y0, y2: Y0 }),
    svg("line", { x1: X0, x2: X0, y1: Y0, y2: Y1 }),
    svg("text", { x: (X0 + X1) / 2, y: Y0 + 34, class: "label mid", text: t("abc.x_axis") }),
    svg("text", { x: 14, y: (Y0 + Y1) / 2, class: "label mid", transform: `rotate(-90 14 ${(Y0 + Y1) / 2})`, text: t("abc.y_axis") }),
  );
  chart.append(bands, grid, thresholds, axes, curve);
  $("abc-chart-title").textContent = t("abc.chart_title");

  const rows = ["A", "B", "C"].map((cls) => {
    const c = byClass.get(cls);
    return h(
      "tr",
      {},
      h("th", { scope: "row" }, h("span", { class: `badge cls-${cls.toLowerCase()}`, text: cls })),
      h("td", { class: "num", dataset: { class: cls }, text: String(c ? c.companies : 0n) }),
      h("td", { class: "num", text: c ? f.formatDecimalString(c.revenue, lang()) : "0" }),
      h("td", { class: "num", text: c ? `${f.formatDecimalString(c.revenueShare, lang())}%` : "0%" }),
    );
  });
  rows.push(
    h(
      "tr",
      {},
      h("th", { scope: "row", text: t("abc.no_class") }),
      h("td", { class: "num", dataset: { class: "none" }, text: String(r.companiesWithoutClass) }),
      h("td", { class: "num", text: "—" }),
      h("td", { class: "num", text: "—" }),
    ),
  );
  replace($("abc-counts").tBodies[0], rows);
  const count = (cls) => String(byClass.get(cls)?.companies ?? 0n);
  $("abc-chart-desc").textContent = t("abc.chart_desc", { a: count("A"), b: count("B"), c: count("C"), n: r.curve.length });

  const computed = f.tsDate(r.computedAt);
  replace(
    $("abc-summary"),
    t("abc.summary", {
      basis: t(r.basis === "order" ? "abc.basis_order" : "abc.basis_invoice"),
      from: f.formatCivil(r.windowFrom, lang()),
      to: f.formatCivil(r.windowTo, lang()),
      a: f.formatDecimalString(r.aThreshold, lang()),
      b: f.formatDecimalString(r.bThreshold, lang()),
      companies: f.formatInt(r.companies, lang()),
      when: computed ? f.formatDateTime(computed, s.tz(), lang()) : "—",
      changed: f.formatInt(r.companiesChanged, lang()),
      compared: f.formatInt(r.companiesCompared, lang()),
    }),
  );

  const held = r.heldRunId !== "";
  show($("abc-shift"), held);
  if (held) {
    const guard = s.overview()?.abc?.shiftGuardPercent;
    $("abc-shift-text").textContent = t("abc.shift_text", { run: r.heldRunId, percent: guard ? f.formatDecimalString(guard, lang()) : "30" });
  }
}

async function resolveShift(action) {
  const sess = s;
  if (!report?.heldRunId) return;
  for (const id of ["abc-shift-approve", "abc-shift-reject"]) $(id).disabled = true;
  status($("abc-shift-status"), msg("working"), "busy");
  try {
    const res = await sess.api.client.resolveAbcShift(
      { tenantId: sess.tenant, runId: report.heldRunId, action: sess.api.enumValue("ResolveAction", action) },
      { signal: sess.signal },
    );
    const done = action === "APPROVE" ? msg("abc.shift_approved", { n: f.formatInt(res.companiesChanged, lang()) }) : msg("abc.shift_rejected");
    status($("abc-shift-status"), "");
    await loadReport();
    status($("abc-status"), done, "ok");
    sess.refreshOverview();
  } catch (err) {
    if (!isCanceled(err)) status($("abc-shift-status"), sess.fail(err), "error");
  } finally {
    for (const id of ["abc-shift-approve", "abc-shift-reject"]) $(id).disabled = false;
  }
}

// ---- company search ----
// ListCompanies filters by class, lifecycle and portfolio, not by name: the page walks
// its pages (of the chosen class) and keeps the companies whose name, document or
// external id contains the text, a few pages per click.

function startSearch() {
  const q = $("company-search").value.trim();
  search = { q, needle: q.toLowerCase(), cls: $("company-class").value, token: "", done: false, scanned: 0, found: [], exact: null };
  company = null;
  show($("company-detail"), false);
  drawResults();
  if (q) findExact(search);
  continueSearch();
}

/** An external id typed as is finds its company at once (GetCompanyHistory). */
async function findExact(me) {
  try {
    const res = await s.api.client.getCompanyHistory({ tenantId: s.tenant, externalId: me.q }, { signal: s.signal });
    if (search !== me || !res.company) return;
    me.exact = res.company;
    me.found = me.found.filter((c) => c.externalId !== res.company.externalId);
    drawResults();
  } catch {
    // Not an external id: the scan answers.
  }
}

function matches(c, needle) {
  if (!needle) return true;
  const digits = needle.replace(/\D/g, "");
  return (
    c.name.toLowerCase().includes(needle) ||
    c.externalId.toLowerCase().includes(needle) ||
    c.document.toLowerCase().includes(needle) ||
    (digits.length >= 3 && c.document.replace(/\D/g, "").includes(digits))
  );
}

async function continueSearch() {
  const me = search;
  if (!me || me.done) return;
  const sess = s;
  const go = $("company-go");
  const more = $("company-more");
  go.disabled = true;
  more.disabled = true;
  status($("company-status"), msg("co.searching"), "busy");
  // Without text every company matches: a page of MAX_RESULTS at a time.
  const req = { tenantId: sess.tenant, pageSize: me.needle ? COMPANY_PAGE : MAX_RESULTS };
  if (me.cls === "none") req.withoutAbcClass = true;
  else if (me.cls) req.abcClass = sess.api.enumValue("AbcClass", me.cls);
  try {
    const wanted = me.found.length + MAX_RESULTS;
    for (let page = 0; page < PAGES_PER_SEARCH && me.found.length < wanted; page += 1) {
      const res = await sess.api.client.listCompanies({ ...req, pageToken: me.token }, { signal: sess.signal });
      if (search !== me) return;
      me.scanned += res.companies.length;
      for (const c of res.companies) if (matches(c, me.needle) && c.externalId !== me.exact?.externalId) me.found.push(c);
      me.token = res.nextPageToken;
      if (!me.token) {
        me.done = true;
        break;
      }
    }
    drawResults();
  } catch (err) {
    if (search === me && !isCanceled(err)) status($("company-status"), sess.fail(err), "error");
  } finally {
    go.disabled = false;
    more.disabled = false;
  }
}

const lifeLabel = (v) => tOr(`life.${v}`, v);

function companyLine(c) {
  const e = (n) => s.api.enumName("AbcClass", n);
  const cls = e(c.abcClass);
  const life = s.api.enumName("Lifecycle", c.lifecycle);
  return [c.name || c.externalId, c.document, cls === "UNSPECIFIED" ? t("abc.no_class") : t("co.class_n", { cls }), tOr(`life.${life}`, life)].filter(Boolean).join(" · ");
}

function drawResults() {
  if (!search) {
    replace($("company-results"));
    show($("company-more"), false);
    return;
  }
  const list = search.exact ? [search.exact, ...search.found] : search.found;
  replace(
    $("company-results"),
    list.map((c) =>
      h(
        "li",
        { dataset: { companyId: c.externalId } },
        h("button", { type: "button", class: "result", on: { click: () => openCompany(c.externalId) } }, h("span", { class: "id", text: c.externalId }), " ", companyLine(c)),
      ),
    ),
  );
  show($("company-more"), !search.done);
  const n = (v) => f.formatInt(v, lang());
  const line = list.length > 0 ? msg("co.found", { n: n(list.length), scanned: n(search.scanned) }) : search.done ? msg("co.none_found") : msg("co.none_yet", { n: n(search.scanned) });
  status($("company-status"), line, "");
}

async function openCompany(externalId) {
  const sess = s;
  show($("company-detail"), true);
  replace($("company-detail-title"), externalId);
  replace($("company-current"), t("loading"));
  replace($("company-history").tBodies[0]);
  replace($("record-trace"));
  try {
    const res = await sess.api.client.getCompanyHistory({ tenantId: sess.tenant, externalId }, { signal: sess.signal });
    if (sess !== s) return;
    company = { externalId, res, trace: { state: "loading" } };
    drawCompany();
    $("company-detail-title").focus();
    loadTrace(company);
  } catch (err) {
    if (!isCanceled(err)) replace($("company-current"), say(sess.fail(err)));
  }
}

function drawCompany() {
  const { res, externalId } = company;
  const c = res.company;
  const e = (en, n) => s.api.enumName(en, n);
  replace($("company-detail-title"), c ? `${c.name || externalId} (${externalId})` : externalId);
  if (c) {
    const parts = [
      t("co.current", {
        cls: e("AbcClass", c.abcClass) === "UNSPECIFIED" ? t("abc.no_class") : e("AbcClass", c.abcClass),
        life: lifeLabel(e("Lifecycle", c.lifecycle)),
        portfolio: c.portfolio === "unassigned" ? t("co.unassigned") : c.portfolio,
        revenue: f.formatDecimalString(c.revenue, lang()),
      }),
    ];
    if (c.firstPurchase) parts.push(t("co.purchases", { first: f.formatCivil(c.firstPurchase, lang()), last: f.formatCivil(c.lastPurchase, lang()) }));
    replace($("company-current"), parts.join(" "));
  } else {
    replace($("company-current"), t("co.not_categorized"));
  }
  const cls = (n) => {
    const v = e("AbcClass", n);
    return v === "UNSPECIFIED" ? "—" : v;
  };
  const life = (n) => {
    const v = e("Lifecycle", n);
    return v === "UNSPECIFIED" ? "—" : lifeLabel(v);
  };
  replace(
    $("company-history").tBodies[0],
    res.changes.length === 0
      ? [h("tr", {}, h("td", { colspan: 4, class: "muted", text: t("co.no_changes") }))]
      : res.changes.map((ch) =>
          h(
            "tr",
            { dataset: { runId: ch.runId } },
            h("td", { text: f.formatCivil(ch.date, lang()) }),
            h("td", { text: ch.abcFrom === ch.abcTo ? cls(ch.abcTo) : `${cls(ch.abcFrom)} → ${cls(ch.abcTo)}` }),
            h("td", { text: ch.lifecycleFrom === ch.lifecycleTo ? life(ch.lifecycleTo) : `${life(ch.lifecycleFrom)} → ${life(ch.lifecycleTo)}` }),
            h("td", { class: "mono", text: ch.runId }),
          ),
        ),
  );
  drawTrace();
}

// GetRecordTrace: the company's story (requests that carried it, accepted or rejected; runs
// that held, delivered or deleted it), newest first, with what is staged and in the CRM
// now. A server whose descriptor set lacks the method (an older erpsync) gets
// "unavailable"; the call is made with the fields its request has among tenant_id /
// table / external_id.
async function loadTrace(me) {
  const sess = s;
  const method = sess.api.service.methods.find((m) => m.name === "GetRecordTrace");
  if (!method || method.methodKind !== "unary") {
    me.trace = { state: "unavailable" };
    drawTrace();
    return;
  }
  const init = {};
  for (const fd of method.input.fields) {
    if (fd.name === "tenant_id") init[fd.localName] = sess.tenant;
    if (fd.name === "table") init[fd.localName] = "company";
    if (fd.name === "external_id" || fd.name === "record_id") init[fd.localName] = me.externalId;
  }
  try {
    const res = await sess.api.client[method.localName](init, { signal: sess.signal });
    me.trace = { state: "ok", res, text: JSON.stringify(res, traceReplacer, 2) };
  } catch (err) {
    if (isCanceled(err)) return;
    me.trace = asConnectError(err).code === Code.Unimplemented ? { state: "unavailable" } : { state: "error", text: sess.fail(err) };
  }
  if (company === me) drawTrace();
}

function traceReplacer(key, value) {
  if (key === "$typeName") return undefined;
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Uint8Array) return `(${value.byteLength} bytes)`;
  return value;
}

/** A JSON value (a Struct or Value field) on one line; "" when unset. */
function oneLine(v) {
  return v === undefined || v === null ? "" : JSON.stringify(v, traceReplacer);
}

/** One event of the trace as a table row: when, what, from where, details. */
function traceRow(ev) {
  const kind = s.api.enumName("TraceEventKind", ev.kind);
  const when = f.formatDateTime(f.tsDate(ev.at), s.tz(), lang(), { seconds: true });
  const from = ev.runId ? t("trace.by_run", { id: ev.runId, stage: ev.stage }) : t("trace.by_request", { id: ev.requestId, transport: ev.transport || t("trace.not_logged") });
  const details = [];
  if (kind === "REJECTED") details.push(`${ev.field || t("trace.record")}: ${ev.reason}`);
  if (kind === "HELD") details.push(ev.reason);
  if (ev.sinkAnswer) details.push(t("trace.sink", { answer: ev.sinkAnswer, key: ev.idempotencyKey }));
  if (ev.contentHash) details.push(t("trace.version", { hash: ev.contentHash.slice(0, 8) }));
  const sent = oneLine(ev.record);
  return h(
    "tr",
    { dataset: { kind } },
    h("td", { text: when }),
    h("td", { class: `trace-kind trace-${kind.toLowerCase()}`, text: tOr(`trace.kind.${kind}`, kind) }),
    h("td", { class: "mono", text: from }),
    h("td", {}, details.join(" · "), sent ? h("div", { class: "mono muted", text: t("trace.sent", { record: sent }) }) : ""),
  );
}

/** What is staged and what the CRM holds now, a paragraph each. */
function traceNow(res) {
  const out = [];
  const st = res.staged;
  if (st) {
    const state = st.deleted ? t("trace.staged_deleted") : st.delivered ? t("trace.staged_delivered") : t("trace.staged_waiting");
    out.push(h("p", {}, t("trace.staged", { hash: st.contentHash.slice(0, 8), state }), " ", h("span", { class: "mono", text: oneLine(st.fields) })));
  } else {
    out.push(h("p", { class: "muted", text: t("trace.never_staged") }));
  }
  const crm = res.crm;
  if (crm) {
    out.push(
      crm.present
        ? h("p", {}, t("trace.crm", { sink: crm.sink }), " ", h("span", { class: "mono", text: oneLine(crm.fields) }))
        : h("p", { class: "muted", text: t("trace.crm_absent", { sink: crm.sink }) }),
    );
  }
  return out;
}

function drawTrace() {
  const tr = company?.trace;
  const el = $("record-trace");
  el.dataset.state = tr?.state ?? "";
  if (!tr || tr.state === "loading") replace(el, h("p", { class: "muted", text: t("loading") }));
  else if (tr.state === "unavailable") replace(el, h("p", { class: "muted", text: t("trace.unavailable") }));
  else if (tr.state === "error") replace(el, h("p", { class: "error-text", text: say(tr.text) }));
  else if (!Array.isArray(tr.res?.events)) replace(el, h("pre", { class: "trace", text: tr.text }));
  else {
    const rows = tr.res.events.map(traceRow);
    replace(
      el,
      ...traceNow(tr.res),
      h(
        "table",
        { class: "trace-events" },
        h("thead", {}, h("tr", {}, h("th", { text: t("trace.when") }), h("th", { text: t("trace.what") }), h("th", { text: t("trace.who") }), h("th", { text: t("trace.details") }))),
        h("tbody", {}, ...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 4, class: "muted", text: t("trace.no_events") }))])),
      ),
      tr.res.nextPageToken ? h("p", { class: "muted", text: t("trace.more") }) : "",
    );
  }
}

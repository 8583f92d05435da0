// The Dados ERP page: sign-in (form, URL fragment or the embedding host's postMessage),
// the session every view shares, errors that concern the whole page, the tabs.

import { $, show, status } from "./dom.js";
import { initLang, msg, setLang, t, tOr } from "./i18n.js";
import * as auth from "./auth.js";
import { Code, asConnectError, connect, isCanceled, loadDescriptors } from "./api.js";
import { setupTabs } from "./tabs.js";
import * as overview from "./overview.js";
import * as run from "./run.js";
import * as history from "./history.js";
import * as abc from "./abc.js";

const DEFAULT_TZ = "America/Sao_Paulo";

// The descriptor set is needed before the first call: start fetching it now.
performance.mark("erpsync:script-start");
loadDescriptors().catch(() => {});

let session = null;

/** "PermissionDenied" → "PERMISSION_DENIED", as gRPC names its codes. */
function codeName(code) {
  return (Code[code] ?? String(code)).replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** A message (msg()) for people about a failed call (no side effects). */
function describe(err) {
  const ce = asConnectError(err);
  switch (ce.code) {
    case Code.Unauthenticated:
      return msg("err.unauthenticated");
    case Code.PermissionDenied:
      return msg("err.permission_denied", { tenant: session?.tenant ?? "" });
    case Code.Unavailable:
      return msg("err.unavailable");
    case Code.DeadlineExceeded:
      return msg("err.deadline");
    default:
      return msg("err.other", { code: codeName(ce.code), message: ce.rawMessage });
  }
}

/**
 * Reports a failed call: UNAUTHENTICATED / PERMISSION_DENIED end the session (the page
 * asks for another token in #auth-error); UNAVAILABLE shows in the page's status line.
 * Returns the message (msg()) for the place that made the call.
 */
function fail(err) {
  if (isCanceled(err)) return "";
  const ce = asConnectError(err);
  const message = describe(ce);
  if (ce.code === Code.Unauthenticated || ce.code === Code.PermissionDenied) {
    const tenant = session?.tenant ?? "";
    stop();
    auth.clear();
    const box = $("auth-error");
    status(box, msg("err.banner", { message, code: codeName(ce.code) }), "");
    show(box, true);
    showLogin(tenant);
  } else if (ce.code === Code.Unavailable) {
    status($("app-status"), message, "error");
    show($("app-status"), true);
  }
  return message;
}

function showLogin(tenant = "") {
  show($("app"), false);
  show($("logout"), false);
  show($("session-tenant"), false);
  show($("login"), true);
  if (tenant) $("login-tenant").value = tenant;
  $("login-token").value = "";
  (tenant ? $("login-token") : $("login-tenant")).focus();
}

function stop() {
  if (session) session.abort.abort();
  session = null;
}

/** Starts a session with `creds` ({tenant, token}); every view loads for it. */
async function start(creds) {
  stop();
  auth.save(creds);
  if (creds.lang) setLang(creds.lang);
  show($("auth-error"), false);
  show($("app-status"), false);
  show($("login"), false);
  status($("login-error"), "");
  show($("app"), true);
  show($("logout"), true);
  const who = $("session-tenant");
  status(who, msg("session.tenant", { tenant: creds.tenant }));
  show(who, true);

  const abort = new AbortController();
  let ov = null;
  let tables = null;
  const me = {
    tenant: creds.tenant,
    abort,
    signal: abort.signal,
    api: null,
    fail,
    describe,
    tz: () => ov?.timezone || DEFAULT_TZ,
    overview: () => ov,
    setOverview: (o) => {
      ov = o;
    },
    /** The table catalog (ListTables), fetched once per session. */
    tables: () => {
      tables ??= me.api.client.listTables({}, { signal: me.signal }).then((r) => r.tables);
      tables.catch(() => {
        tables = null;
      });
      return tables;
    },
    tableInfo: new Map(),
    tableLabel: (id) => tOr(`table.${id}`, me.tableInfo.get(id)?.label || id),
    tableDescription: (id) => tOr(`table_desc.${id}`, me.tableInfo.get(id)?.description ?? ""),
    refreshOverview: () => overview.refresh(),
    /** A call went through: an "unavailable" banner is out of date. */
    reachable: () => show($("app-status"), false),
    goTo: (panel) => tabs.select(panel),
  };
  session = me;
  try {
    me.api = await connect(creds);
  } catch (err) {
    if (session !== me) return;
    status($("app-status"), msg("err.descriptors", { error: String(err?.message ?? err) }), "error");
    show($("app-status"), true);
    return;
  }
  if (session !== me) return;
  overview.start(me);
  history.start(me);
  abc.start(me);
  // The catalog names tables in the run detail and the Histórico checkboxes.
  me.tables()
    .then((list) => {
      for (const tb of list) me.tableInfo.set(tb.id, tb);
    })
    .catch(() => {});
  shownPanel(tabs.current());
}

function shownPanel(panel) {
  if (!session?.api) return;
  if (panel === "panel-historico") history.shown();
  if (panel === "panel-abc") abc.shown();
}

initLang($("lang"));
const tabs = setupTabs(document.querySelector('[role="tablist"]'), shownPanel);
overview.init();
run.init();
history.init();
abc.init();

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  const tenant = $("login-tenant").value.trim();
  const token = $("login-token").value.trim();
  if (!tenant || !token) {
    status($("login-error"), msg("login.missing"), "error");
    (tenant ? $("login-token") : $("login-tenant")).focus();
    return;
  }
  start({ tenant, token });
});

$("logout").addEventListener("click", () => {
  const tenant = session?.tenant ?? "";
  stop();
  auth.clear();
  show($("auth-error"), false);
  showLogin(tenant);
});

auth.listenToHost((creds) => start(creds));

const initial = auth.fromFragment() ?? auth.stored();
if (initial) start(initial);
else showLogin();

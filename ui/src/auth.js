// Where the page's credentials come from: the login form, the URL fragment
// (#tenant=ID&token=TOKEN, cleared at once) or a postMessage from the embedding host
// ({type: "erpsync-auth", tenant, token}). They are kept in sessionStorage only (gone
// when the tab closes) and never put in a query string, a cookie or localStorage.

const KEY = "erpsync.auth";

/** The credentials of this tab's session, or null. */
export function stored() {
  try {
    const v = JSON.parse(sessionStorage.getItem(KEY) ?? "null");
    return valid(v) ? { tenant: v.tenant, token: v.token } : null;
  } catch {
    return null;
  }
}

export function save(creds) {
  sessionStorage.setItem(KEY, JSON.stringify({ tenant: creds.tenant, token: creds.token }));
}

export function clear() {
  sessionStorage.removeItem(KEY);
}

function valid(v) {
  return (
    v !== null &&
    typeof v === "object" &&
    typeof v.tenant === "string" &&
    typeof v.token === "string" &&
    v.tenant.trim() !== "" &&
    v.token.trim() !== ""
  );
}

/**
 * Reads #tenant=…&token=…(&lang=…) from the URL and removes the fragment from the
 * address bar and the history entry, so the token is not left on screen or in history.
 */
export function fromFragment() {
  const hash = location.hash.startsWith("#") ? location.hash.slice(1) : "";
  if (!hash.includes("token=")) return null;
  const params = new URLSearchParams(hash);
  history.replaceState(history.state, "", location.pathname + location.search);
  const creds = { tenant: (params.get("tenant") ?? "").trim(), token: (params.get("token") ?? "").trim(), lang: params.get("lang") ?? undefined };
  return valid(creds) ? creds : null;
}

/**
 * Listens for the embedding host's {type: "erpsync-auth", tenant, token, lang?}. Only the
 * parent window is listened to (frame-ancestors limits who the parent can be), then
 * `onCreds` receives the credentials. Tells the parent the page is ready to receive them.
 */
export function listenToHost(onCreds) {
  if (window.parent === window) return;
  window.addEventListener("message", (event) => {
    if (event.source !== window.parent) return;
    const data = event.data;
    if (!data || typeof data !== "object" || data.type !== "erpsync-auth") return;
    const creds = { tenant: String(data.tenant ?? "").trim(), token: String(data.token ?? "").trim(), lang: typeof data.lang === "string" ? data.lang : undefined };
    if (valid(creds)) onCreds(creds);
  });
  // Carries no data: the host may wait for it before posting the token.
  window.parent.postMessage({ type: "erpsync-ready" }, "*");
}

// Pure formatting and parsing: no DOM, no network (unit-tested with node --test).

/** A protobuf Timestamp as a Date; null when unset or zero (the epoch is never a real value here). */
export function tsDate(ts) {
  if (!ts) return null;
  const seconds = Number(ts.seconds ?? 0);
  const nanos = ts.nanos ?? 0;
  if (seconds === 0 && nanos === 0) return null;
  return new Date(seconds * 1000 + Math.floor(nanos / 1e6));
}

/** A protobuf Duration in milliseconds; null when unset. */
export function durationMs(d) {
  if (!d) return null;
  return Number(d.seconds ?? 0) * 1000 + Math.round((d.nanos ?? 0) / 1e6);
}

/** Milliseconds as a protobuf Duration init ({seconds: bigint, nanos}). */
export function msDuration(ms) {
  const whole = Math.floor(ms / 1000);
  return { seconds: BigInt(whole), nanos: Math.round((ms - whole * 1000) * 1e6) };
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

/** The wall-clock parts of `date` in the IANA zone `tz`. */
export function zonedParts(date, tz) {
  const fmt = new Intl.DateTimeFormat("en-US", {
    timeZone: tz || "UTC",
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
  const out = {};
  for (const p of fmt.formatToParts(date)) if (p.type !== "literal") out[p.type] = Number(p.value);
  return out;
}

/**
 * A date and time in the tenant's zone: "29/11/2026 00:00" (pt-BR) or "2026-11-29 00:00"
 * (en, ISO order so it reads the same everywhere); with seconds when asked.
 */
export function formatDateTime(date, tz, lang, { seconds = false } = {}) {
  if (!date) return "";
  const p = zonedParts(date, tz);
  const day = lang === "en" ? `${p.year}-${pad(p.month)}-${pad(p.day)}` : `${pad(p.day)}/${pad(p.month)}/${p.year}`;
  const time = `${pad(p.hour)}:${pad(p.minute)}${seconds ? `:${pad(p.second)}` : ""}`;
  return `${day} ${time}`;
}

/** The time of day only ("14:03:07"), for log lines. */
export function formatTime(date, tz) {
  if (!date) return "";
  const p = zonedParts(date, tz);
  return `${pad(p.hour)}:${pad(p.minute)}:${pad(p.second)}`;
}

/** A civil date "YYYY-MM-DD" shown as "dd/mm/aaaa" (pt-BR) or kept (en). */
export function formatCivil(iso, lang) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso ?? "");
  if (!m) return iso ?? "";
  return lang === "en" ? iso : `${m[3]}/${m[2]}/${m[1]}`;
}

/** A duration in ms for people: "850 ms", "12s", "49m", "1h 05m", "2d 03h". */
export function formatDuration(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.round(s / 60);
  if (s < 3600) return `${m}m`;
  const h = Math.floor(s / 3600);
  const mm = Math.round((s % 3600) / 60);
  if (h < 48) return mm === 60 ? `${h + 1}h 00m` : `${h}h ${pad(mm)}m`;
  const d = Math.floor(h / 24);
  return `${d}d ${pad(h % 24)}h`;
}

/** A stage's duration with a decimal, since stages are often under a second: "0.42 s". */
export function formatSeconds(ms, lang) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1000 || ms >= 60_000) return formatDuration(ms);
  const digits = ms < 10_000 ? 2 : 1;
  return `${formatDecimal(ms / 1000, lang, digits)} s`;
}

function locale(lang) {
  return lang === "en" ? "en-US" : "pt-BR";
}

/** An integer (number or bigint) with the language's grouping: 1.234.567 / 1,234,567. */
export function formatInt(n, lang) {
  return new Intl.NumberFormat(locale(lang), { maximumFractionDigits: 0 }).format(n ?? 0);
}

/** A number with up to `digits` decimals in the language's style. */
export function formatDecimal(n, lang, digits = 1) {
  return new Intl.NumberFormat(locale(lang), { maximumFractionDigits: digits }).format(n);
}

/** A decimal string from the server ("80.12") shown in the language's style, kept exact. */
export function formatDecimalString(s, lang) {
  if (!/^-?\d+(\.\d+)?$/.test(s ?? "")) return s ?? "";
  const [int, frac] = s.split(".");
  const neg = int.startsWith("-");
  const grouped = formatInt(BigInt(neg ? int.slice(1) : int), lang);
  const sep = lang === "en" ? "." : ",";
  return `${neg ? "-" : ""}${grouped}${frac ? sep + frac : ""}`;
}

/** Bytes as "11 MB" (powers of 1024, like the seed's screen). */
export function formatBytes(n, lang) {
  let v = Number(n ?? 0);
  const units = ["B", "KB", "MB", "GB", "TB"];
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return `${formatDecimal(v, lang, v < 10 && u > 0 ? 1 : 0)} ${units[u]}`;
}

/** Hours as the form shows them: 24 → "24", 1.5 → "1,5" (pt-BR). */
export function formatHours(ms, lang) {
  if (ms === null || ms === undefined) return "";
  return formatDecimal(ms / 3_600_000, lang, 4).replace(/\s/g, "");
}

/** Parses hours typed in the form ("24", "1,5", "0.25"); null when not a number. */
export function parseHours(text) {
  const t = (text ?? "").trim().replace(",", ".");
  if (!/^\d+(\.\d+)?$/.test(t)) return null;
  return Number(t);
}

/** The daily times typed in the form: "00:00, 12:30" → ["00:00", "12:30"] (checked by the server). */
export function parseDailyTimes(text) {
  return (text ?? "")
    .split(/[,;\s]+/)
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** "dd/mm/aaaa" → "YYYY-MM-DD"; null when the text is not a real calendar date. */
export function parseBrDate(text) {
  const m = /^(\d{1,2})\/(\d{1,2})\/(\d{4})$/.exec((text ?? "").trim());
  if (!m) return null;
  const [d, mo, y] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const probe = new Date(Date.UTC(y, mo - 1, d));
  if (probe.getUTCFullYear() !== y || probe.getUTCMonth() !== mo - 1 || probe.getUTCDate() !== d) return null;
  return `${y}-${pad(mo)}-${pad(d)}`;
}

/** "YYYY-MM-DD" → "dd/mm/aaaa". */
export function isoToBr(iso) {
  const [y, m, d] = iso.split("-");
  return `${d}/${m}/${y}`;
}

/** Today's civil date "YYYY-MM-DD" in the zone `tz`. */
export function todayIn(tz, now = new Date()) {
  const p = zonedParts(now, tz);
  return `${p.year}-${pad(p.month)}-${pad(p.day)}`;
}

/** A civil date moved by `days`. */
export function addDays(iso, days) {
  const [y, m, d] = iso.split("-").map(Number);
  const t = new Date(Date.UTC(y, m - 1, d + days));
  return `${t.getUTCFullYear()}-${pad(t.getUTCMonth() + 1)}-${pad(t.getUTCDate())}`;
}

/** Days from `from` to `to`, both included. */
export function spanDays(from, to) {
  const ms = Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`);
  return Math.round(ms / 86_400_000) + 1;
}

/** The longest export range, in days (the server's rule; the page explains it before submitting). */
export const MAX_EXPORT_DAYS = 7;

/**
 * Checks the Histórico period as typed. Returns {from, to} ("YYYY-MM-DD") or
 * {error, field, vars} where error is a dictionary key.
 */
export function checkPeriod(fromText, toText, today) {
  const from = parseBrDate(fromText);
  const to = parseBrDate(toText);
  if (!from) return { error: "period.err_format", field: "from" };
  if (!to) return { error: "period.err_format", field: "to" };
  if (to < from) return { error: "period.err_order", field: "to" };
  if (to > today) return { error: "period.err_future", field: "to", vars: { today: isoToBr(today) } };
  const days = spanDays(from, to);
  if (days > MAX_EXPORT_DAYS) return { error: "period.err_long", field: "from", vars: { days, max: MAX_EXPORT_DAYS } };
  return { from, to };
}

/** An enum value's name without its enum's prefix: (Health, 5) → "NEVER_RUN". */
export function enumSuffix(enumDesc, number) {
  const v = enumDesc?.values.find((x) => x.number === number);
  if (!v) return String(number);
  const prefix = enumDesc.sharedPrefix ? enumDesc.sharedPrefix.toUpperCase() : "";
  return prefix && v.name.startsWith(prefix) ? v.name.slice(prefix.length) : v.name;
}

/** The file name of a Histórico download. */
export function exportFileName(tenant, from, to) {
  const safe = String(tenant).replace(/[^A-Za-z0-9._-]+/g, "_");
  return `erpsync-historico-${safe}-${from}-${to}.xlsx`;
}

// Unit tests of the page's pure helpers: node --test ui/test/ (no browser needed).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as f from "../src/format.js";

test("an unset or zero timestamp is no date, never the epoch", () => {
  assert.equal(f.tsDate(undefined), null);
  assert.equal(f.tsDate({ seconds: 0n, nanos: 0 }), null);
  assert.equal(f.tsDate({ seconds: 1764385200n, nanos: 0 }).toISOString(), "2025-11-29T03:00:00.000Z");
});

test("date and time are shown in the tenant's zone", () => {
  const d = new Date("2026-11-29T03:00:00Z");
  assert.equal(f.formatDateTime(d, "America/Sao_Paulo", "pt-BR"), "29/11/2026 00:00");
  assert.equal(f.formatDateTime(d, "America/Sao_Paulo", "en"), "2026-11-29 00:00");
  assert.equal(f.formatDateTime(d, "UTC", "pt-BR", { seconds: true }), "29/11/2026 03:00:00");
  assert.equal(f.formatDateTime(null, "UTC", "pt-BR"), "");
});

test("durations read like the seed's screen", () => {
  assert.equal(f.formatDuration(f.durationMs({ seconds: 2940n, nanos: 0 })), "49m");
  assert.equal(f.formatDuration(850), "850 ms");
  assert.equal(f.formatDuration(12_000), "12s");
  assert.equal(f.formatDuration(3_900_000), "1h 05m");
  assert.equal(f.formatDuration(3 * 86_400_000 + 3_600_000), "3d 01h");
  assert.equal(f.durationMs(undefined), null);
  assert.deepEqual(f.msDuration(86_400_000), { seconds: 86400n, nanos: 0 });
  assert.deepEqual(f.msDuration(1500), { seconds: 1n, nanos: 500_000_000 });
});

test("sizes and numbers follow the language", () => {
  assert.equal(f.formatBytes(11n * 1024n * 1024n, "pt-BR"), "11 MB");
  assert.equal(f.formatBytes(1536n, "pt-BR"), "1,5 KB");
  assert.equal(f.formatBytes(0n, "en"), "0 B");
  assert.equal(f.formatInt(1234567n, "pt-BR"), "1.234.567");
  assert.equal(f.formatDecimalString("1234567.50", "pt-BR"), "1.234.567,50");
  assert.equal(f.formatDecimalString("80.12", "en"), "80.12");
});

test("hours and daily times are parsed as typed", () => {
  assert.equal(f.parseHours("24"), 24);
  assert.equal(f.parseHours("1,5"), 1.5);
  assert.equal(f.parseHours("abc"), null);
  assert.equal(f.parseHours(""), null);
  assert.equal(f.formatHours(86_400_000, "pt-BR"), "24");
  assert.equal(f.formatHours(5_400_000, "pt-BR"), "1,5");
  assert.deepEqual(f.parseDailyTimes(" 00:00, 12:30 ,"), ["00:00", "12:30"]);
  assert.deepEqual(f.parseDailyTimes("25:00"), ["25:00"]);
});

test("the Histórico period: dd/mm/aaaa, in order, not in the future, at most 7 days", () => {
  const today = "2026-11-29";
  assert.deepEqual(f.checkPeriod("23/11/2026", "29/11/2026", today), { from: "2026-11-23", to: "2026-11-29" });
  assert.equal(f.checkPeriod("22/11/2026", "29/11/2026", today).error, "period.err_long");
  assert.equal(f.checkPeriod("31/02/2026", "29/11/2026", today).error, "period.err_format");
  assert.equal(f.checkPeriod("2026-11-23", "29/11/2026", today).error, "period.err_format");
  assert.equal(f.checkPeriod("29/11/2026", "28/11/2026", today).error, "period.err_order");
  assert.equal(f.checkPeriod("29/11/2026", "30/11/2026", today).error, "period.err_future");
  assert.equal(f.parseBrDate("1/2/2026"), "2026-02-01");
  assert.equal(f.addDays("2026-03-01", -1), "2026-02-28");
  assert.equal(f.spanDays("2026-11-23", "2026-11-29"), 7);
  assert.equal(f.todayIn("America/Sao_Paulo", new Date("2026-11-30T02:59:00Z")), "2026-11-29");
});

test("file names are safe", () => {
  assert.equal(f.exportFileName("acme", "2026-11-23", "2026-11-29"), "erpsync-historico-acme-2026-11-23-2026-11-29.xlsx");
  assert.equal(f.exportFileName("a/b c", "x", "y"), "erpsync-historico-a_b_c-x-y.xlsx");
});

// Every key the page uses exists in both languages (node --test ui/test/).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { DICTIONARIES } from "../src/i18n.js";

const here = new URL("..", import.meta.url);
const pt = DICTIONARIES["pt-BR"];
const en = DICTIONARIES.en;

test("both dictionaries have the same keys (English takes the server's table descriptions)", () => {
  assert.deepEqual(Object.keys(pt).filter((k) => !(k in en) && !k.startsWith("table_desc.")), []);
  assert.deepEqual(Object.keys(en).filter((k) => !(k in pt)), []);
});

test("every data-i18n key of index.html is in the dictionary", () => {
  const html = readFileSync(new URL("index.html", here), "utf8");
  const keys = [...html.matchAll(/data-i18n(?:-placeholder)?="([^"]+)"/g)].map((m) => m[1]);
  assert.ok(keys.length > 50);
  assert.deepEqual(keys.filter((k) => !(k in pt)), []);
});

test("every literal key the code passes to t() is in the dictionary", () => {
  const src = new URL("src/", here);
  const missing = [];
  for (const file of readdirSync(src).filter((f) => f !== "i18n.js")) {
    const code = readFileSync(new URL(file, src), "utf8");
    for (const m of code.matchAll(/\bt\(\s*"([^"]+)"/g)) if (!(m[1] in pt)) missing.push(`${file}: ${m[1]}`);
    // Keys chosen in a ternary or passed around: "area.key" literals of the dictionary's areas.
    for (const m of code.matchAll(/"((?:abc|alert|co|del|err|export|hist|period|run|runs|sch|sync|trace|login|session)\.[a-z_]+)"/g))
      if (!(m[1] in pt)) missing.push(`${file}: ${m[1]}`);
  }
  assert.deepEqual(missing, []);
});

test("placeholders are the same in both languages", () => {
  const vars = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
  const differ = Object.keys(pt).filter((k) => k in en && vars(pt[k]).join() !== vars(en[k]).join());
  assert.deepEqual(differ, []);
});

test("the page never builds markup from strings", () => {
  for (const file of readdirSync(new URL("src/", here))) {
    const code = readFileSync(new URL(`src/${file}`, here), "utf8");
    assert.doesNotMatch(code, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function/, file);
    assert.doesNotMatch(code, /\.style\./, `${file}: styles go through classes (CSP style-src 'self')`);
  }
  const html = readFileSync(new URL("index.html", here), "utf8");
  assert.doesNotMatch(html, /\sstyle=|<style|<script>(?!<)|\son[a-z]+=/i);
});

// DOM building from elements and text nodes only: every piece of text from the server (ERP data, log
// lines, messages) goes in through textContent, so it can never become markup.

import { onLang, say } from "./i18n.js";

const SVG_NS = "http://www.w3.org/2000/svg";

/** Finds one element by id; a missing id is a bug in index.html, so it throws. */
export function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from index.html`);
  return el;
}

function fill(el, props, children) {
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") el.textContent = String(value);
    else if (key === "class") el.setAttribute("class", value);
    else if (key === "on") for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** h("td", {class: "num", text: "3"}) or h("li", {}, child, "text", …). */
export function h(tag, props, ...children) {
  return fill(document.createElement(tag), props, children);
}

/** The same for SVG elements (attributes are set as given). */
export function svg(tag, props, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), props, children);
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

/** Shows or hides an element through the hidden attribute (CSS makes it display:none). */
export function show(el, visible) {
  el.hidden = !visible;
}

// Status lines showing a message (msg()) are redrawn when the language changes.
const spoken = new Map();
onLang(() => {
  for (const [el, m] of spoken) el.textContent = say(m);
});

/**
 * Sets a status line to a message (msg(key, vars), redrawn in the language chosen later)
 * or a plain string, with its tone (ok | error | busy | "") set through classes only.
 */
export function status(el, m, tone = "") {
  if (Array.isArray(m)) spoken.set(el, m);
  else spoken.delete(el);
  el.textContent = say(m);
  el.classList.remove("ok", "error", "busy");
  if (tone) el.classList.add(tone);
}

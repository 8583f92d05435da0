// The tab list (WAI-ARIA tabs pattern): one tab in the Tab order, arrows/Home/End move
// between tabs and show their panel, Enter/Space (a button's click) too.

/** Wires the tab list; `onShow(panelId)` runs each time a panel is shown. */
export function setupTabs(tablist, onShow) {
  const tabs = [...tablist.querySelectorAll('[role="tab"]')];

  function select(tab, focus) {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
    }
    if (focus) tab.focus();
    onShow(tab.getAttribute("aria-controls"));
  }

  for (const tab of tabs) {
    tab.addEventListener("click", () => select(tab, false));
    tab.addEventListener("keydown", (e) => {
      const i = tabs.indexOf(tab);
      let next = null;
      if (e.key === "ArrowRight") next = tabs[(i + 1) % tabs.length];
      else if (e.key === "ArrowLeft") next = tabs[(i - 1 + tabs.length) % tabs.length];
      else if (e.key === "Home") next = tabs[0];
      else if (e.key === "End") next = tabs[tabs.length - 1];
      if (next) {
        e.preventDefault();
        select(next, true);
      }
    });
  }
  return {
    /** The id of the panel shown. */
    current: () => tabs.find((t) => t.getAttribute("aria-selected") === "true").getAttribute("aria-controls"),
    select: (panelId) => select(tabs.find((t) => t.getAttribute("aria-controls") === panelId), false),
  };
}

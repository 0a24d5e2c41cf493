() => {
  // Forward plotly clicks on tree nodes into the hidden #plot-click textbox as "node|timestamp" (DESIGN.md 8).
  // Every redraw of a plot drops plotly's listeners, so hooks are re-attached whenever a plot appears or redraws.
  const PLOTS = {"tree-plot": "plot-click", "replay-plot": "plot-click"};
  const forward = (target, nodeId) => {
    const box = document.querySelector(`#${target} textarea, #${target} input`);
    if (!box) return;
    box.value = `${nodeId}|${Date.now()}`;
    box.dispatchEvent(new Event("input", {bubbles: true}));
  };
  // Gradio draws every new figure in a new plot element, so plotly's `uirevision` alone cannot keep the view:
  // the zoom and pan of each plot are kept here, per uirevision (one per session), and put back on the new
  // element. A double click (autorange) forgets them.
  const views = {};
  const viewKey = (plotId, gd) => `${plotId}|${(gd.layout && gd.layout.uirevision) || ""}`;
  const keepView = (plotId, gd, ev) => {
    if (!ev) return;
    const key = viewKey(plotId, gd);
    if (ev["xaxis.autorange"] || ev["yaxis.autorange"]) { delete views[key]; return; }
    if (!Object.keys(ev).some((k) => k.startsWith("xaxis.range") || k.startsWith("yaxis.range"))) return;
    const L = gd._fullLayout;
    if (L && L.xaxis && L.yaxis) views[key] = {"xaxis.range": [...L.xaxis.range], "yaxis.range": [...L.yaxis.range]};
  };
  const restoreView = (plotId, gd) => {
    const saved = views[viewKey(plotId, gd)];
    if (saved && window.Plotly) window.Plotly.relayout(gd, saved);
  };
  const hook = () => {
    for (const [plotId, target] of Object.entries(PLOTS)) {
      document.querySelectorAll(`#${plotId} .js-plotly-plot`).forEach((gd) => {
        if (!gd.on || !gd._ev || gd._ev.__rteHooked) return;
        gd._ev.__rteHooked = true;
        restoreView(plotId, gd);
        gd.on("plotly_relayout", (ev) => keepView(plotId, gd, ev));
        gd.on("plotly_click", (ev) => {
          const p = ev && ev.points && ev.points.find((q) => q.customdata !== undefined && q.customdata !== null);
          if (p) forward(target, p.customdata);
        });
        gd.on("plotly_afterplot", hook);
      });
    }
  };
  setInterval(hook, 300);
  new MutationObserver(hook).observe(document.body, {childList: true, subtree: true});

  // Typing into a selected (not yet edited) cell of the children table: Gradio's Dataframe opens its editor on
  // the first key but drops that key ("-1" became "1", a +1 on the child), and drops every key typed before the
  // editor has focus. So those keys are kept here, the editor is opened with Enter, and the kept keys become its
  // text the moment it takes focus, as a spreadsheet does.
  let pending = "", pendingCell = null, commit = null;
  document.addEventListener("keydown", (ev) => {
    const cell = ev.target;  // the cell itself, not its editor (which sits inside the cell)
    if (!ev.isTrusted || !cell.matches || !cell.matches("#children-table [role=gridcell]") || ev.ctrlKey ||
        ev.metaKey || ev.altKey) {
      return;
    }
    if (pending && (ev.key === "Enter" || ev.key === "Tab")) {  // typed before the editor opened: commit after
      commit = ev.key;
      ev.preventDefault();
      ev.stopImmediatePropagation();
      return;
    }
    if (ev.key.length !== 1) return;
    ev.preventDefault();
    ev.stopImmediatePropagation();
    if (pendingCell !== cell) { pending = ""; commit = null; }
    const first = pending === "";
    pending += ev.key;
    pendingCell = cell;
    if (first) cell.dispatchEvent(new KeyboardEvent("keydown", {key: "Enter", bubbles: true}));
  }, true);
  document.addEventListener("focusin", (ev) => {
    const box = ev.target;
    if (!box.matches || !pending) return;
    if (box.matches("#children-table textarea")) {
      box.value = pending;
      box.dispatchEvent(new Event("input", {bubbles: true}));  // Gradio keeps the text it saw in input events
      const key = commit;
      pending = ""; pendingCell = null; commit = null;
      if (key) box.dispatchEvent(new KeyboardEvent("keydown", {key, bubbles: true}));
    } else if (box !== pendingCell) {
      pending = ""; pendingCell = null; commit = null;  // the user moved on: the kept keys were for another cell
    }
  }, true);

  // Keyboard shortcuts for rating the selected node: g/+ good, n/0 neutral, b/- bad, u toggles unsure.
  // The review queue's buttons come first: on the Review tab the inspector's are hidden, and vice versa.
  const KEYS = {"g": ["review-good", "rate-good"], "+": ["review-good", "rate-good"],
                "n": ["review-neutral", "rate-neutral"], "0": ["review-neutral", "rate-neutral"],
                "b": ["review-bad", "rate-bad"], "-": ["review-bad", "rate-bad"]};
  const shown = (el) => el && el.offsetParent !== null;
  document.addEventListener("keydown", (ev) => {
    const t = ev.target;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
    // Keys typed in a table (a Dataframe cell takes typing before it shows an input) belong to that table: they
    // must never rate the selected node (the children table's "-1" once rated the parent).
    if (t && t.closest && t.closest("[role=grid], table, .table-wrap, .gradio-dataframe")) return;
    if (ev.key === "u") {
      const box = document.querySelector("#unsure input[type=checkbox]");
      if (box) { box.click(); ev.preventDefault(); }
      return;
    }
    const ids = KEYS[ev.key];
    const buttons = ids ? ids.map((id) => document.getElementById(id)).filter(Boolean) : [];
    const button = buttons.find(shown) || buttons.find((b) => b.id.startsWith("rate-"));
    if (button) { button.click(); ev.preventDefault(); }
  });
}

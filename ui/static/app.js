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
  const hook = () => {
    for (const [plotId, target] of Object.entries(PLOTS)) {
      document.querySelectorAll(`#${plotId} .js-plotly-plot`).forEach((gd) => {
        if (!gd.on || !gd._ev || gd._ev.__rteHooked) return;
        gd._ev.__rteHooked = true;
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

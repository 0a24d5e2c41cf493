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
  // Gradio's gr.Plot draws each new figure twice, and resizes it twice: the plot component that is about to be
  // replaced draws the new figure on its own element first, then a new component draws it again on a new
  // element, and each calls Plots.resize after (with a 2,000-node tree that was four full draws per update,
  // most of a session's opening time). So draws and resizes wait for the end of the current task (a microtask, before
  // the next paint) and are skipped on an element that has left the page by then; a resize that would not change
  // the size is skipped too.
  const tamePlotly = () => {
    const P = window.Plotly;
    if (!P || P.__rteTamed || !P.react || !P.Plots) return;
    P.__rteTamed = true;
    const later = (gd, draw) => Promise.resolve().then(() => {
      return gd && gd.isConnected === false ? gd : draw();
    });
    const react = P.react, resize = P.Plots.resize;
    // A big tree's figure says how wide it must be for its columns (ui/figure.py COLUMN_PX, `meta.min_width`):
    // the plot is never squeezed below it (its box scrolls sideways instead), so drawn nodes never touch.
    const minWidth = (gd, layout) => {
      const w = layout && layout.meta && layout.meta.min_width;
      if (gd && gd.style) gd.style.minWidth = w ? `${w}px` : "";
    };
    P.react = function (gd, ...rest) {
      return later(gd, () => { minWidth(gd, rest[1]); return react.call(this, gd, ...rest); });
    };
    P.Plots.resize = function (gd, ...rest) {
      return later(gd, () => {
        const L = gd && gd._fullLayout;
        if (L && gd.clientWidth === L.width && gd.clientHeight === L.height) return gd;
        return resize.call(this, gd, ...rest);
      });
    };
  };
  const hook = () => {
    tamePlotly();
    for (const [plotId, target] of Object.entries(PLOTS)) {
      document.querySelectorAll(`#${plotId} .js-plotly-plot`).forEach((gd) => {
        if (!gd.on || !gd._ev || gd._ev.__rteHooked) return;
        gd._ev.__rteHooked = true;
        restoreView(plotId, gd);
        gd.on("plotly_relayout", (ev) => keepView(plotId, gd, ev));
        gd.on("plotly_click", (ev) => {
          const p = ev && ev.points && ev.points.find((q) => q.customdata !== undefined && q.customdata !== null);
          if (!p) return;
          if (String(p.customdata).startsWith("+")) {  // a fold marker (ui/figure.py fold_id): draw its children
            if (plotId === "tree-plot") forward("plot-expand", String(p.customdata).slice(1));
            return;
          }
          forward(target, p.customdata);  // first: the request leaves before the ring is drawn
          if (plotId === "tree-plot") ringAt(gd, p.customdata);  // at once; the server's answer confirms it
        });
        gd.on("plotly_afterplot", hook);
      });
    }
  };
  setInterval(hook, 300);

  // A click moves the selection without a redraw (a 2,000-node figure took seconds to send and draw twice): the
  // ring around the selected node is one layout shape, as ui/figure.py's selection_ring draws it, moved by a
  // relayout of that shape alone. The server's answer (#selected-node, "node|time") confirms the ring; a node the
  // plot does not show (folded, outside the focus, picked on the replay plot) asks the server for a redraw.
  const treePlot = () => document.querySelector("#tree-plot .js-plotly-plot");
  const nodesOf = (gd) => (gd && gd.data ? gd.data.findIndex((d) => d.name === "nodes") : -1);
  const ringAt = (gd, nodeId) => {
    const k = nodesOf(gd);
    if (k < 0 || !window.Plotly) return false;
    const t = gd.data[k], i = nodeId ? t.customdata.indexOf(nodeId) : -1;
    const shapes = ((gd.layout && gd.layout.shapes) || []).filter((s) => s.name !== "selected");
    if (i >= 0) {
      const size = Array.isArray(t.marker.size) ? t.marker.size[i] : t.marker.size, r = size / 2 + 4;
      shapes.push({type: "circle", name: "selected", xref: "x", yref: "y", xsizemode: "pixel", ysizemode: "pixel",
                   xanchor: t.x[i], yanchor: t.y[i], x0: -r, x1: r, y0: -r, y1: r,
                   line: {color: "#ff1f8f", width: 3}, layer: "above"});
    }
    window.Plotly.relayout(gd, {shapes});
    return i >= 0 || !nodeId;
  };
  // The ring already around a node (the click drew it) is left alone: a second relayout only costs a frame.
  const ringIsAt = (gd, nodeId) => {
    const k = nodesOf(gd), i = k < 0 || !nodeId ? -1 : gd.data[k].customdata.indexOf(nodeId);
    const rings = ((gd.layout && gd.layout.shapes) || []).filter((s) => s.name === "selected");
    return i >= 0 && rings.length === 1 && rings[0].xanchor === gd.data[k].x[i] && rings[0].yanchor === gd.data[k].y[i];
  };
  window.rteShow = (value) => {
    const nodeId = (value || "").split("|", 1)[0];
    const gd = treePlot();
    if (gd && !ringIsAt(gd, nodeId) && !ringAt(gd, nodeId)) forward("plot-redraw", nodeId);
  };
  // A rating's patch (ui/plots.py label_patch): the new hover text and colour of the nodes it changed. A patch for
  // another session's plot is dropped. When only hovers change (colour is not by human label), they are written in
  // place, into the trace and into plotly's per-point hover text, which plotly reads when it shows a hover: a
  // restyle would redraw all nodes (100 ms and more for 800 of them), just as the next click comes.
  window.rtePatch = (json) => {
    const gd = treePlot(), k = nodesOf(gd);
    if (!json || k < 0 || !window.Plotly) return;
    const patch = JSON.parse(json);
    if (!gd.layout || gd.layout.uirevision !== patch.uirevision) return;
    const t = gd.data[k], cd = gd.calcdata && gd.calcdata[k];
    const same = gd.layout.meta && gd.layout.meta.color_by === patch.color_by;  // else a recolour is on its way
    const points = Object.entries(patch.nodes).map(([id, [h, c]]) => [t.customdata.indexOf(id), h, c])
      .filter(([i]) => i >= 0);
    if (!points.length) return;
    const recolour = same && Array.isArray(t.marker.color) && points.some(([i, , c]) => t.marker.color[i] !== c);
    const inPlace = !recolour && Array.isArray(t.hovertext) && cd && cd.length === t.hovertext.length &&
      points.every(([i]) => cd[i] && "htx" in cd[i]);
    if (inPlace) {
      for (const [i, h] of points) { t.hovertext[i] = h; cd[i].htx = h; }
      return;
    }
    const hover = [...t.hovertext], color = recolour ? [...t.marker.color] : null;
    for (const [i, h, c] of points) { hover[i] = h; if (color) color[i] = c; }
    window.Plotly.restyle(gd, color ? {hovertext: [hover], "marker.color": [color]} : {hovertext: [hover]}, [k]);
  };
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

  // Arrow keys move the selection over the drawn tree: up to the parent, down to the first child (or unfold the
  // node's fold marker when none is drawn), left and right to the previous and next sibling.
  const selectedId = () => {
    const box = document.querySelector("#selected-node textarea, #selected-node input");
    return ((box && box.value) || "").split("|", 1)[0];
  };
  const drawnChildren = (t, id) => t.customdata.map((c, i) => [c, t.x[i]])
    .filter(([c]) => c.startsWith(`${id}.`) && !c.slice(id.length + 1).includes(".")).sort((a, b) => a[1] - b[1]);
  const moveTarget = (key) => {
    const gd = treePlot(), k = nodesOf(gd), id = selectedId();
    if (k < 0 || !id) return null;
    const t = gd.data[k], parent = id.includes(".") ? id.slice(0, id.lastIndexOf(".")) : null;
    if (key === "ArrowUp") return parent && t.customdata.includes(parent) ? parent : null;
    if (key === "ArrowDown") {
      const kids = drawnChildren(t, id);
      if (kids.length) return kids[0][0];
      const folds = gd.data.find((d) => d.name === "folded");
      return folds && folds.customdata.includes(`+${id}`) ? `+${id}` : null;
    }
    if (!parent) return null;
    const sibs = drawnChildren(t, parent).map(([c]) => c), i = sibs.indexOf(id) + (key === "ArrowLeft" ? -1 : 1);
    return i >= 0 && i < sibs.length ? sibs[i] : null;
  };
  document.addEventListener("keydown", (ev) => {
    if (!["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight"].includes(ev.key)) return;
    const t = ev.target;
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.shiftKey) return;
    if (inTable && (!t || t === document.body)) return;
    if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
    if (t && t.closest && t.closest(TABLES)) return;
    const to = moveTarget(ev.key);
    if (!to) return;
    ev.preventDefault();
    if (to.startsWith("+")) { forward("plot-expand", to.slice(1)); return; }
    ringAt(treePlot(), to);
    forward("plot-click", to);
  });

  // Keyboard shortcuts for rating the selected node: g/+ good, n/0 neutral, b/- bad, u toggles unsure.
  // The review queue's buttons come first: on the Review tab the inspector's are hidden, and vice versa.
  const KEYS = {"g": ["review-good", "rate-good"], "+": ["review-good", "rate-good"],
                "n": ["review-neutral", "rate-neutral"], "0": ["review-neutral", "rate-neutral"],
                "b": ["review-bad", "rate-bad"], "-": ["review-bad", "rate-bad"]};
  const shown = (el) => el && el.offsetParent !== null;
  // A click into a table hands the keyboard to that table until the next click elsewhere: when the table redraws
  // under the typing (an update arriving), focus falls back to the page and the rest of "-1" must still not rate.
  const TABLES = "[role=grid], table, .table-wrap, .gradio-dataframe";
  let inTable = false;
  document.addEventListener("pointerdown", (ev) => {
    inTable = !!(ev.target && ev.target.closest && ev.target.closest(TABLES));
  }, true);
  document.addEventListener("keydown", (ev) => {
    const t = ev.target;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (inTable && (!t || t === document.body)) return;
    if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
    // Keys typed in a table (a Dataframe cell takes typing before it shows an input) belong to that table: they
    // must never rate the selected node (the children table's "-1" once rated the parent).
    if (t && t.closest && t.closest(TABLES)) return;
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

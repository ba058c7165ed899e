/* Oban Powertools control plane: the few behaviours htmx does not cover.
 * Loaded as a static file (the Content-Security-Policy forbids inline script).
 * - The "Live updates" toggle pauses and resumes the 5 s polling of live regions.
 * - Polling also waits while the operator is working inside a region (a checkbox is
 *   ticked or a field has focus), so a refresh never throws away a selection.
 * - "Select all" ticks every job checkbox on the page.
 */
(function () {
  "use strict";

  var KEY = "oban-powertools-live";

  function isPaused() {
    try {
      return window.sessionStorage.getItem(KEY) === "paused";
    } catch (e) {
      return false;
    }
  }

  function setPaused(paused) {
    try {
      window.sessionStorage.setItem(KEY, paused ? "paused" : "on");
    } catch (e) {
      /* storage unavailable: the toggle still works for this page via the attribute */
    }
    document.documentElement.setAttribute("data-live", paused ? "paused" : "on");
  }

  function paused() {
    return document.documentElement.getAttribute("data-live") === "paused" || isPaused();
  }

  function renderToggles() {
    var off = paused();
    document.querySelectorAll("[data-live-toggle]").forEach(function (button) {
      button.setAttribute("aria-pressed", off ? "false" : "true");
      button.textContent = off ? "Live updates: paused" : "Live updates: on";
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-live-toggle]");
    if (!button) return;
    setPaused(!paused());
    renderToggles();
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    if (!elt || !elt.hasAttribute || !elt.hasAttribute("data-poll")) return;
    var active = document.activeElement;
    var busy =
      elt.querySelector("input[type=checkbox]:checked") !== null ||
      (active && active !== document.body && elt.contains(active) && active.matches("input, select, textarea"));
    if (paused() || document.hidden || busy) event.preventDefault();
  });

  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box.matches || !box.matches("[data-select-all]")) return;
    var scope = box.closest("form") || document;
    scope.querySelectorAll('input[type=checkbox][name="target"]').forEach(function (item) {
      item.checked = box.checked;
    });
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", renderToggles);
  } else {
    renderToggles();
  }
  document.addEventListener("htmx:afterSwap", renderToggles);
})();

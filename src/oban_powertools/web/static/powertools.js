/* Oban Powertools control plane: the few behaviours htmx does not cover.
 * Loaded as a static file (the Content-Security-Policy forbids inline script).
 * - The "Live updates" toggle pauses and resumes the 5 s polling of live regions.
 * - Polling also waits while the operator is working inside a region (a checkbox is
 *   ticked or a field has focus), so a refresh never throws away a selection.
 * - "Select all" ticks every job checkbox on the page.
 * - Keyboard shortcuts, listed in the dialog "?" opens (#shortcuts in _layout.html):
 *   "g" then a letter follows the navigation link marked data-shortcut="g <letter>";
 *   "/" goes to the filter fields; in a preview "r" goes to Reason, Ctrl/Cmd+Enter
 *   confirms and Escape leaves Reason, then goes back without changes. Letters never
 *   fire while the operator types in a field.
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


  /* ---- Keyboard shortcuts ---- */

  var SEQUENCE_MS = 1500; // how long "g" waits for its letter, as on GitHub
  var pendingG = false;
  var pendingTimer = null;
  var opener = null;

  function typingIn(el) {
    if (!el || !el.matches) return false;
    if (el.isContentEditable) return true;
    if (el.matches("textarea, select")) return true;
    return el.matches("input") && !el.matches("[type=checkbox], [type=radio], [type=button], [type=submit], [type=reset]");
  }

  function visible(el) {
    return el && el.getClientRects().length > 0;
  }

  function confirmForm() {
    var form = document.querySelector(".confirm-form");
    return visible(form) ? form : null;
  }

  function helpDialog() {
    var dialog = document.getElementById("shortcuts");
    return dialog && typeof dialog.showModal === "function" ? dialog : null;
  }

  function openHelp() {
    var dialog = helpDialog();
    if (!dialog || dialog.open) return;
    opener = document.activeElement;
    dialog.showModal(); // modal: focus moves in, the page behind is inert, Escape closes
    var close = dialog.querySelector("[data-shortcuts-close]");
    if (close) close.focus();
  }

  function closeHelp() {
    var dialog = helpDialog();
    if (dialog && dialog.open) dialog.close();
  }

  function followShortcut(letter) {
    var link = document.querySelector('[data-shortcut="g ' + letter + '"]');
    if (!link) return false;
    link.click();
    return true;
  }

  function focusFilters() {
    var field = document.querySelector(".filters input:not([type=hidden]), .filters select");
    if (!field) return false;
    field.focus();
    return true;
  }

  function onKeydown(event) {
    if (event.defaultPrevented || event.isComposing) return;
    if (/^(Shift|Control|Alt|Meta|CapsLock)$/.test(event.key)) return; // "?" arrives after Shift
    var target = event.target;
    var form = confirmForm();

    // Confirm works from the Reason field too: that is where the operator is when done.
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && form) {
      if (typingIn(target) && !form.contains(target)) return;
      event.preventDefault();
      var button = form.querySelector("[data-confirm]");
      if (typeof form.requestSubmit === "function") {
        form.requestSubmit(button); // a submit event, so htmx and validation see it
      } else if (button) {
        button.click();
      }
      return;
    }
    if (event.key === "Escape" && target && target.id === "reason") {
      target.blur();
      event.preventDefault();
      return;
    }
    if (typingIn(target) || event.altKey || event.ctrlKey || event.metaKey) return;
    var dialog = helpDialog();
    if (dialog && dialog.open) {
      if (event.key === "?") {
        event.preventDefault();
        closeHelp();
      }
      return; // Escape is the dialog's own
    }

    if (pendingG) {
      pendingG = false;
      window.clearTimeout(pendingTimer);
      if (followShortcut(event.key.toLowerCase())) event.preventDefault();
      return;
    }
    var handled = true;
    switch (event.key) {
      case "g":
        pendingG = true;
        pendingTimer = window.setTimeout(function () {
          pendingG = false;
        }, SEQUENCE_MS);
        break;
      case "?":
        openHelp();
        break;
      case "/":
        handled = focusFilters();
        break;
      case "r":
        var reason = form && form.querySelector("#reason");
        if (reason) reason.focus();
        handled = Boolean(reason);
        break;
      case "Escape":
        var cancel = form && form.querySelector("[data-cancel]");
        if (cancel) cancel.click();
        handled = Boolean(cancel);
        break;
      default:
        handled = false;
    }
    if (handled) event.preventDefault();
  }

  document.addEventListener("keydown", onKeydown);

  document.addEventListener("click", function (event) {
    if (!event.target.closest) return;
    if (event.target.closest("[data-shortcuts-open]")) openHelp();
    if (event.target.closest("[data-shortcuts-close]")) closeHelp();
    if (event.target === helpDialog()) closeHelp(); // a click on the backdrop
  });

  function setUpHelp() {
    var dialog = helpDialog();
    if (!dialog) return;
    document.querySelectorAll("[data-shortcuts-open]").forEach(function (button) {
      button.hidden = false; // the button only works with this script, so it waits for it
    });
    dialog.addEventListener("close", function () {
      if (opener && opener.focus && document.contains(opener)) opener.focus();
      opener = null;
    });
  }

  function ready() {
    renderToggles();
    setUpHelp();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
  document.addEventListener("htmx:afterSwap", renderToggles);
})();

// The console's script: live refresh of the status parts, the STALE warning, the scope
// picker's effect labels, and focus on the error summary. The page works without it
// (forms are ordinary POSTs; a reload shows the same), only less loudly.
// Served from our origin for the CSP; no library.
(function () {
  "use strict";

  // --- The error summary (GOV.UK pattern): focused and in view after a refused submit.
  var summary = document.getElementById("error-summary");
  if (summary) {
    summary.focus();
    summary.scrollIntoView({ block: "start" });
  }

  // --- The scope picker: the name box only for a strategy or symbol; the button names
  // its effect. The server refuses what the page would not allow (ops/console/forms.py).
  function pickerLabel(form) {
    var kind = form.querySelector("select[name$='-scope_0']");
    var name = form.querySelector("input[name$='-scope_1']");
    var state = form.querySelector("select[name$='-state']");
    var button = form.querySelector("[data-effect]");
    if (!kind || !name || !state || !button) return;
    var isGlobal = kind.value === "global";
    name.disabled = isGlobal || form.querySelector("fieldset").disabled;
    var typed = name.value.trim();
    if (kind.value === "symbol") typed = typed.toUpperCase();
    var scope = isGlobal ? "global" : kind.value + ":" + (typed || "…");
    var verb = form.getAttribute("data-verb");
    var plain = verb === "HALT" ? state.value === "HALTED" : state.value === "ACTIVE";
    button.textContent = plain ? verb + " " + scope : "Set " + scope + " to " + state.value;
  }
  var pickers = document.querySelectorAll("[data-scope-picker]");
  Array.prototype.forEach.call(pickers, function (form) {
    form.addEventListener("input", function () { pickerLabel(form); });
    form.addEventListener("change", function () { pickerLabel(form); });
    pickerLabel(form);
  });

  // --- Live refresh and staleness.
  var layout = document.getElementById("live");
  var status = document.getElementById("live-status");
  if (!layout || !status || !window.fetch || !window.DOMParser) return;
  var INTERVAL_MS = 5000;
  var STALE_AFTER_MS = 15000;
  // Ages come from the monotonic clock since the last good answer; the times shown are
  // the server's own ("read at", UTC): the browser's wall clock is never displayed.
  var lastGoodAt = performance.now();
  var loggedOut = false;
  var baseTitle = document.title.replace(/^STALE · /, "");
  status.textContent = "Live: refreshes every 5 s.";

  function stateSection() { return layout.querySelector("[data-live-part='state'] .state"); }

  function readAt() {
    var section = stateSection();
    return section ? section.getAttribute("data-read-at") : "?";
  }

  function showStaleness() {
    var section = stateSection();
    if (!section) return;
    var note = section.querySelector(".stale-note");
    var ageSeconds = Math.round((performance.now() - lastGoodAt) / 1000);
    var stale = loggedOut || ageSeconds * 1000 > STALE_AFTER_MS;
    section.classList.toggle("is-stale", stale);
    if (!note) return;
    if (!stale) {
      note.hidden = true;
      document.title = baseTitle;
      return;
    }
    note.hidden = false;
    note.textContent = "STALE: last updated " + readAt() + " UTC (" + ageSeconds + " s ago). ";
    if (loggedOut) {
      var link = document.createElement("a");
      link.href = layout.getAttribute("data-login");
      link.textContent = "You are logged out: log in again";
      note.appendChild(link);
    } else {
      note.appendChild(document.createTextNode("The page cannot reach the server; this may be old."));
    }
    document.title = "STALE · " + baseTitle;
  }

  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    var focused = document.activeElement;
    // Where the focused field sits on screen, to put it back there if a part above grows.
    var before = focused && focused !== document.body ? focused.getBoundingClientRect().top : null;
    var focusedId = focused ? focused.id : "";
    Array.prototype.forEach.call(fresh.querySelectorAll("[data-live-part]"), function (part) {
      var name = part.getAttribute("data-live-part");
      var here = layout.querySelector("[data-live-part='" + name + "']");
      // Untouched when unchanged: no flicker, no lost focus or selection.
      if (here && here.innerHTML !== part.innerHTML) here.innerHTML = part.innerHTML;
    });
    if (focusedId && document.activeElement !== focused) {
      var again = document.getElementById(focusedId);
      if (again) again.focus({ preventScroll: true });
    }
    if (before !== null && document.activeElement) {
      var shift = document.activeElement.getBoundingClientRect().top - before;
      if (Math.abs(shift) >= 1) window.scrollBy(0, shift);
    }
    var section = stateSection();
    if (section) baseTitle = section.getAttribute("data-worst-state") + " · InvestIQ Ops Console";
  }

  function refresh() {
    fetch(layout.getAttribute("data-src"), { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        // A redirect here is the login page: the session ended.
        if (response.redirected || response.status === 401 || response.status === 403) {
          loggedOut = true;
          throw new Error("logged out");
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        swap(html);
        loggedOut = false;
        lastGoodAt = performance.now();
        status.textContent = "Live: updated at " + readAt() + " UTC (server time), every 5 s.";
        status.classList.remove("stale");
      })
      .catch(function (error) {
        status.textContent = "Live refresh FAILED (" + error.message + "): last updated " + readAt() + " UTC.";
        status.classList.add("stale");
      })
      .then(function () {
        showStaleness();
        window.setTimeout(refresh, INTERVAL_MS);
      });
  }

  window.setInterval(showStaleness, 1000);
  window.setTimeout(refresh, INTERVAL_MS);
})();

// Live refresh of the console's status part (#live) every 5 s, without a full reload.
// Plain fetch, no library: the page works offline and without this script (forms are
// ordinary POSTs; a reload shows the same). Served from our origin for the CSP.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var status = document.getElementById("live-status");
  if (!live || !status || !window.fetch) return;
  var INTERVAL_MS = 5000;
  status.textContent = "Live: refreshes every 5 s.";

  function swap(html) {
    // Keep keyboard focus on the same control (e.g. an Approve button) across the swap.
    var focused = document.activeElement;
    var focusedId = focused && live.contains(focused) ? focused.id : "";
    live.innerHTML = html;
    if (focusedId) {
      var again = document.getElementById(focusedId);
      if (again) again.focus();
    }
    var root = live.querySelector("[data-worst-state]");
    if (root) document.title = root.getAttribute("data-worst-state") + " · InvestIQ Ops Console";
  }

  function refresh() {
    fetch(live.getAttribute("data-src"), { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        // A redirect here is the login page: the session ended.
        if (response.redirected) throw new Error("logged out; reload the page to log in");
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        swap(html);
        status.textContent = "Live: updated " + new Date().toLocaleTimeString() + ", every 5 s.";
        status.classList.remove("stale");
      })
      .catch(function (error) {
        status.textContent = "Live refresh FAILED (" + error.message + "): what you see may be old.";
        status.classList.add("stale");
      })
      .then(function () {
        window.setTimeout(refresh, INTERVAL_MS);
      });
  }

  window.setTimeout(refresh, INTERVAL_MS);
})();

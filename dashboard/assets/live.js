// somaflow dashboard: live updates. The page polls a small JSON document of
// server-rendered (escaped) HTML fragments and replaces those that changed.
(function () {
  "use strict";
  var url = document.body.getAttribute("data-live");
  if (!url) { return; }
  var last = {};
  var state = document.getElementById("live-state");
  var delay = 2000;
  function tick() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (d) {
        Object.keys(d.fragments).forEach(function (id) {
          var html = d.fragments[id];
          if (last[id] === html) { return; }
          var el = document.getElementById(id);
          if (el && el.innerHTML !== html) { el.innerHTML = html; }
          last[id] = html;
        });
        if (state) { state.textContent = "live · read " + d.updated; }
        document.body.setAttribute("data-polled", d.updated);
        delay = d.interval_ms || 2000;
      })
      .catch(function (e) {
        if (state) { state.textContent = "not updated (" + e + "), retrying"; }
        delay = 5000;
      })
      .then(function () { setTimeout(tick, delay); });
  }
  setTimeout(tick, delay);
})();

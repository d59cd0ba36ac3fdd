// loraplex console: live regions. An element with data-live="<url>" is refreshed every
// data-interval ms (default 2000) with the HTML the URL answers, until the answer carries the
// header X-Live-Done: 1 (the job finished). No framework, no build step.
(function () {
  "use strict";
  function follow(el) {
    var url = el.getAttribute("data-live");
    var every = parseInt(el.getAttribute("data-interval") || "2000", 10);
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "console" } })
        .then(function (r) {
          if (!r.ok) { el.setAttribute("data-live-error", String(r.status)); return null; }
          var done = r.headers.get("X-Live-Done") === "1";
          return r.text().then(function (html) { return { html: html, done: done }; });
        })
        .then(function (res) {
          if (res === null) { setTimeout(tick, every * 2); return; }
          el.innerHTML = res.html;
          el.setAttribute("data-updated", String(Date.now()));
          if (res.done) {
            el.setAttribute("data-live-done", "1");
            // controls that only apply while it runs (e.g. Cancel) go when it is done
            Array.prototype.forEach.call(document.querySelectorAll("[data-live-hide]"),
              function (h) { h.hidden = true; });
          } else { setTimeout(tick, every); }
        })
        .catch(function () { setTimeout(tick, every * 2); });
    }
    setTimeout(tick, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-live]"), follow);
  });
})();

/*
 * The live desk (/direct): every few seconds, asks /direct/live for the queue and the
 * messages of the conversations this staff member handles (server-rendered, escaped HTML)
 * and swaps in what changed; a reply is sent without reloading the page. Without
 * JavaScript the page still works: its forms post and the page reloads.
 */
(function () {
  "use strict";
  var POLL_MS = 2000;
  var shown = {};

  function refresh() {
    fetch("/direct/live", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 403) { window.location.reload(); return null; }
        return r.ok ? r.json() : null;
      })
      .then(function (live) {
        if (!live) return;
        Object.keys(live.parts).forEach(function (key) {
          var target = document.querySelector('[data-live="' + key + '"]');
          if (target && shown[key] !== live.parts[key]) {
            shown[key] = live.parts[key];
            target.innerHTML = live.parts[key];
          }
        });
        // a conversation this page does not show yet (taken from another tab): reload once
        if (live.mine.some(function (ref) { return !document.querySelector('[data-live="' + ref + '"]'); })) {
          window.location.reload();
        }
      })
      .catch(function () { /* offline for a moment: next poll */ })
      .then(function () { setTimeout(refresh, POLL_MS); });
  }

  document.querySelectorAll("form.desk-reply").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = form.querySelector("button");
      button.disabled = true;
      fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      })
        .then(function (r) { return r.json(); })
        .then(function (result) {
          if (result.ok) form.querySelector("textarea").value = "";
          else window.alert(result.error);
        })
        .catch(function () { window.alert("Le message n'est pas parti. Réessayez."); })
        .then(function () { button.disabled = false; });
    });
  });

  setTimeout(refresh, POLL_MS);
})();

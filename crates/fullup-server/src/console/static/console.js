// fullup console: live counters. Every page works without this script; with it, an
// element with `data-live="URL"` has its `[data-counter=NAME]` descendants refreshed
// from that URL's JSON object (NAME -> text) every 5 seconds, without reloading.
"use strict";

(function () {
  const INTERVAL_MS = 5000;

  function refresh(root) {
    const url = root.getAttribute("data-live");
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((response) => (response.ok ? response.json() : null))
      .then((values) => {
        if (!values) return;
        root.querySelectorAll("[data-counter]").forEach((el) => {
          const name = el.getAttribute("data-counter");
          if (Object.prototype.hasOwnProperty.call(values, name)) {
            // textContent: values are shown as text, never parsed as markup.
            el.textContent = String(values[name]);
          }
        });
        const stamp = root.querySelector("[data-live-stamp]");
        if (stamp) stamp.textContent = "updated " + new Date().toLocaleTimeString();
      })
      .catch(() => {});
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-live]").forEach((root) => {
      setInterval(() => refresh(root), INTERVAL_MS);
    });
  });
})();

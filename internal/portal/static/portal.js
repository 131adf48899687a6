// Progressive enhancement only: every page works without this file.
// On the conversion-rates page, the preview follows the rate as it is
// typed, computed by the portal (exact decimals, rounded up, as the
// ledger converts), instead of waiting for the Preview button.
(function () {
  "use strict";
  // Says that scripts run (styles or tests may tell the two apart).
  document.documentElement.classList.add("js");
  var form = document.getElementById("rate-form");
  var out = document.getElementById("preview");
  if (!form || !out || !window.fetch) { return; }
  var timer = null;
  var seq = 0;
  function update() {
    var rate = form.elements.rate.value.trim();
    if (rate === "") { return; }
    var q = new URLSearchParams({
      currency: form.elements.currency.value.trim(),
      rate: rate,
      sample: form.elements.sample.value.trim()
    });
    var mine = ++seq;
    fetch("/agency/rates/preview?" + q.toString(), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (res) { return res.ok ? res.json() : null; })
      .then(function (body) {
        if (body && mine === seq) { out.textContent = body.text; }
      })
      .catch(function () { /* the Preview button still works */ });
  }
  ["currency", "rate", "sample"].forEach(function (name) {
    form.elements[name].addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(update, 200);
    });
  });
}());

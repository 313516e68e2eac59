/* lapor-bridge staff page: new tickets appear in the open queue without a reload.
 * Short polling of /antrean/data with If-None-Match: an unchanged queue costs a 304. */
(function () {
  "use strict";

  function startQueuePolling(table) {
    var url = table.getAttribute("data-poll-url");
    var seconds = parseFloat(table.getAttribute("data-poll-seconds")) || 10;
    var body = table.querySelector("tbody");
    var status = document.getElementById("antrean-status");
    var total = document.getElementById("jumlah");
    var fresh = document.getElementById("jumlah-baru");
    var baseTitle = document.title;
    var etag = null;
    var known = {};
    Array.prototype.forEach.call(body.querySelectorAll("tr[data-id]"), function (tr) {
      known[tr.getAttribute("data-id")] = true;
    });

    function say(text) { if (status) { status.textContent = text; } }

    function apply(data) {
      body.innerHTML = data.html;
      var arrived = 0;
      Array.prototype.forEach.call(body.querySelectorAll("tr[data-id]"), function (tr) {
        var id = tr.getAttribute("data-id");
        if (!known[id]) { tr.classList.add("muncul"); known[id] = true; arrived += 1; }
      });
      if (total) { total.textContent = String(data.count); }
      if (fresh) { fresh.textContent = String(data["new"]); }
      document.title = (data["new"] ? "(" + data["new"] + ") " : "") + baseTitle;
      if (arrived) { say(arrived + " pengaduan baru masuk."); }
    }

    function tick() {
      var headers = { "Accept": "application/json" };
      if (etag) { headers["If-None-Match"] = etag; }
      fetch(url, { headers: headers, credentials: "same-origin", cache: "no-store" })
        .then(function (res) {
          if (res.status === 401) {
            say("Sesi berakhir; muat ulang halaman untuk masuk kembali.");
            return "stop";
          }
          if (res.status === 304) { return null; }
          if (!res.ok) { throw new Error("HTTP " + res.status); }
          etag = res.headers.get("ETag");
          return res.json();
        })
        .then(function (data) {
          if (data === "stop") { return; }
          if (data) { apply(data); }
          window.setTimeout(tick, seconds * 1000);
        })
        .catch(function () {
          say("Pembaruan otomatis terputus; mencoba lagi…");
          window.setTimeout(tick, Math.max(seconds, 5) * 1000);
        });
    }

    window.setTimeout(tick, seconds * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var table = document.getElementById("antrean");
    if (table && window.fetch) { startQueuePolling(table); }
  });
})();

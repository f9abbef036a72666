// orch dashboard: keeps the page current from GET /api/v1/events (Server-
// Sent Events). Without JavaScript the pages are whole; this only updates
// them in place. No polling while the stream is up; it reconnects by itself
// (the browser retries, and a closed stream is reopened with a backoff).
(function () {
  "use strict";
  var body = document.body;
  var kind = body.dataset.live;
  var status = document.getElementById("live");
  var pending = {};
  var timer = null;
  var backoff = 500;
  // Event arrival times by task, for the browser test's latency figure.
  window.orchSeen = window.orchSeen || {};

  function say(text, cls) {
    if (!status) return;
    status.textContent = text;
    status.className = cls;
  }

  function fetchText(url) {
    return fetch(url, { headers: { Accept: "text/html" }, cache: "no-store" }).then(function (r) {
      return r.ok ? r.text() : null;
    });
  }

  function fromHtml(html) {
    var t = document.createElement("template");
    t.innerHTML = html.trim();
    return t.content;
  }

  function updateRow(task) {
    var table = document.getElementById("queue");
    if (!table) return;
    var filter = table.dataset.filter || "";
    fetchText("/rows/" + encodeURIComponent(task)).then(function (html) {
      if (html === null) return;
      var row = fromHtml(html).querySelector("tr");
      if (!row) return;
      var old = document.getElementById("row-" + task);
      if (filter && row.dataset.state !== filter) {
        if (old) old.remove();
        return;
      }
      row.classList.add("fresh");
      if (old) {
        old.replaceWith(row);
      } else {
        var tbody = table.tBodies[0];
        tbody.insertBefore(row, tbody.firstChild);
      }
      recount();
      window.orchSeen[task] = Date.now();
    });
  }

  // The summary's counts, from the rows (all of them are shown unfiltered).
  function recount() {
    var table = document.getElementById("queue");
    if (!table || table.dataset.filter) return;
    var rows = table.tBodies[0].rows;
    document.querySelectorAll("[data-count]").forEach(function (el) {
      var k = el.dataset.count;
      var n = 0;
      for (var i = 0; i < rows.length; i++) {
        if (k === "all" || rows[i].dataset.state === k) n++;
      }
      el.textContent = String(n);
    });
  }

  function refreshTask() {
    fetchText(location.pathname + location.search).then(function (html) {
      if (html === null) return;
      var fresh = fromHtml(html).querySelector("main");
      var main = document.getElementById("main");
      if (!fresh || !main) return;
      // Keep open <details> open and a token being typed.
      var open = {};
      main.querySelectorAll("details[open]").forEach(function (d, i) { open[i] = true; });
      var token = document.getElementById("token");
      var typed = token ? token.value : "";
      var focused = document.activeElement && document.activeElement.id;
      main.innerHTML = fresh.innerHTML;
      main.querySelectorAll("details").forEach(function (d, i) { if (open[i]) d.open = true; });
      var t2 = document.getElementById("token");
      if (t2 && typed) t2.value = typed;
      if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
      window.orchSeen[body.dataset.task] = Date.now();
    });
  }

  function flush() {
    timer = null;
    var tasks = Object.keys(pending);
    pending = {};
    if (kind === "queue") tasks.forEach(updateRow);
    else if (kind === "task" && tasks.indexOf(body.dataset.task) >= 0) refreshTask();
  }

  function onEvent(e) {
    var data;
    try { data = JSON.parse(e.data); } catch (err) { return; }
    if (!data || typeof data.task !== "string") return;
    pending[data.task] = true;
    // Events come in bursts (attempt, gate, transition): one fetch per task.
    if (!timer) timer = setTimeout(flush, 30);
  }

  function resync() {
    if (kind === "queue") {
      document.querySelectorAll("#queue tbody tr").forEach(function (r) { pending[r.id.slice(4)] = true; });
      flush();
    } else if (kind === "task") {
      refreshTask();
    }
  }

  function connect() {
    if (!window.EventSource) { say("live updates unavailable", "off"); return; }
    var es = new EventSource("/api/v1/events");
    var dropped = false;
    es.onopen = function () {
      say("live", "on");
      backoff = 500;
      // Whatever happened while the stream was down.
      if (dropped || connect.again) resync();
      connect.again = true;
    };
    es.onmessage = onEvent;
    es.onerror = function () {
      dropped = true;
      say("reconnecting…", "off");
      if (es.readyState === EventSource.CLOSED) {
        setTimeout(connect, backoff);
        backoff = Math.min(backoff * 2, 15000);
      }
    };
  }

  if (kind) {
    say("connecting…", "off");
    connect();
  }
})();

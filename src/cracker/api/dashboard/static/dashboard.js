// Cracker dashboard: the only script. Keeps the task list live (polls its JSON twin) and reloads
// a live task's page until it ends. Builds rows with textContent only: no HTML from data.
"use strict";
(function () {
  var table = document.querySelector("table[data-live]");
  if (table) {
    var tbody = table.tBodies[0];
    var cell = function (row, text) { var td = row.insertCell(); td.textContent = text; return td; };
    var render = function (tasks) {
      var rows = document.createDocumentFragment();
      tasks.forEach(function (t) {
        var tr = document.createElement("tr");
        tr.dataset.id = t.id;
        var link = document.createElement("a");
        link.href = "/dashboard/tasks/" + encodeURIComponent(t.id);
        link.textContent = t.id;
        tr.insertCell().appendChild(link);
        cell(tr, t.type);
        var badge = document.createElement("span");
        badge.className = "status " + t.status;
        badge.textContent = t.status;
        tr.insertCell().appendChild(badge);
        [t.price, t.cost, t.created_at, t.completed_at, t.error_code].forEach(function (v) { cell(tr, v); });
        rows.appendChild(tr);
      });
      if (!tasks.length) {
        var empty = document.createElement("tr");
        var td = cell(empty, "No tasks match.");
        td.colSpan = 8;
        rows.appendChild(empty);
      }
      tbody.replaceChildren(rows);
    };
    var poll = function () {
      fetch(table.dataset.live + window.location.search, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { if (r.status === 401) { window.location = "/dashboard/login"; } return r.json(); })
        .then(function (body) { if (body.tasks) { render(body.tasks); } })
        .catch(function () { /* the next poll tries again */ });
    };
    window.setInterval(poll, 2000);
  }
  var reload = document.querySelector("[data-reload]");
  if (reload) {
    window.setTimeout(function () { window.location.reload(); }, Number(reload.dataset.reload));
  }
})();

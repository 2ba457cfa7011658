/* phrsync web: a little plain JavaScript (the pages work without it).
 * - charts: every element with data-chart="<url>" is drawn with ECharts from the JSON option that URL answers;
 * - the facilities table: sort by a column, search by name or code, filter by district and problem, with the
 *   address and the CSV/XLSX export links kept in step, so an export is exactly what is shown. The order rules
 *   are the server's (phrsync/web/table.py): numbers by value, text by code point, unknown cells last either
 *   way, ties in code order.
 * - the facility page polls a running "send again" and reloads when it ends.
 * No inline script anywhere: the Content-Security-Policy forbids it. */
(function () {
  "use strict";

  function drawCharts() {
    if (typeof window.echarts === "undefined") { return; }
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      fetch(el.getAttribute("data-chart"), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
        .then(function (data) {
          var chart = window.echarts.init(el, null, { renderer: "canvas" });
          chart.setOption(data.option);
          el.setAttribute("data-chart-drawn", String((data.days || data.categories || []).length));
          window.addEventListener("resize", function () { chart.resize(); });
        })
        .catch(function (e) {
          el.setAttribute("data-chart-error", e.message);
          var p = document.createElement("p");
          p.className = "chart-error";
          p.textContent = (document.body.dataset.lang === "en" ? "chart not available: " : "แสดงกราฟไม่ได้: ") + e.message;
          el.appendChild(p);
        });
    });
  }

  function sortValue(td, kind) {
    if (!td || !td.hasAttribute("data-sort")) { return null; }
    var v = td.getAttribute("data-sort");
    return kind === "text" ? v : parseFloat(v);
  }

  function FacilityTable(table) {
    this.table = table;
    this.body = table.tBodies[0];
    this.form = document.getElementById("facility-filters");
    this.q = document.getElementById("filter-q");
    this.district = document.getElementById("filter-district");
    this.problem = document.getElementById("filter-problem");
    this.sortInput = document.getElementById("filter-sort");
    this.dirInput = document.getElementById("filter-dir");
    this.sort = table.dataset.sort || "code";
    this.dir = table.dataset.dir || "asc";
  }

  FacilityTable.prototype.kindOf = function (key) {
    var th = this.table.querySelector('thead th[data-col="' + key + '"]');
    return th ? th.dataset.kind : "text";
  };

  FacilityTable.prototype.apply = function () {
    var key = this.sort, desc = this.dir === "desc", kind = this.kindOf(key);
    var rows = Array.prototype.slice.call(this.body.rows);
    var code = function (tr) { return tr.dataset.hospcode; };
    rows.sort(function (a, b) {
      var va = sortValue(a.querySelector('td[data-col="' + key + '"]'), kind);
      var vb = sortValue(b.querySelector('td[data-col="' + key + '"]'), kind);
      if (va === null && vb === null) { return code(a) < code(b) ? -1 : code(a) > code(b) ? 1 : 0; }
      if (va === null) { return 1; }
      if (vb === null) { return -1; }
      if (va < vb) { return desc ? 1 : -1; }
      if (va > vb) { return desc ? -1 : 1; }
      return code(a) < code(b) ? -1 : code(a) > code(b) ? 1 : 0;
    });
    var needle = (this.q.value || "").trim().slice(0, 100).toLowerCase();
    var district = this.district.value, problem = this.problem.value, shown = 0;
    rows.forEach(function (tr) {
      var ok = true;
      if (needle && tr.dataset.hospcode.toLowerCase().indexOf(needle) < 0 && tr.dataset.name.indexOf(needle) < 0) { ok = false; }
      if (district && tr.dataset.district !== district) { ok = false; }
      if (problem && (" " + tr.dataset.problems + " ").indexOf(" " + problem + " ") < 0) { ok = false; }
      tr.hidden = !ok;
      if (ok) { shown += 1; }
      this.body.appendChild(tr);
    }, this);
    this.table.querySelectorAll("thead th").forEach(function (th) {
      if (th.dataset.col === key) { th.setAttribute("aria-sort", desc ? "descending" : "ascending"); }
      else { th.removeAttribute("aria-sort"); }
    });
    this.table.dataset.sort = key;
    this.table.dataset.dir = this.dir;
    this.sortInput.value = key;
    this.dirInput.value = this.dir;
    var count = document.getElementById("shown-count");
    if (count) { count.textContent = String(shown); }
    this.syncLinks();
  };

  FacilityTable.prototype.params = function () {
    var p = new URLSearchParams();
    var q = (this.q.value || "").trim();
    if (q) { p.set("q", q); }
    if (this.district.value) { p.set("district", this.district.value); }
    if (this.problem.value) { p.set("problem", this.problem.value); }
    if (this.sort !== "code") { p.set("sort", this.sort); }
    if (this.dir === "desc") { p.set("dir", "desc"); }
    return p;
  };

  FacilityTable.prototype.syncLinks = function () {
    var qs = this.params().toString();
    ["export-csv", "export-xlsx"].forEach(function (id) {
      var a = document.getElementById(id);
      if (a) { a.setAttribute("href", a.dataset.base + (qs ? "?" + qs : "")); }
    });
    var url = window.location.pathname + (qs ? "?" + qs : "");
    window.history.replaceState(null, "", url);
  };

  FacilityTable.prototype.bind = function () {
    var self = this;
    this.table.querySelectorAll("thead button.sort").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var key = btn.dataset.sortKey;
        if (self.sort === key) { self.dir = self.dir === "asc" ? "desc" : "asc"; }
        else { self.sort = key; self.dir = "asc"; }
        self.apply();
      });
    });
    this.q.addEventListener("input", function () { self.apply(); });
    this.district.addEventListener("change", function () { self.apply(); });
    this.problem.addEventListener("change", function () { self.apply(); });
    this.form.addEventListener("submit", function (ev) { ev.preventDefault(); self.apply(); });
  };

  function pollSendAgain() {
    var state = document.getElementById("send-again-state");
    var page = document.getElementById("facility");
    if (!state || !page || state.dataset.state !== "running") { return; }
    var url = "/api/facility/" + encodeURIComponent(page.dataset.hospcode) + "/send-again";
    var tick = function () {
      fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (d) {
        if (d.job && d.job.state !== "running") { window.location.reload(); }
        else { window.setTimeout(tick, 1500); }
      }).catch(function () { window.setTimeout(tick, 5000); });
    };
    window.setTimeout(tick, 1500);
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    var table = document.getElementById("facilities-table");
    if (table && document.getElementById("facility-filters")) {
      var ft = new FacilityTable(table);
      ft.bind();
      window.phrsyncFacilities = ft;
    }
    pollSendAgain();
  });
}());

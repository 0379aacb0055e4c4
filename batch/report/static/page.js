// The report's behaviour: sort and filter the failure table (the charts are drawn already,
// as SVG). No network: everything this page needs is in this file.
(function () {
  "use strict";
  var table = document.getElementById("failures");
  if (!table) { return; }
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var filter = document.getElementById("failure-filter");
  var outcome = document.getElementById("failure-outcome");
  var count = document.getElementById("failure-count");
  var texts = rows.map(function (row) { return row.textContent.toLowerCase(); });

  function apply() {
    var words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    var wanted = outcome.value;
    var shown = 0;
    rows.forEach(function (row, i) {
      var ok = (!wanted || row.getAttribute("data-outcome") === wanted) &&
        words.every(function (w) { return texts[i].indexOf(w) !== -1; });
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    count.textContent = shown + " of " + rows.length + " rows shown";
  }
  filter.addEventListener("input", apply);
  outcome.addEventListener("change", apply);

  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
    if (!th.classList.contains("sortable")) { return; }
    th.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) {
        other.removeAttribute("aria-sort");
      });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var numeric = th.classList.contains("num");
      var order = rows.map(function (row, i) { return i; });
      order.sort(function (a, b) {
        var x = rows[a].cells[column].getAttribute("data-sort") || rows[a].cells[column].textContent;
        var y = rows[b].cells[column].getAttribute("data-sort") || rows[b].cells[column].textContent;
        var c = numeric ? (parseFloat(x) || 0) - (parseFloat(y) || 0) : x.localeCompare(y);
        return (ascending ? c : -c) || a - b;
      });
      var sortedRows = order.map(function (i) { return rows[i]; });
      var sortedTexts = order.map(function (i) { return texts[i]; });
      rows = sortedRows; texts = sortedTexts;
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
  apply();
})();

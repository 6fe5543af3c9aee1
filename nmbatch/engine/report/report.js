// nmbatch report: sort a table by a click on its header, filter rows by the text typed.
(function () {
  "use strict";

  function cellKey(row, index) {
    const cell = row.cells[index];
    if (!cell) return "";
    const sort = cell.getAttribute("data-sort");
    return sort !== null ? parseFloat(sort) : cell.textContent.toLowerCase();
  }

  function sortBy(table, header, index) {
    const body = table.tBodies[0];
    const ascending = header.getAttribute("aria-sort") !== "ascending";
    for (const other of header.parentNode.children) other.removeAttribute("aria-sort");
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const rows = Array.from(body.rows);
    rows.sort(function (a, b) {
      const x = cellKey(a, index);
      const y = cellKey(b, index);
      if (typeof x === "number" && typeof y === "number") {
        if (isNaN(x) !== isNaN(y)) return isNaN(x) ? 1 : -1;
        return ascending ? x - y : y - x;
      }
      return ascending ? String(x).localeCompare(String(y)) : String(y).localeCompare(String(x));
    });
    for (const row of rows) body.appendChild(row);
  }

  function filterRows(input) {
    const table = document.getElementById(input.getAttribute("data-table"));
    const counter = document.getElementById(input.getAttribute("data-count"));
    const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const row of table.tBodies[0].rows) {
      const text = row.textContent.toLowerCase();
      const keep = words.every(function (w) { return text.indexOf(w) >= 0; });
      row.hidden = !keep;
      if (keep) shown += 1;
    }
    if (counter) counter.textContent = shown + " of " + table.tBodies[0].rows.length + " rows";
  }

  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.from(table.tHead.rows[0].cells).forEach(function (header, index) {
      header.addEventListener("click", function () { sortBy(table, header, index); });
    });
  });
  document.querySelectorAll("input.table-filter").forEach(function (input) {
    input.addEventListener("input", function () { filterRows(input); });
    filterRows(input);
  });
})();

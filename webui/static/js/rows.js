// Table fields: add and remove rows. Without JavaScript the form still offers blank rows.
(function () {
  "use strict";
  function renumber(tbody) {
    Array.prototype.forEach.call(tbody.rows, function (tr, i) {
      var cell = tr.querySelector(".rowno");
      if (cell) { cell.textContent = String(i + 1); }
    });
  }
  function nextIndex(tbody, table) {
    var max = -1;
    var pattern = new RegExp("^" + table + "-(\\d+)-");
    tbody.querySelectorAll("[name]").forEach(function (el) {
      var m = pattern.exec(el.name);
      if (m) { max = Math.max(max, parseInt(m[1], 10)); }
    });
    return max + 1;
  }
  document.querySelectorAll("fieldset.table-field").forEach(function (fieldset) {
    var table = fieldset.getAttribute("data-table");
    var tbody = fieldset.querySelector("tbody");
    var add = fieldset.querySelector(".add-row");
    var note = fieldset.querySelector(".nojs");
    if (note) { note.hidden = true; }
    add.hidden = false;
    fieldset.querySelectorAll(".remove-row").forEach(function (b) { b.hidden = false; });
    add.addEventListener("click", function () {
      var template = tbody.rows[tbody.rows.length - 1];
      var clone = template.cloneNode(true);
      var index = nextIndex(tbody, table);
      clone.querySelectorAll("[name]").forEach(function (el) {
        el.name = el.name.replace(/^([^-]+)-\d+-/, "$1-" + index + "-");
        el.id = el.name;
        if (el.type === "checkbox") { el.checked = false; } else { el.value = ""; }
        el.removeAttribute("aria-invalid");
        el.removeAttribute("aria-describedby");
        var label = el.getAttribute("aria-label");
        if (label) { el.setAttribute("aria-label", label.replace(/\d+$/, String(tbody.rows.length + 1))); }
      });
      clone.querySelectorAll(".field-error").forEach(function (e) { e.remove(); });
      tbody.appendChild(clone);
      renumber(tbody);
      var first = clone.querySelector("input, select, textarea");
      if (first) { first.focus(); }
    });
    tbody.addEventListener("click", function (event) {
      var button = event.target.closest(".remove-row");
      if (!button) { return; }
      var tr = button.closest("tr");
      if (tbody.rows.length > 1) {
        tr.remove();
      } else {
        tr.querySelectorAll("[name]").forEach(function (el) {
          if (el.type === "checkbox") { el.checked = false; } else { el.value = ""; }
        });
      }
      renumber(tbody);
      add.focus();
    });
  });
})();

// The drafting form: line totals and a live sum while typing, and a half-filled form kept
// across a language switch. The server stays the judge: nothing here is trusted, nothing is
// sent that the user did not type (the sum is only offered, never written unasked).
(function () {
  "use strict";

  // --- exact decimals (BigInt, scaled): money never goes through floating point -------------
  var NUMBER = /^\s*(-?)(\d+)(?:\.(\d+))?\s*$/;
  var GROUPED = /^\s*-?\d{1,3}(,\d{3})+(\.\d+)?\s*$/;

  function parse(text) {
    if (GROUPED.test(text)) { text = text.replace(/,/g, ""); }
    var m = NUMBER.exec(text);
    if (!m) { return null; }
    var fraction = m[3] || "";
    var n = BigInt(m[2] + fraction);
    return { n: m[1] ? -n : n, scale: fraction.length };
  }
  function rescale(a, scale) {
    return { n: a.n * BigInt(10) ** BigInt(scale - a.scale), scale: scale };
  }
  function add(a, b) {
    var scale = Math.max(a.scale, b.scale);
    return { n: rescale(a, scale).n + rescale(b, scale).n, scale: scale };
  }
  function times(a, b) { return { n: a.n * b.n, scale: a.scale + b.scale }; }
  function equal(a, b) {
    var scale = Math.max(a.scale, b.scale);
    return rescale(a, scale).n === rescale(b, scale).n;
  }
  function plain(a) {  // "12800.00": as the server stores it (at least 2 places)
    var x = a.scale < 2 ? rescale(a, 2) : a;
    var negative = x.n < 0n;
    var digits = (negative ? -x.n : x.n).toString().padStart(x.scale + 1, "0");
    var whole = digits.slice(0, digits.length - x.scale);
    var fraction = digits.slice(digits.length - x.scale);
    return (negative ? "-" : "") + whole + (fraction ? "." + fraction : "");
  }
  function money(a) {  // "¥12,800.00": as the app shows money
    var text = plain(a);
    var negative = text.charAt(0) === "-";
    var parts = text.replace("-", "").split(".");
    parts[0] = parts[0].replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return (negative ? "-" : "") + "¥" + parts.join(".");
  }
  var ZERO = { n: 0n, scale: 2 };

  function cell(tr, column) {
    return tr.querySelector("[name$='-" + column + "']");
  }

  function recompute(fieldset) {
    var qty = fieldset.getAttribute("data-sum-qty");
    var price = fieldset.getAttribute("data-sum-price");
    var amount = fieldset.getAttribute("data-sum-amount");
    var target = fieldset.getAttribute("data-sum-target");
    var out = fieldset.querySelector(".live-sum");
    var total = ZERO;
    var bad = false;
    var counted = 0;
    Array.prototype.forEach.call(fieldset.querySelector("tbody").rows, function (tr) {
      var line = null;
      var output = tr.querySelector(".line-total output");
      if (qty && price) {
        var q = cell(tr, qty), p = cell(tr, price);
        var qv = q && q.value.trim() ? parse(q.value) : null;
        var pv = p && p.value.trim() ? parse(p.value) : null;
        if ((q && q.value.trim() && !qv) || (p && p.value.trim() && !pv)) { bad = true; }
        if (qv && pv) { line = times(qv, pv); }
      } else if (amount) {
        var a = cell(tr, amount);
        if (a && a.value.trim()) {
          line = parse(a.value);
          if (!line) { bad = true; }
        }
      }
      if (output) { output.textContent = line ? money(line) : ""; }
      if (line) { total = add(total, line); counted += 1; }
    });
    if (!out) { return; }
    out.hidden = counted === 0 && !bad;
    out.textContent = "";
    out.classList.remove("mismatch", "match");
    if (out.hidden) { return; }
    var text = out.getAttribute("data-text-sum") + " " + money(total);
    if (bad) { text += " …"; }
    out.appendChild(document.createTextNode(text));
    var field = target ? document.getElementById(target) : null;
    if (!field || bad) { return; }
    var typed = field.value.trim() ? parse(field.value) : null;
    if (typed && equal(typed, total)) {
      out.classList.add("match");
      out.appendChild(document.createTextNode(" ✓ " + out.getAttribute("data-text-match")));
    } else {
      if (typed) {
        out.classList.add("mismatch");
        out.appendChild(document.createTextNode(" — " + out.getAttribute("data-text-mismatch")));
      }
      var use = document.createElement("button");
      use.type = "button";
      use.className = "link use-sum";
      use.textContent = out.getAttribute("data-text-use");
      use.addEventListener("click", function () {
        field.value = plain(total);
        recompute(fieldset);
        field.focus();
      });
      out.appendChild(document.createTextNode(" "));
      out.appendChild(use);
    }
  }

  document.querySelectorAll("fieldset.table-field[data-sum-target]").forEach(function (fieldset) {
    var again = function () { recompute(fieldset); };
    fieldset.addEventListener("input", again);
    fieldset.addEventListener("click", function (event) {
      if (event.target.closest(".add-row, .remove-row")) { window.setTimeout(again, 0); }
    });
    var target = fieldset.getAttribute("data-sum-target");
    var field = target ? document.getElementById(target) : null;
    if (field) { field.addEventListener("input", again); }
    again();
  });

  // --- a half-filled form survives the language switch ----------------------------------------
  var form = document.querySelector("form.docform[data-keep]");
  var switcher = document.querySelector("form.lang");
  if (!form || !window.sessionStorage) { return; }
  var key = "fuhe-draft:" + form.getAttribute("data-keep");
  if (switcher) {
    switcher.addEventListener("submit", function () {
      var values = {};
      Array.prototype.forEach.call(form.elements, function (el) {
        if (!el.name || el.name === "csrf_token" || el.name === "revision") { return; }
        values[el.name] = el.type === "checkbox" ? (el.checked ? "true" : "") : el.value;
      });
      var kept = { at: Date.now(), values: values };
      try { window.sessionStorage.setItem(key, JSON.stringify(kept)); } catch (e) { /* full */ }
    });
  }
  var saved = null;
  try { saved = JSON.parse(window.sessionStorage.getItem(key) || "null"); } catch (e) { saved = null; }
  window.sessionStorage.removeItem(key);
  // Only straight after the switch (the page it reloads), never hours later.
  if (!saved || typeof saved !== "object" || !(Date.now() - saved.at < 120000)) { return; }
  saved = saved.values || {};
  Object.keys(saved).forEach(function (name) {
    var el = form.elements.namedItem(name);
    if (!el) {  // a row added before the switch: add rows until it exists
      var m = /^([a-z][a-z0-9_]*)-(\d+)-/.exec(name);
      var fieldset = m && form.querySelector("fieldset[data-table='" + m[1] + "']");
      var more = fieldset && fieldset.querySelector(".add-row");
      for (var i = 0; more && !el && i < 200; i += 1) {
        more.click();
        el = form.elements.namedItem(name);
      }
    }
    if (!el || el.length !== undefined && !el.tagName) { return; }
    if (el.type === "checkbox") { el.checked = saved[name] === "true"; } else { el.value = saved[name]; }
  });
  form.querySelectorAll("fieldset.table-field[data-sum-target]").forEach(recompute);
})();

// The flow editor: CodeMirror over the plain textarea, checked on the server as the manager
// types (debounced), problems shown at their lines with their hints, the diagram and the diff
// redrawn from each valid text. Without JavaScript the form still checks and publishes.
(function () {
  "use strict";
  var form = document.getElementById("flow-editor");
  if (!form || typeof CodeMirror === "undefined") { return; }
  var textarea = document.getElementById("yaml");
  var status = document.getElementById("status");
  var problems = document.getElementById("problems");
  var diagram = document.getElementById("diagram");
  var diff = document.getElementById("diff");
  var weakens = document.getElementById("weakens");
  var publish = document.getElementById("publish-button");
  var check = document.getElementById("check-button");
  var token = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var DELAY = 400;
  var editor = CodeMirror.fromTextArea(textarea, {
    mode: "yaml", lineNumbers: true, indentUnit: 2, tabSize: 2, lineWrapping: false,
    screenReaderLabel: document.querySelector('label[for="yaml"]').textContent,
    extraKeys: { Tab: function (cm) { cm.replaceSelection("  "); } }
  });
  var marks = [];
  var timer = null;
  var sequence = 0;
  check.hidden = true;  // checking happens as you type

  function clearMarks() {
    marks.forEach(function (m) {
      if (m.widget) { m.widget.clear(); }
      editor.removeLineClass(m.line, "background", "cm-problem-line");
    });
    marks = [];
  }

  function problemItem(p) {
    var li = document.createElement("li");
    if (p.line) {
      li.setAttribute("data-line", String(p.line));
      var where = document.createElement("strong");
      where.textContent = (document.documentElement.lang === "en" ? "Line " + p.line : "第 " + p.line + " 行") + ": ";
      li.appendChild(where);
    }
    li.appendChild(document.createTextNode(p.message));
    if (p.hint) {
      li.appendChild(document.createElement("br"));
      var hint = document.createElement("span");
      hint.className = "hint";
      hint.textContent = (document.documentElement.lang === "en" ? "Hint: " : "提示：") + p.hint;
      li.appendChild(hint);
    }
    return li;
  }

  function showProblems(list) {
    clearMarks();
    problems.textContent = "";
    list.forEach(function (p) {
      problems.appendChild(problemItem(p));
      if (!p.line || p.line > editor.lineCount()) { return; }
      var line = editor.getLineHandle(p.line - 1);
      editor.addLineClass(line, "background", "cm-problem-line");
      var box = problemItem(p);
      box.className = "cm-problem";
      marks.push({ line: line, widget: editor.addLineWidget(line, box, { coverGutter: false, noHScroll: true }) });
    });
    if (marks.length) { editor.scrollIntoView({ line: editor.getLineNumber(marks[0].line), ch: 0 }, 120); }
    status.className = "status bad";
    status.textContent = list.length + " " + form.getAttribute("data-bad-text");
    textarea.setAttribute("aria-invalid", "true");
    diagram.classList.add("stale");
    diff.classList.add("stale");  // the diff and diagram of the last valid text, until fixed
    publish.disabled = true;
  }

  function showDiff(text) {
    diff.classList.remove("stale");
    diff.textContent = "";
    if (!text) { diff.textContent = form.getAttribute("data-nodiff-text"); return; }
    text.split("\n").forEach(function (line) {
      if (line === "") { return; }
      var span = document.createElement("span");
      if (line.indexOf("@@") === 0) { span.className = "hunk"; }
      else if (line[0] === "+" && line.indexOf("+++") !== 0) { span.className = "ins"; }
      else if (line[0] === "-" && line.indexOf("---") !== 0) { span.className = "del"; }
      span.textContent = line;
      diff.appendChild(span);
      diff.appendChild(document.createTextNode("\n"));
    });
  }

  function showValid(body) {
    clearMarks();
    problems.textContent = "";
    status.className = "status ok";
    status.textContent = form.getAttribute("data-ok-text");
    textarea.removeAttribute("aria-invalid");
    diagram.innerHTML = body.diagram;  // SVG rendered and escaped by the server
    diagram.classList.remove("stale");
    publish.disabled = false;
    var list = weakens.querySelector("ul");
    list.textContent = "";
    (body.weakens || []).forEach(function (reason) {
      var li = document.createElement("li");
      li.textContent = reason;
      list.appendChild(li);
    });
    weakens.hidden = !(body.weakens && body.weakens.length);
  }

  function run() {
    var mine = ++sequence;
    status.textContent = form.getAttribute("data-checking-text");
    fetch(form.getAttribute("data-check-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/yaml", "X-CSRFToken": token, "Accept": "application/json" },
      body: editor.getValue()
    }).then(function (response) {
      return response.json().then(function (body) { return { status: response.status, body: body }; });
    }).then(function (result) {
      if (mine !== sequence) { return; }  // an older answer arriving late
      form.setAttribute("data-checked", String(mine));  // tests wait for the first answer
      if (result.status === 200) {
        showValid(result.body);
        if (typeof result.body.diff === "string") { showDiff(result.body.diff); }
      } else if (result.status === 422 && result.body.error && Array.isArray(result.body.error.details)) {
        showProblems(result.body.error.details);
        if (result.body.error.diff) { showDiff(result.body.error.diff); }
      } else {
        status.className = "status bad";
        status.textContent = (result.body.error && result.body.error.message) || String(result.status);
      }
    }).catch(function () {
      if (mine === sequence) { status.textContent = "…"; }
    });
  }

  editor.on("change", function () {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(run, DELAY);
  });
  problems.addEventListener("click", function (event) {
    var li = event.target.closest("li[data-line]");
    if (!li) { return; }
    var line = parseInt(li.getAttribute("data-line"), 10) - 1;
    editor.focus();
    editor.setCursor({ line: line, ch: 0 });
  });
  form.addEventListener("submit", function () { editor.save(); });
  run();
})();

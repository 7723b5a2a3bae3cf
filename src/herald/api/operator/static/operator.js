// herald operator page: upload a hold CSV with progress (upload, then lines applied).
// Without this script the form still works: the server answers with the result page.
"use strict";

(function () {
  function setup() {
    var form = document.getElementById("import-form");
    if (!form || !window.XMLHttpRequest || !window.FormData) {
      return;
    }
    var status = document.getElementById("import-status");
    var bar = document.getElementById("import-progress");
    var text = document.getElementById("import-progress-text");
    var result = document.getElementById("import-result");
    var summary = document.getElementById("import-summary");
    var body = document.querySelector("#import-errors tbody");
    var more = document.getElementById("import-more");
    var button = form.querySelector("button[type=submit]");
    // the page's words, in its language: data-say-* attributes with {name} slots
    function say(name, values) {
      var words = form.getAttribute("data-say-" + name) || name;
      return words.replace(/\{(\w+)\}/g, function (_, key) {
        return String(values && key in values ? values[key] : "");
      });
    }

    function show(done, total, what) {
      bar.max = Math.max(total, 1);
      bar.value = done;
      text.textContent = what;
    }

    function cell(row, value) {
      var td = document.createElement("td");
      td.textContent = String(value);
      row.appendChild(td);
    }

    function finish(answer) {
      result.hidden = false;
      body.textContent = "";
      more.textContent = "";
      if (answer.error) {
        summary.textContent = say("nothing-applied", { error: answer.error });
        summary.className = "error";
        return;
      }
      var r = answer.result;
      summary.className = "";
      summary.textContent = say("result", { summary: r.summary, lines: r.lines });
      r.errors.forEach(function (e) {
        var row = document.createElement("tr");
        cell(row, e.line);
        cell(row, e.field);
        cell(row, e.message);
        body.appendChild(row);
      });
      if (r.more_errors) {
        more.textContent = say("more", { more: r.more_errors });
      }
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var xhr = new XMLHttpRequest();
      var seen = 0;
      var ended = false;

      function read() {
        if ((xhr.getResponseHeader("Content-Type") || "").indexOf("application/x-ndjson") !== 0) {
          return; // a refusal page, not the stream
        }
        var lines = xhr.responseText.slice(seen).split("\n");
        lines.pop(); // an unfinished line waits for the next chunk
        lines.forEach(function (line) {
          seen += line.length + 1;
          if (!line.trim()) {
            return;
          }
          var answer = JSON.parse(line);
          if (answer.progress) {
            var p = answer.progress;
            show(p.done, p.total, say("applied", { done: p.done, total: p.total }));
          } else {
            ended = true;
            if (answer.result) {
              show(answer.result.lines, answer.result.lines, say("done", { lines: answer.result.lines }));
            } else {
              text.textContent = say("refused");
            }
            finish(answer);
          }
        });
      }

      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/x-ndjson");
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) {
          show(e.loaded, e.total, say("uploading", { percent: Math.round((100 * e.loaded) / e.total) }));
        }
      });
      xhr.addEventListener("progress", read);
      xhr.addEventListener("load", function () {
        read();
        if (!ended) {
          finish({ error: say("server", { status: xhr.status }) });
        }
        button.disabled = false;
      });
      xhr.addEventListener("error", function () {
        finish({ error: say("unreached") });
        button.disabled = false;
      });
      button.disabled = true;
      status.hidden = false;
      result.hidden = true;
      show(0, 1, say("uploading", { percent: 0 }));
      xhr.send(new FormData(form));
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setup);
  } else {
    setup();
  }
})();

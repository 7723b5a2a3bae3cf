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
        summary.textContent = "Nothing applied: " + answer.error;
        summary.className = "error";
        return;
      }
      var r = answer.result;
      summary.className = "";
      summary.textContent = r.summary + " (" + r.lines + " lines)";
      r.errors.forEach(function (e) {
        var row = document.createElement("tr");
        cell(row, e.line);
        cell(row, e.field);
        cell(row, e.message);
        body.appendChild(row);
      });
      if (r.more_errors) {
        more.textContent = "… and " + r.more_errors + " more bad lines";
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
            show(p.done, p.total, "applied " + p.done + " of " + p.total + " lines");
          } else {
            ended = true;
            if (answer.result) {
              show(answer.result.lines, answer.result.lines, "done: " + answer.result.lines + " lines");
            } else {
              text.textContent = "refused";
            }
            finish(answer);
          }
        });
      }

      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/x-ndjson");
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) {
          show(e.loaded, e.total, "uploading: " + Math.round((100 * e.loaded) / e.total) + "%");
        }
      });
      xhr.addEventListener("progress", read);
      xhr.addEventListener("load", function () {
        read();
        if (!ended) {
          finish({ error: "the server answered " + xhr.status + " (reload the page, sign in again if asked)" });
        }
        button.disabled = false;
      });
      xhr.addEventListener("error", function () {
        finish({ error: "the upload did not reach the server" });
        button.disabled = false;
      });
      button.disabled = true;
      status.hidden = false;
      result.hidden = true;
      show(0, 1, "uploading");
      xhr.send(new FormData(form));
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setup);
  } else {
    setup();
  }
})();

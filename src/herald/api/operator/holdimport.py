"""The hold CSV import, ``/operator/import``: the upload form, and applying an uploaded file.

Bad lines are reported (line, field, message) and good lines applied, each hold recorded with
the signed-in operator as "who" whatever the file's ``by`` column says. The page's script asks
for ``application/x-ndjson`` and shows the import's progress as it streams; without the script
the answer is the page with the result.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import orjson
from fastapi import File, UploadFile
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from herald.api.operator.page import SignedIn, SignedInPost, Visit, finish, page_router, render
from herald.holds.holdcsv import CsvHeaderError, ImportReport, import_holds, read_rows
from herald.holds.suppression import SuppressionStore

log = logging.getLogger("herald.operator")

router = page_router()

MAX_UPLOAD = 64 * 1024 * 1024
MAX_SHOWN_ERRORS = 1000
NDJSON = "application/x-ndjson"


def _report_json(visit: Visit, report: ImportReport) -> dict[str, Any]:
    """The import's result as the page and its script show it, in the visit's language."""
    return {
        "summary": visit.tell(report.SUMMARY, report.summary_params()),
        "lines": report.lines,
        "counts": report.counts,
        "errors": [
            {
                "line": e.line,
                "field": e.field,
                "message": visit.tell(e.template, e.params) if e.template else e.message,
            }
            for e in report.errors[:MAX_SHOWN_ERRORS]
        ],
        "more_errors": max(0, len(report.errors) - MAX_SHOWN_ERRORS),
    }


def _ndjson(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj) + b"\n"


@router.get("/import", response_class=HTMLResponse)
def import_form(visit: SignedIn) -> Response:
    """The upload form."""
    return render(visit, "import.html", result=None)


@router.post("/import")
def import_upload(visit: SignedInPost, file: Annotated[UploadFile | None, File()] = None) -> Response:
    """Apply a hold CSV: bad lines are reported (line, field, message), good lines applied.

    With ``Accept: application/x-ndjson`` (the page's script) the answer streams one JSON line
    per batch applied (``{"progress": {"done", "total"}}``) and then ``{"result": ...}`` (or
    ``{"error": ...}``); otherwise it is the page with the result.
    """
    streaming = NDJSON in visit.request.headers.get("accept", "")
    problem, rows = "", []
    data = file.file.read(MAX_UPLOAD + 1) if file is not None else b""
    if file is None or not file.filename:
        problem = visit._("file: choose a CSV file to upload")
    elif len(data) > MAX_UPLOAD:
        problem = visit._("file: larger than %(mib)s MiB; split it") % {"mib": MAX_UPLOAD // (1024 * 1024)}
    else:
        try:
            rows = read_rows(data.decode("utf-8-sig"))
        except UnicodeDecodeError:
            problem = visit._("file: not UTF-8 text")
        except CsvHeaderError as exc:
            problem = visit._("file: %(problem)s") % {"problem": visit.tell(exc.template, exc.params)}
    if problem:
        if streaming:
            return finish(visit, Response(_ndjson({"error": problem}), 400, media_type=NDJSON))
        return render(visit, "import.html", 400, error=problem, result=None)
    holds = SuppressionStore(visit.redis)
    by, timezone = visit.owner, visit.settings.default_timezone

    def apply(progress: Callable[[int, int], None] | None = None) -> ImportReport:
        report = import_holds(holds, rows, by=by, timezone=timezone, force_by=True, progress=progress)
        log.info("operator page: hold import by %s: %s", by, report.summary())
        return report

    if not streaming:
        return render(visit, "import.html", result=_report_json(visit, apply()))

    # The import runs in its own thread to its end, even if the browser goes away meanwhile:
    # the stream only reports on it.
    updates: queue.Queue[tuple[int, int] | ImportReport | Exception] = queue.Queue()

    def work() -> None:
        try:
            updates.put(apply(lambda done, total: updates.put((done, total))))
        except Exception as exc:
            log.exception("operator page: hold import by %s stopped", by)
            updates.put(exc)

    threading.Thread(target=work, name="operator-import", daemon=False).start()

    def stream() -> Iterator[bytes]:
        yield _ndjson({"progress": {"done": 0, "total": len(rows)}})
        done = 0
        while True:
            item = updates.get()
            if isinstance(item, ImportReport):
                yield _ndjson({"result": _report_json(visit, item)})
                return
            if isinstance(item, Exception):
                message = visit._(
                    "the import stopped after %(done)s of %(total)s lines (%(error)s); "
                    "the lines before were applied: upload the file again"
                ) % {"done": done, "total": len(rows), "error": type(item).__name__}
                yield _ndjson({"error": message})
                return
            done = item[0]
            yield _ndjson({"progress": {"done": item[0], "total": item[1]}})

    return finish(visit, StreamingResponse(stream(), media_type=NDJSON))

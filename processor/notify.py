"""Telling someone how an unattended run ended: a JSON POST to NOTIFY_URL.

The body is the run summary with a one-line `text` field first, so a Slack or Microsoft Teams
incoming webhook shows it as a message, and anything else (a monitoring endpoint, a small
script) gets the whole summary. NOTIFY_ON=problems (the default) sends only when the run
failed, stopped or rejected rows; NOTIFY_ON=always after every run. Secrets are masked before
the body is built. A notification that cannot be delivered is logged and never changes the
run's exit code.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from .db import first_line
from .redact import clean_tree

log = logging.getLogger(__name__)

TIMEOUT = 10.0  # per socket read: a receiver that trickles its answer would reset it forever
DEADLINE = 20.0  # so each attempt has this long in all, then the run goes on without the answer
ATTEMPTS = 2
RETRY_DELAY = 1.0
MAX_FILES = 50  # files listed by name in the body: those that failed or rejected rows


def wanted(notify_on: str, exit_code: int, rows_rejected: int) -> bool:
    """Whether this run's ending is worth a message."""
    return notify_on == "always" or exit_code != 0 or rows_rejected > 0


def verdict(exit_code: int, rows_rejected: int) -> str:
    """'ok', 'rejected rows', 'stopped' (a signal) or 'failed'."""
    if exit_code in (130, 143):
        return "stopped"
    if exit_code != 0:
        return "failed"
    return "rejected rows" if rows_rejected else "ok"


def body(run: dict[str, Any], report: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
    """The JSON to send: `text` (one line), the run's own fields, and the stages' reports, masked (pure)."""
    state = verdict(run["exit_code"], run.get("rows_rejected", 0))
    head = f"processor {run['step']} on {run.get('host') or 'an unnamed host'}: {state} (exit {run['exit_code']})"
    parts = [f"{head} after {run['seconds']:,.1f} s", run.get("summary"), run.get("error") and f"error: {run['error']}"]
    text = "; ".join(part for part in parts if part).replace("\n", " ")
    return clean_tree({"text": text, "status": state, **run, "report": _compact(report)}, secrets)


def _compact(report: dict[str, Any]) -> dict[str, Any]:
    """The report with the load's file list cut to the files worth a look (a dump may hold thousands)."""
    load = report.get("load")
    if not load:
        return report
    files = load.get("files", [])
    notable = [f for f in files if f.get("status") == "failed" or f.get("rows_rejected")]
    kept = {**load, "files": notable[:MAX_FILES], "files_total": len(files), "files_notable": len(notable)}
    return {**report, "load": kept}


def shown(url: str) -> str:
    """NOTIFY_URL as logs show it: scheme and host only (a webhook's path is its password)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "") + "/..."


def send(url: str, payload: dict[str, Any]) -> bool:
    """POST the payload as JSON; logs and returns False when it cannot be delivered (never raises)."""
    import requests  # here: a load that notifies nobody need not import it

    shown_url = shown(url)
    problem = ""
    for attempt in range(ATTEMPTS):
        try:
            answer = _post(url, payload)
        except requests.RequestException as exc:
            problem = f"{type(exc).__name__}: {first_line(exc)}"  # the log filter masks the URL's secret parts
        except TimeoutError:
            problem = f"no answer within {DEADLINE:g} s"
            break  # it has the message and is slow to answer: sending it again could post it twice
        else:
            if answer.status_code < 300:
                log.info("notified %s (HTTP %d)", shown_url, answer.status_code)
                return True
            problem = f"HTTP {answer.status_code}"
            if answer.status_code < 500 and answer.status_code != 429:
                break  # the receiver refuses this message; sending it again will not help
        if attempt + 1 < ATTEMPTS:
            log.info("notifying %s failed (%s); trying once more", shown_url, problem)
            time.sleep(RETRY_DELAY)
    log.warning("could not notify %s: %s; the run's exit code is unchanged", shown_url, problem)
    return False


def _post(url: str, payload: dict[str, Any]):
    """requests.post with a deadline for the whole exchange; raises TimeoutError past it."""
    import requests

    outcome: dict[str, Any] = {}

    def post() -> None:
        try:
            outcome["answer"] = requests.post(url, json=payload, timeout=TIMEOUT)
        except Exception as exc:  # handed to the caller's thread
            outcome["error"] = exc

    sender = threading.Thread(target=post, name="notify", daemon=True)  # daemon: never keeps the run alive
    sender.start()
    sender.join(DEADLINE)
    if sender.is_alive():
        raise TimeoutError
    if "error" in outcome:
        raise outcome["error"]
    return outcome["answer"]

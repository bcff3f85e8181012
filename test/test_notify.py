"""The notification's rules and body (pure): when to send, the one-line text, the files listed, masking."""

import pytest

from processor import notify
from processor.config import Settings


@pytest.mark.parametrize(
    "notify_on, exit_code, rejected, sent",
    [
        ("problems", 0, 0, False),
        ("problems", 0, 3, True),
        ("problems", 1, 0, True),
        ("problems", 143, 0, True),
        ("always", 0, 0, True),
    ],
)
def test_problems_or_always(notify_on, exit_code, rejected, sent):
    assert notify.wanted(notify_on, exit_code, rejected) is sent


def test_the_body_is_one_line_of_text_and_the_files_worth_a_look_with_secrets_masked():
    files = [{"path": f"area{i}/certificates.csv", "status": "loaded", "rows_rejected": 0} for i in range(500)]
    files[7] = {"path": "area7/certificates.csv", "status": "loaded", "rows_rejected": 2}
    files[9] = {"path": "area9/certificates.csv", "status": "failed", "rows_rejected": 0, "error": "pw=hunter22"}
    run = {"step": "all", "host": "h1", "exit_code": 1, "seconds": 61.25, "summary": "load: 498 loaded\nnext"}
    body = notify.body(run, {"load": {"files": files}, "notes": ["hunter22"]}, ["hunter22"])
    assert body["text"] == "processor all on h1: failed (exit 1) after 61.2 s; load: 498 loaded next"
    load = body["report"]["load"]
    assert [f["path"] for f in load["files"]] == ["area7/certificates.csv", "area9/certificates.csv"]
    assert (load["files_total"], load["files_notable"]) == (500, 2)
    assert "hunter22" not in str(body)


def test_a_webhook_path_is_a_secret_and_logs_show_only_its_host():
    settings = Settings(notify_url="https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXX")
    assert "services/T000/B000/XXXXXXXXXXXX" in settings.secrets()
    assert notify.shown(settings.notify_url) == "https://hooks.slack.com/..."
    assert "XXXXXXXX" not in repr(settings)

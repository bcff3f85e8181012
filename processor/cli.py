"""processor: CSV files -> SQL staging tables -> deals view -> Pipedrive.

    python index.py              load, transform, then sync (sync is skipped without PIPEDRIVE_API_KEY)
    python index.py load         only stage the CSV files
    python index.py transform    only (re)build the deals view
    python index.py sync         only sync the deals view to Pipedrive
    python index.py status       what the ledger says: files in, rows, rejects, and what is not in

Configured by environment variables (and a .env file in the working directory; real
environment variables win). Exit codes: 0 ok, 1 some files or deals failed, 2 bad
configuration, 3 source missing or nothing matched, 4 database unreachable, 5 transform
failed, 6 sync stopped (bad token, daily budget spent), 130 Ctrl-C, 143 SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys

from dotenv import load_dotenv

from . import container
from .config import Settings, describe_options
from .errors import ConfigError, Interrupted, ProcessorError
from .feedback import FileProgress, configure_logging, use_bar
from .pipeline import STEPS, run
from .redact import clean, clean_tree

log = logging.getLogger("processor")


def read_environment() -> dict[str, str]:
    """`.env` in the working directory under the real environment (which wins).

    The file's values go into the process environment too, so libraries that read it themselves
    (the AWS credentials of S3 sources) see them.
    """
    if os.path.exists(".env"):
        load_dotenv(".env", override=False)
    return dict(os.environ)


def _raise_interrupted(signum, _frame) -> None:
    raise Interrupted(signum)


def main(argv: list[str] | None = None, prog: str = "processor") -> int:
    """The command line (`processor`, and `python index.py` through its shim); returns the exit code."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.split("\n\n")[0],
        epilog="environment variables:\n" + describe_options(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("step", nargs="?", choices=STEPS, default="all", help="what to run (default: all)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(read_environment())
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    secrets = settings.secrets()
    configure_logging(settings.log_level, secrets)
    lost = container.warning(settings.dest_sql, os.environ)
    if lost:
        log.warning("%s", lost)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    progress = FileProgress(use_bar(settings.progress))
    try:
        with progress.running():
            report = run(settings, args.step, progress)
    except KeyboardInterrupt:
        log.error("stopped by Ctrl-C; files that were loading were rolled back")
        return 130
    except Interrupted as exc:
        log.error("stopped by signal; files that were loading were rolled back")
        return exc.exit_code
    except ProcessorError as exc:
        log.error("%s", exc)
        return exc.exit_code
    for line in report.lines():
        print(clean(line, secrets))
    if settings.summary_json:
        with open(settings.summary_json, "w", encoding="utf-8") as handle:
            summary = json.loads(json.dumps(report.to_dict(), default=str))
            json.dump(clean_tree(summary, secrets), handle, indent=2)
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())

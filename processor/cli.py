"""processor: CSV files -> SQL staging tables -> deals view -> Pipedrive.

    processor              load; transform when its three tables exist; sync with PIPEDRIVE_API_KEY
    processor load         only stage the CSV files
    processor transform    only (re)build the deals view
    processor sync         only sync the deals view to Pipedrive
    processor status       what the ledger says, and the last run

(`python index.py [step]` in a checkout is the same.) Configured by environment variables (and a
.env file in the working directory; real environment variables win). `--help` lists the steps,
the variables and the exit codes.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import signal
import sys
import time
from datetime import UTC, datetime

from dotenv import load_dotenv
from dotenv.parser import parse_stream

from . import container, outcome
from .config import Settings
from .db import normalise_url, sqlite_folder_problem
from .errors import ConfigError, Interrupted, ProcessorError
from .feedback import FileProgress, configure_logging, use_bar
from .pipeline import STEPS, RunReport, run
from .usage import SUMMARY, epilog, width

log = logging.getLogger("processor")


def read_environment() -> tuple[dict[str, str], list[str]]:
    """`.env` in the working directory under the real environment (which wins), and what is wrong with the file.

    The file's values go into the process environment too, so libraries that read it themselves
    (the AWS credentials of S3 sources) see them. A line that is not `NAME=value` is a problem, not
    skipped: the variable it meant to set would silently take its default. Problems name the line,
    never its text (it may hold a password).
    """
    if not os.path.exists(".env"):
        return dict(os.environ), []
    try:
        with open(".env", encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError:
        return dict(os.environ), [".env is not UTF-8 text: save it as UTF-8 (or set the variables in the environment)"]
    except OSError as exc:
        return dict(os.environ), [f".env cannot be read: {exc.strerror or exc}"]
    bindings = list(parse_stream(io.StringIO(text)))
    problems = [
        f".env line {binding.original.line} is not NAME=value (nor a comment), so it sets nothing: fix or remove it"
        for binding in bindings
        if binding.error
    ]
    # The lines it can read still count (NOTIFY_URL is told of the problem); python-dotenv is not given the
    # others, as it would only warn about them.
    readable = "".join(binding.original.string for binding in bindings if not binding.error)
    load_dotenv(stream=io.StringIO(readable), override=False)
    return dict(os.environ), problems


def _raise_interrupted(signum, _frame) -> None:
    raise Interrupted(signum)


def _parser(prog: str) -> argparse.ArgumentParser:
    columns = width()
    return argparse.ArgumentParser(
        prog=prog,
        description=SUMMARY,
        epilog=epilog(columns),
        formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(prog, width=columns),
    )


def _settings(env: dict[str, str], env_file_problems: list[str]) -> Settings:
    """Settings from the environment, and the paths they name that must exist before the run; raises ConfigError."""
    try:
        settings = Settings.from_env(env)
    except ConfigError as exc:
        raise ConfigError("\n  ".join([str(exc), *env_file_problems])) from None
    if env_file_problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(env_file_problems))
    folder = os.path.dirname(os.path.abspath(settings.summary_json)) if settings.summary_json else None
    if folder and not os.path.isdir(folder):
        raise ConfigError(f"SUMMARY_JSON: the folder {folder} does not exist; create it or fix the path")
    if settings.summary_json and os.path.isdir(settings.summary_json):
        raise ConfigError(f"SUMMARY_JSON: {settings.summary_json} is a folder; name a file in it (e.g. summary.json)")
    problem = sqlite_folder_problem(normalise_url(settings.dest_sql))
    if problem:
        raise ConfigError(problem)
    return settings


def _config_error(env: dict[str, str], exc: ConfigError) -> int:
    if env.get("LOG_FORMAT", "").strip().lower() == "json":
        print(json.dumps({"level": "ERROR", "step": "config", "message": str(exc)}), file=sys.stderr)
    else:
        print(f"error: {exc}", file=sys.stderr)
    outcome.tell_config_error(env, str(exc))
    return exc.exit_code


def main(argv: list[str] | None = None, prog: str = "processor") -> int:
    """The command line (`processor`, and `python index.py` through its shim); returns the exit code."""
    parser = _parser(prog)
    parser.add_argument(
        "step",
        nargs="?",
        choices=STEPS,
        default="all",
        metavar="step",
        help="one of: " + ", ".join(STEPS) + " (default: all)",
    )
    args = parser.parse_args(argv)
    env, env_file_problems = read_environment()
    try:
        settings = _settings(env, env_file_problems)
    except ConfigError as exc:
        return _config_error(env, exc)
    configure_logging(settings.log_level, settings.secrets(), settings.log_format, args.step)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    for line in outcome.where(settings, args.step):
        log.info("%s", line)
    lost = container.warning(settings.dest_sql, os.environ)
    if lost:
        log.warning("%s", lost)
    report = RunReport()
    started, clock = datetime.now(UTC), time.monotonic()
    progress = FileProgress(use_bar(settings.progress))
    try:
        with progress.running():
            run(settings, args.step, progress, report)
    except KeyboardInterrupt:
        log.error("stopped by Ctrl-C; files that were loading were rolled back")
        report.stopped("Ctrl-C; files that were loading were rolled back", 130)
    except Interrupted as exc:
        loading = report.load is None and args.step in ("all", "load")  # else nothing was loading: say no more
        said = "; files that were loading were rolled back" if loading else ""
        log.error("stopped by signal%s", said)
        report.stopped(f"a signal{said}", exc.exit_code)
    except ProcessorError as exc:
        log.error("%s", exc)
        report.stopped(str(exc), exc.exit_code)
    ending = outcome.Ending(settings, args.step, report, started, time.monotonic() - clock)
    for line in outcome.finish(ending):
        print(line)
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())

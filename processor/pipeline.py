"""run(settings): chain the stages — load, transform, sync — and return what each did. No logic of its own."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .config import Settings
from .db import create_engine
from .staging.loader import Progress, load
from .staging.report import LoadReport

log = logging.getLogger(__name__)

STEPS = ("all", "load", "transform", "sync")


@dataclass
class RunReport:
    """The reports of the stages that ran."""

    load: LoadReport | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        codes = [report.exit_code for report in (self.load,) if report is not None]
        return max(codes, default=0)

    def to_dict(self) -> dict:
        return {"exit_code": self.exit_code, "load": self.load.to_dict() if self.load else None}

    def lines(self) -> list[str]:
        out = list(self.notes)
        if self.load is not None:
            out += self.load.lines()
        return out


def run(settings: Settings, step: str = "all", progress: Progress | None = None) -> RunReport:
    """Run one step or all of them; raises ProcessorError subclasses for run-stopping problems."""
    engine = create_engine(settings.dest_sql)
    report = RunReport()
    try:
        if step in ("all", "load"):
            report.load = load(settings, engine, progress)
    finally:
        engine.dispose()
    return report

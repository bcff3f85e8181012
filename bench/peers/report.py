"""The two tables bench_peers.py prints (speed, exactness) and its JSON."""

from __future__ import annotations

import json
import statistics

from . import exact, tools


def _ratio(outcome, native) -> tuple[float, float, float] | None:
    """Ratio of the medians, and the range of the per-round ratios."""
    if not outcome or not native or not outcome.times or not native.times:
        return None
    rounds = [t / n for t, n in zip(outcome.times, native.times, strict=False)]
    return statistics.median(outcome.times) / statistics.median(native.times), min(rounds), max(rounds)


def _speed_cell(outcome, native) -> str:
    if outcome is None:
        return "—"
    if outcome.error and not outcome.times:
        return "failed (below)"
    if outcome is native:
        return f"1 ({statistics.median(outcome.times):.2f} s)"
    ratio = _ratio(outcome, native)
    return "—" if ratio is None else f"**{ratio[0]:.1f}** ({ratio[1]:.1f}–{ratio[2]:.1f})"


def _version(tool: str, families: list[str], versions: dict) -> str:
    if tool == "native":
        return ", ".join(versions.get(f"native:{f}", "?") for f in families)
    return versions.get(tool, "?")


def _shown(text: str, limit: int = 36) -> str:
    quoted = json.dumps(text, ensure_ascii=False)
    return quoted if len(quoted) <= limit else quoted[: limit - 2] + '…"'


def _change(column: str, text: str, back: str) -> str:
    back = back if back.startswith("(") or back == "NULL" else _shown(back)
    return f"{column} {_shown(text)} → {back}"


def _changed(check: exact.Check | None) -> str:
    if check is None:
        return "—"
    if check.error and not check.rows_back:
        return "load failed"
    total = sum(check.counts.values())
    failed = " (load failed)" if check.error else ""
    return f"{check.counts[exact.CHANGED]:,} / {total:,}{failed}"


def _by_column(check: exact.Check | None) -> str:
    if check is None or check.error and not check.rows_back:
        return ""
    return ", ".join(f"{name} {count:,}" for name, count in check.changed_by_column.most_common())


def _examples(outcome) -> str:
    """One change per kind of value, hard file first."""
    seen, shown = set(), []
    for check in outcome.checks.values():
        if check.error and not check.rows_back:
            continue
        for column, (text, back) in check.column_examples.items():
            if column not in seen and back != "(row missing)":
                seen.add(column)
                shown.append(_change(column, text, back))
    return "; ".join(shown[:3]) + (" …" if len(shown) > 3 else "")


def speed_table(outcomes: dict, versions: dict, facts: dict, families: list[str], missing: dict) -> list[str]:
    names = [t for t in tools.TOOLS if t in facts["tools"]]
    lines = [
        "| tool | version | " + " | ".join(tools.DATABASES[f] for f in families) + " |",
        "|---|---|" + "---:|" * len(families),
    ]
    for tool in names:
        if tool in missing:
            lines.append(f"| {tool} | not run: {missing[tool]} |" + " — |" * len(families))
            continue
        cells = [_speed_cell(outcomes.get((f, tool)), outcomes.get((f, "native"))) for f in families]
        lines.append(f"| {tool} | {_version(tool, families, versions)} | " + " | ".join(cells) + " |")
    return lines


def exactness_table(outcomes: dict, facts: dict, families: list[str]) -> list[str]:
    lines = [
        "| database | tool | hard file: rows back | values changed | changed, by column | reformatted "
        "| integers past 64 bits: changed | timed file: changed | examples |",
        "|---|---|---:|---:|---|---:|---:|---:|---|",
    ]
    for family in families:
        for tool in [t for t in tools.TOOLS if t in facts["tools"]]:
            outcome = outcomes.get((family, tool))
            if outcome is None or "hard" not in outcome.checks:
                continue
            hard = outcome.checks["hard"]
            reformatted = f"{hard.counts[exact.REFORMATTED]:,}"
            lines.append(
                f"| {tools.DATABASES[family]} | {tool} | {hard.rows_back:,} / {hard.rows_in_file:,} "
                f"| {_changed(hard)} | {_by_column(hard)} | {reformatted} | {_changed(outcome.checks.get('huge'))} "
                f"| {_changed(outcome.checks.get('wide'))} | {_examples(outcome)} |"
            )
    return lines


def failures(outcomes: dict) -> list[str]:
    found = []
    for (family, tool), outcome in outcomes.items():
        if outcome.error:
            found.append(f"- {tools.DATABASES[family]}, {tool}, timed file: {outcome.error}")
        for name, check in outcome.checks.items():
            if check.error:
                found.append(f"- {tools.DATABASES[family]}, {tool}, {name}.csv: {check.error}")
    return found


def markdown(outcomes: dict, versions: dict, facts: dict, families: list[str], missing: dict[str, str]) -> str:
    """The speed table (tools × databases), the exactness table (tool × database), the failures."""
    before, after = facts["load_average_before_after"]
    lines = [
        f"Speed: {facts['rows']:,} rows × 22 columns ({facts['wide_mb']} MB); each time ÷ the native loader's on "
        f"the same database: ratio of the medians of {facts['rounds']} interleaved rounds (range of the per-round "
        f"ratios). {facts['cores']} cores, load average {before} before and {after} after; "
        f"whole run {facts['seconds']} s (rounds {facts['rounds_seconds']} s, exactness {facts['exactness_seconds']} s).",
        "",
        *speed_table(outcomes, versions, facts, families, missing),
        "",
        f"Exactness: each table read back and compared with the file's text, value by value. Hard file: "
        f"{facts['hard_rows']:,} rows × {facts['hard_kinds']} kinds; integers past 64 bits: their own file of "
        f"{facts['hard_rows']:,} rows; timed file: the last round's table.",
        "",
        *exactness_table(outcomes, facts, families),
    ]
    failed = failures(outcomes)
    if failed:
        lines += ["", "Failures:", "", *failed]
    return "\n".join(lines) + "\n"


def _check_json(check: exact.Check) -> dict:
    return {
        "rows_in_file": check.rows_in_file,
        "rows_back": check.rows_back,
        "values": dict(check.counts),
        "changed_by_column": dict(check.changed_by_column),
        "first_change_by_column": {k: list(v) for k, v in check.column_examples.items()},
        "error": check.error,
    }


def as_json(outcomes: dict, versions: dict, facts: dict) -> dict:
    results = []
    for (family, tool), outcome in outcomes.items():
        native = outcomes.get((family, "native"))
        ratio = _ratio(outcome, native)
        results.append(
            {
                "database": family,
                "tool": tool,
                "seconds": outcome.times,
                "native_seconds": native.times if native else None,
                "ratio_of_medians": ratio[0] if ratio else None,
                "round_ratio_range": ratio[1:] if ratio else None,
                "error": outcome.error,
                "checks": {name: _check_json(check) for name, check in outcome.checks.items()},
            }
        )
    return {"facts": facts, "versions": versions, "results": results}

"""What the ``hubmirror`` command prints: a plan as text, markdown or JSON, and a run's progress."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from hubmirror.steps.preview import Preview, budget_lines, changed_entries, summary_line

FORMATS = ("text", "markdown", "json")
#: How a plan marks an item whose target could not be read.
UNREAD = " (target not read)"


def _action(preview: Preview, action: str) -> str:
    return action + (UNREAD if not preview.target_read and action in ("copy", "build") else "")


def plan_text(preview: Preview, *, title: str) -> str:
    lines = [title, "", f"Next run: {summary_line(preview)}"]
    lines += [f"Pull budget read from this machine's address: {line}" for line in budget_lines(preview.budgets)]
    changed = changed_entries(preview)
    lines += ["", "Allowlist entries:" if changed else "Allowlist entries: no change from the deployed allowlist"]
    for entry in changed:
        lines.append(f"  {entry.change:9} {entry.name}" + (f"  ({entry.detail})" if entry.detail else ""))
    for name, tags in preview.selected.items():
        lines.append(f"  selector  {name} picks {', '.join(tags) or 'no tag'}")
    lines += ["", "Items:"]
    width = max((len(_action(preview, i.action)) for i in preview.items), default=0)
    for item in preview.items:
        pulls = f", {item.pulls} pull(s)" if item.pulls else ""
        lines.append(f"  {_action(preview, item.action).ljust(width)}  {item.source} -> {item.target}{pulls}")
        if item.action in ("deferred", "fails"):
            lines.append(f"  {''.ljust(width)}    {item.reason}")
    lines += [f"Note: {note}" for note in preview.notes]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def plan_markdown(preview: Preview, *, title: str) -> str:
    """The comment a CI job posts on an allowlist pull request."""
    verdict = ":x: some items would fail" if preview.failed else ":white_check_mark: every item would sync"
    lines = [f"### {title}", "", f"{verdict}: **{summary_line(preview)}**", ""]
    if preview.budgets:
        lines += [f"Pull budget (read from the CI machine's address): {'; '.join(budget_lines(preview.budgets))}", ""]
    changed = changed_entries(preview)
    if changed or preview.selected:
        lines += ["| Entry | Change |", "|---|---|"]
        lines += [
            f"| `{_cell(e.name)}` | {e.change}{' (' + _cell(e.detail) + ')' if e.detail else ''} |" for e in changed
        ]
        lines += [
            f"| `{_cell(name)}` | selector picks {', '.join(f'`{t}`' for t in tags) or 'no tag'} |"
            for name, tags in preview.selected.items()
        ]
        lines.append("")
    else:
        lines += ["No entry changes from the deployed allowlist.", ""]
    lines += ["| Next run | Image | Target | Pulls | Why |", "|---|---|---|---|---|"]
    for item in preview.items:
        lines.append(
            f"| {_action(preview, item.action)} | `{_cell(item.source)}` | `{_cell(item.target)}` | "
            f"{item.pulls} | {_cell(item.reason)} |"
        )
    if preview.notes:
        lines += ["", *(f"> {_cell(note)}" for note in preview.notes)]
    return "\n".join(lines) + "\n"


def plan_json(preview: Preview) -> str:
    return json.dumps(preview.to_dict(), indent=2, sort_keys=True) + "\n"


class Progress:
    """``done of total`` while a run goes: a bar redrawn in place on a terminal, a plain line
    per change elsewhere (a CI log)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last: tuple[int, int | None, str] | None = None

    def show(self, done: int, total: int | None, state: str) -> None:
        if (done, total, state) == self._last:
            return
        self._last = (done, total, state)
        if total is None:
            line = f"{state}: planning"
        elif self.tty:
            width = 30
            filled = width * done // total if total else width
            line = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} items  {state}"
        else:
            line = f"{state}: {done} of {total} items done"
        if self.tty:
            self.stream.write("\r" + line.ljust(60))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.tty and self._last is not None:
            self.stream.write("\n")
            self.stream.flush()

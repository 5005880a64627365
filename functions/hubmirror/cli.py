"""The ``hubmirror`` command line: ``hubmirror validate FILE``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from hubmirror.allowlist.rules import AllowlistError, parse_allowlist


def validate(path: Path) -> int:
    """Validate one allowlist file; print a one-line OK or every problem."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"hubmirror: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        allowlist = parse_allowlist(data, source=str(path))
    except AllowlistError as exc:
        for line in exc.lines():
            print(line)
        print(f"{path}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return 1
    tags = sum(len(e.tags) for e in allowlist.entries)
    pins = sum(len(e.pinned) for e in allowlist.entries)
    selectors = sum(1 for e in allowlist.entries if e.selector is not None)
    print(f"{path}: OK ({len(allowlist.entries)} images: {tags} tags, {pins} pinned, {selectors} selectors)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hubmirror", description="hubmirror command line")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("validate", help="check allowlist files; exit 1 if any is invalid")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    args = parser.parse_args(argv)
    worst = 0
    for path in args.files:
        worst = max(worst, validate(path))
    return worst


if __name__ == "__main__":
    sys.exit(main())

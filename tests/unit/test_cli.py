"""``hubmirror validate``: one line on success, every problem on failure, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HUBMIRROR = Path(sys.executable).parent / "hubmirror"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HUBMIRROR), *args], capture_output=True, text=True, check=False)


def test_valid_file_prints_one_ok_line() -> None:
    result = run("validate", str(ROOT / "allowlist.yaml"))
    assert result.returncode == 0
    assert result.stdout.count("\n") == 1
    assert "OK" in result.stdout


def test_invalid_file_prints_every_problem_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("images:\n  - source: nginx\n    tags: [1.10]\n    extra: 1\n")
    result = run("validate", str(path))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{path}:3: images[0].tags[0]: '1.1' came from the number 1.10; quote it: \"1.10\"",
        f"{path}:4: images[0].extra: unknown key 'extra'; allowed keys: source, tags, select, pinned, target, target_prefix, platforms, build_commands, max_tags, signatures, verify",
    ]
    assert "Traceback" not in result.stderr


def test_unreadable_file_exits_2_with_a_message(tmp_path: Path) -> None:
    result = run("validate", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    assert "cannot read" in result.stderr
    assert "Traceback" not in result.stderr

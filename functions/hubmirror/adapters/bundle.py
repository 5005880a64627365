"""The source bundle CodeBuild runs: ``buildspec.yml`` and this very package, zipped.

The Lambdas ship the package (and, through a symlink that ``sam build`` follows, the
project's ``buildspec.yml``); the plan step uploads it once per content hash, so a
CodeBuild build always runs the copy/build script of the deployment that started it.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from hubmirror.domain import keys
from hubmirror.domain.oci import sha256_digest
from hubmirror.settings import PACKAGE_DIR

BUILDSPEC = PACKAGE_DIR / "runner" / "buildspec.yml"
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def _files() -> list[tuple[str, Path]]:
    files = [("buildspec.yml", BUILDSPEC)]
    for path in sorted(PACKAGE_DIR.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        if path.suffix not in (".py", ".sh", ".json", ".env") and path.name != "py.typed":
            continue
        files.append((f"hubmirror/{path.relative_to(PACKAGE_DIR).as_posix()}", path))
    return files


def runner_bundle() -> tuple[str, bytes]:
    """``(key, zip bytes)``: a deterministic zip, keyed ``runner/<sha256-hex>.zip``."""
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, path in _files():
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = (0o755 if path.suffix == ".sh" else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    data = raw.getvalue()
    return keys.runner_bundle(sha256_digest(data)), data

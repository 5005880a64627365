"""The job runs in the image CodeBuild gives it: Debian 12 plus what install-tools.sh installs.

These build the local CodeBuild's image layers (cached under .cache/codebuild-image/) and run
the job's imports inside them, as a CodeBuild build would.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from devstack.aws import buildimage

PACKAGE = Path(__file__).resolve().parents[2] / "functions" / "hubmirror"
INSTALL_TOOLS = buildimage.RUNNER / "install-tools.sh"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chroot and mount need root")


def _import_job(image: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    with buildimage.build_root(image, tmp_path / "overlay") as root:
        shutil.copytree(PACKAGE, root / "src" / "hubmirror", ignore=shutil.ignore_patterns("__pycache__"))
        command = buildimage.chroot_command(
            root, "python3 -c 'import sys, hubmirror.runner.job; print(sys.version)'", {"PATH": "/usr/bin:/bin"}, "/src"
        )
        return subprocess.run(command, capture_output=True, text=True, check=False)


def test_the_job_imports_in_the_image_with_the_shipped_tools(tmp_path: Path) -> None:
    proc = _import_job(buildimage.with_tools(), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("3.11.")  # Debian 12's Python, not this machine's


def test_a_package_the_job_needs_and_the_script_forgot_fails_the_job(tmp_path: Path) -> None:
    runner = tmp_path / "runner"
    shutil.copytree(buildimage.RUNNER, runner)
    env = (runner / "tools.env").read_text()
    assert " python3-boto3" in env
    (runner / "tools.env").write_text(env.replace(" python3-boto3", ""))
    proc = _import_job(buildimage.with_tools(runner), tmp_path)
    assert proc.returncode != 0
    assert re.search(r"No module named '(boto3|botocore)'", proc.stderr), proc.stderr


def _install_tools(tmp_path: Path, **minimums: str) -> subprocess.CompletedProcess[str]:
    env = (buildimage.RUNNER / "tools.env").read_text()
    for name, version in minimums.items():
        env = "\n".join(f"{name}={version}" if line.startswith(f"{name}=") else line for line in env.splitlines())
    (tmp_path / "tools.env").write_text(env + "\n")
    return subprocess.run(
        ["bash", str(INSTALL_TOOLS)],
        env={**os.environ, "HUBMIRROR_TOOLS_ENV": str(tmp_path / "tools.env")},
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_minimum_older_than_the_archive_still_installs_and_logs_the_versions(tmp_path: Path) -> None:
    proc = _install_tools(tmp_path, BUILDAH_MIN="1.0", QEMU_USER_STATIC_MIN="1:5.0")
    assert proc.returncode == 0, proc.stderr
    assert "tools: buildah=1.28" in proc.stdout  # what is installed, for the build's log


def test_a_minimum_the_archive_cannot_meet_fails_with_the_package_named(tmp_path: Path) -> None:
    proc = _install_tools(tmp_path, BUILDAH_MIN="99.0")
    assert proc.returncode == 1
    assert "buildah 1.28" in proc.stderr
    assert "needs at least 99.0" in proc.stderr

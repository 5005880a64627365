"""The SAM template: valid, and wired to code that exists."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

from devstack.deploy import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template()


def test_sam_validate_lint_passes() -> None:
    sam = Path(sys.executable).parent / "sam"
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    result = subprocess.run(
        [str(sam), "validate", "--lint", "--template", str(ROOT / "template.yaml")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_function_handler_imports_from_the_code_uri() -> None:
    code_uri = TEMPLATE["Globals"]["Function"]["CodeUri"]
    assert code_uri == "functions/"
    functions = {k: v for k, v in TEMPLATE["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}
    assert set(functions) == {"PlanFunction", "CheckFunction", "RenderFunction", "ReportFunction"}
    for resource in functions.values():
        module, _, name = resource["Properties"]["Handler"].rpartition(".")
        assert callable(getattr(importlib.import_module(module), name))


def test_runtime_is_python313_the_buildspec_ships_with_the_code_and_the_allowlist_does_not() -> None:
    """The deployed stack reads its allowlist from its bucket: the package holds none."""
    assert TEMPLATE["Globals"]["Function"]["Runtime"] == "python3.13"
    assert not list((ROOT / "functions").rglob("allowlist.yaml"))
    assert (ROOT / "functions/hubmirror/runner/buildspec.yml").resolve() == (ROOT / "buildspec.yml").resolve()


def test_no_literal_account_region_or_arn() -> None:
    text = (ROOT / "template.yaml").read_text()
    assert "123456789012" not in text
    for region in ("us-east-1", "eu-west-1", "us-west-2"):
        assert region not in text
    assert "arn:aws:" not in text


def test_one_version_everywhere() -> None:
    """The package, the command's --version, the template's metadata and output, pyproject and the
    CHANGELOG's newest release name one version."""
    import tomllib

    from hubmirror import __version__

    assert TEMPLATE["Metadata"]["AWS::ServerlessRepo::Application"]["SemanticVersion"] == __version__
    assert TEMPLATE["Outputs"]["Version"]["Value"] == __version__
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"] == __version__
    newest = next(line for line in (ROOT / "CHANGELOG.md").read_text().splitlines() if line.startswith("## ["))
    assert newest.startswith(f"## [{__version__}]")

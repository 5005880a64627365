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


def test_runtime_is_python313_and_the_allowlist_and_buildspec_ship_with_the_code() -> None:
    assert TEMPLATE["Globals"]["Function"]["Runtime"] == "python3.13"
    assert (ROOT / "functions/hubmirror/allowlist/allowlist.yaml").resolve() == (ROOT / "allowlist.yaml").resolve()
    assert (ROOT / "functions/hubmirror/runner/buildspec.yml").resolve() == (ROOT / "buildspec.yml").resolve()


def test_no_literal_account_region_or_arn() -> None:
    text = (ROOT / "template.yaml").read_text()
    assert "123456789012" not in text
    for region in ("us-east-1", "eu-west-1", "us-west-2"):
        assert region not in text
    assert "arn:aws:" not in text

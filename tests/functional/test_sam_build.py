"""``sam build`` succeeds, and every Handler of the template imports from its output.

The build runs with the Lambda runtime's Python (3.13) on PATH, as ``make build`` does, into
a temporary directory. Each handler is then imported in a fresh interpreter with that
function's build directory first on ``sys.path``, as the Lambda runtime puts it: the
package and Powertools must come from the build, not from this checkout.

The functions run on arm64, so ``sam build`` puts cryptography's arm64 wheel (native code)
in the build; this machine cannot load it. The import therefore takes cryptography and cffi,
alone, from this machine's environment, after the test checks that the build holds the same
version compiled for AArch64.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from samtranslator.yaml_helper import yaml_parse

from tests.cfn import ROOT

IMPORT_HANDLER = """
import importlib, json, sys
sys.path[:0] = [sys.argv[3], sys.argv[1]]
module, _, name = sys.argv[2].rpartition(".")
handler = getattr(importlib.import_module(module), name)
assert callable(handler), sys.argv[2]
import aws_lambda_powertools, hubmirror
print(json.dumps({"hubmirror": hubmirror.__file__, "powertools": aws_lambda_powertools.__file__}))
"""
#: The native packages the import takes from this machine (the build's are for AArch64).
NATIVE = ("cryptography", "cffi", "_cffi_backend")
ELF_MACHINE_AARCH64 = 183


def native_overlay(directory: Path) -> Path:
    """A directory holding links to this environment's cryptography and cffi, and nothing else."""
    import cffi
    import cryptography

    directory.mkdir(exist_ok=True)
    site = Path(cryptography.__file__).parent.parent
    assert Path(cffi.__file__).parent.parent == site
    for entry in site.iterdir():
        if entry.name.split(".")[0] in NATIVE and not entry.name.endswith(".dist-info"):
            (directory / entry.name).symlink_to(entry)
    return directory


def test_the_build_holds_cryptography_for_aarch64_at_the_pinned_version(build: Path) -> None:
    import cryptography

    for function in ("PlanFunction", "CheckFunction"):
        code = build / function
        assert (code / f"cryptography-{cryptography.__version__}.dist-info").is_dir(), function
        library = (code / "cryptography" / "hazmat" / "bindings" / "_rust.abi3.so").read_bytes()[:20]
        assert library[:4] == b"\x7fELF"
        assert int.from_bytes(library[18:20], "little") == ELF_MACHINE_AARCH64, function


def python313() -> Path:
    """The interpreter the virtual environment was made from: ``make venv`` makes it from python3.13."""
    assert sys.version_info[:2] == (3, 13), "the functions run on python3.13: test with it"
    return Path(sys.executable).resolve()


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    interpreter = python313()
    workdir = tmp_path_factory.mktemp("sam")
    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{interpreter.parent}:{venv_bin}:{os.environ['PATH']}", "SAM_CLI_TELEMETRY": "0"}
    result = subprocess.run(
        [str(venv_bin / "sam"), "build", "--template", str(ROOT / "template.yaml"),
         "--build-dir", str(workdir / "build"), "--cache-dir", str(workdir / "cache"), "--no-cached"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=540,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Build Succeeded" in result.stdout
    return workdir / "build"


def test_every_handler_imports_from_the_build_output(build: Path, tmp_path: Path) -> None:
    overlay = native_overlay(tmp_path / "native")
    template = yaml_parse((build / "template.yaml").read_text())
    functions = {
        k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"
    }
    assert set(functions) == {"PlanFunction", "CheckFunction", "RenderFunction", "ReportFunction"}
    for logical, props in functions.items():
        code = build / props["CodeUri"]
        result = subprocess.run(
            [sys.executable, "-I", "-c", IMPORT_HANDLER, str(code), props["Handler"], str(overlay)],
            cwd=build, capture_output=True, text=True, check=False, timeout=120,
            env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "POWERTOOLS_TRACE_DISABLED": "1"},
        )  # fmt: skip
        assert result.returncode == 0, f"{logical}: {result.stderr[-3000:]}"
        origins = json.loads(result.stdout.strip().splitlines()[-1])
        for module, path in origins.items():
            assert Path(path).is_relative_to(code), f"{logical}: {module} came from {path}, not the build"


def test_the_runner_ships_with_the_functions_and_no_allowlist_does(build: Path) -> None:
    """A deploy of an unmodified checkout: the stack reads the allowlist a team pushes, never one
    in the bundle."""
    for function in ("PlanFunction", "CheckFunction"):
        package = build / function / "hubmirror"
        assert not list((build / function).rglob("allowlist.yaml"))
        assert (package / "allowlist" / "allowlist.schema.json").exists()
        assert (package / "runner" / "buildspec.yml").read_bytes() == (ROOT / "buildspec.yml").read_bytes()
        assert (package / "runner" / "install-tools.sh").exists()
    # the check refreshes Sigstore's trust root: the TUF client, and the TUF root it starts from
    check = build / "CheckFunction"
    assert (check / "hubmirror" / "domain" / "sigstore_tuf_root.json").read_bytes() == (
        ROOT / "functions" / "hubmirror" / "domain" / "sigstore_tuf_root.json"
    ).read_bytes()
    assert (check / "tuf" / "ngclient" / "updater.py").exists()
    assert (check / "securesystemslib" / "signer" / "__init__.py").exists()

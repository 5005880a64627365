"""``hubmirror validate``: one line on success, every problem on failure, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
        f"{path}:4: images[0].extra: unknown key 'extra'; allowed keys: source, tags, select, pinned, target, target_prefix, platforms, build_commands, build_network, max_tags, signatures, verify",
    ]
    assert "Traceback" not in result.stderr


def test_a_line_that_looks_like_it_needs_the_network_gets_a_note_not_a_failure(tmp_path: Path) -> None:
    path = tmp_path / "allowlist.yaml"
    path.write_text(
        "images:\n"
        "  - source: nginx\n"
        "    tags: ['1.27']\n"
        "    build_commands:\n"
        "      - RUN mkdir -p /cache\n"
        "      - RUN apt-get update && apt-get install -y curl\n"
        "  - source: redis\n"
        "    tags: ['7.4']\n"
        "    build_commands: ['RUN apk add --no-cache bash']\n"
        "    build_network: true\n"
    )
    result = run("validate", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{path}: OK (2 images: 2 tags, 0 pinned, 0 selectors)\n"
    assert result.stderr.splitlines() == [
        f"{path}:6: images[0].build_commands[1]: note: 'apt-get update' usually needs the network, and build lines "
        "run without one; if this line does, set build_network: true on the entry"
    ]


def test_unreadable_file_exits_2_with_a_message(tmp_path: Path) -> None:
    result = run("validate", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    assert "cannot read" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_signature_key_is_refused_with_the_entry_and_the_rule(tmp_path: Path) -> None:
    """An RSA key, and a PEM whose base64 was mangled: cosign's gate verifies ECDSA P-256 keys."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = (
        rsa.generate_private_key(65537, 2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    good = (ROOT / "tests" / "unit" / "data" / "cosign" / "cosign.pub").read_text()
    text = "images:\n"
    for n, key in enumerate((pem, good.replace("MFkwEwYH", "MFkwEwYI"), good)):
        text += f'  - source: app{n}\n    tags: ["1"]\n    verify:\n      key: |\n'
        text += "".join(f"        {line}\n" for line in key.splitlines())
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    result = run("validate", str(path))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2  # the third key, cosign's own, is good
    assert lines[0].startswith(f"{path}:5: images[0].verify.key: the key is an RSA key; hubmirror verifies ECDSA P-256")
    assert lines[1] == (
        f"{path}:18: images[1].verify.key: the key is not a readable PEM public key "
        "(its base64 or what it encodes is damaged)"
    )
    assert "Traceback" not in result.stderr


def test_version_and_help_name_every_command() -> None:
    from hubmirror import __version__

    version = run("--version")
    assert (version.returncode, version.stdout) == (0, f"hubmirror {__version__}\n")
    helped = run("--help")
    assert helped.returncode == 0
    for command in ("validate", "plan", "push", "run", "report", "history", "restore", "schema"):
        assert command in helped.stdout
    assert "exit codes: 0 good, 1 failed" in helped.stdout


def test_a_bad_argument_is_a_usage_error_with_exit_2() -> None:
    result = run("plan", "allowlist.yaml", "--format", "html")
    assert result.returncode == 2
    assert "invalid choice: 'html'" in result.stderr
    assert "Traceback" not in result.stderr


def test_push_without_aws_credentials_says_so_and_exits_2(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_REGION": "eu-west-1",  # as the AWS CLI reads it (boto3 alone would not)
    }
    result = subprocess.run(
        [str(HUBMIRROR), "push", str(ROOT / "allowlist.yaml"), "--stack", "team-mirror"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "hubmirror: reading stack team-mirror: no AWS credentials found "
        "(set AWS_PROFILE, or run `aws configure` / `aws sso login`)"
    )


def test_the_stack_name_comes_from_samconfig_as_sam_reads_it(tmp_path: Path) -> None:
    from hubmirror.cli.stack import default_stack_name

    assert default_stack_name(tmp_path) == "hubmirror"
    (tmp_path / "samconfig.toml").write_text('version = 0.1\n[default.global.parameters]\nstack_name = "mirror-a"\n')
    assert default_stack_name(tmp_path) == "mirror-a"
    (tmp_path / "samconfig.toml").write_text(
        '[default.global.parameters]\nstack_name = "a"\n[default.deploy.parameters]\nstack_name = "b"\n'
    )
    assert default_stack_name(tmp_path) == "b"
    assert default_stack_name(ROOT) == "hubmirror"


def test_schema_prints_the_allowlist_json_schema() -> None:
    import json

    from hubmirror.allowlist.schema import allowlist_schema

    result = run("schema")
    assert result.returncode == 0
    assert json.loads(result.stdout) == allowlist_schema()


def test_progress_is_a_bar_on_a_terminal_and_plain_lines_elsewhere() -> None:
    import io

    from hubmirror.cli.output import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    plain = io.StringIO()
    progress = Progress(plain)
    for done in (0, 0, 3, 4):
        progress.show(done, 4, "running")
    progress.end()
    assert plain.getvalue().splitlines() == [
        "running: 0 of 4 items done",
        "running: 3 of 4 items done",
        "running: 4 of 4 items done",
    ]
    terminal = Terminal()
    progress = Progress(terminal)
    progress.show(1, 4, "running")
    progress.end()
    assert terminal.getvalue().startswith("\r[#######.......................] 1/4 items  running")
    assert terminal.getvalue().endswith("\n")


def test_a_stack_of_another_version_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hubmirror import __version__
    from hubmirror.cli import commands
    from hubmirror.cli.stack import StackInfo

    monkeypatch.setattr(commands, "find_stack", lambda name: StackInfo(name, {"Version": "0.0.1"}))
    commands._stack("team")
    assert capsys.readouterr().err.startswith(
        f"hubmirror: warning: this is hubmirror {__version__}; stack team runs 0.0.1"
    )
    monkeypatch.setattr(commands, "find_stack", lambda name: StackInfo(name, {"Version": __version__}))
    commands._stack("team")
    assert capsys.readouterr().err == ""

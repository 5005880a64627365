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

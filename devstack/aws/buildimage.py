"""The build image of the local CodeBuild: a Debian 12 root file system, nothing else.

CodeBuild runs a buildspec inside the image the project names (``BuildImage``: Debian 12,
``debian:bookworm-YYYYMMDD``) with only what that image and the buildspec's install phase
provide (https://docs.aws.amazon.com/codebuild/latest/userguide/build-env-ref-custom-images.html).
The local CodeBuild does the same: each build runs in its own chroot of

* a **base**: ``mmdebstrap --variant=minbase bookworm`` (the packages every Debian image
  has, and no more: Python 3.11, no ``python3-yaml``), with the APT sources Debian's image
  ships;
* the **install phase's result**: the project's ``install-tools.sh`` run once in a copy of
  the base, and kept under the hash of that script and its ``tools.env``. A build's own
  install phase then runs the same script again and finds its packages there, as it would
  after installing them. Change the script (drop a package) and the next build starts
  from a new copy of the base, so a package the job needs and the script forgot fails the
  build here as it would in CodeBuild;
* an **overlay** per build on top (``/proc``, ``/dev``, ``/sys`` bound in, as a privileged
  CodeBuild container has them, ``binfmt_misc`` included for qemu), thrown away after it.

Both layers are cached under ``.cache/codebuild-image/`` (about 18 s and 1 to 2 min to make,
once per machine). ``python -m devstack.aws.buildimage`` makes them ahead of the tests.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "codebuild-image"
RUNNER = ROOT / "functions" / "hubmirror" / "runner"
SUITE = "bookworm"
#: What Debian's container image (``debian:bookworm``) has as its APT sources.
DEBIAN_SOURCES = """\
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
#: Where CodeBuild puts the source (``CODEBUILD_SRC_DIR``) inside the build container.
SRC_DIR = "/codebuild/output/src"


class ImageError(RuntimeError):
    """The build image could not be made."""


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _run(args: list[str], **kwargs: object) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise ImageError(f"{' '.join(args[:3])} failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-3000:]}")


def base() -> Path:
    """The minimal Debian 12 root file system (made once)."""
    path = CACHE / f"{SUITE}-minbase"
    with _locked("base"):
        if (path / "etc" / "debian_version").exists():
            return path
        if shutil.which("mmdebstrap") is None:
            raise ImageError("mmdebstrap is not installed (apt-get install mmdebstrap; make system does it)")
        work = Path(tempfile.mkdtemp(prefix="base-", dir=CACHE))
        try:
            _run(["mmdebstrap", "--variant=minbase", "--quiet", SUITE, str(work / "root")])
            root = work / "root"
            (root / "etc" / "apt" / "sources.list").unlink(missing_ok=True)
            (root / "etc" / "apt" / "sources.list.d" / "debian.sources").write_text(DEBIAN_SOURCES)
            for name in ("resolv.conf", "hosts"):  # the container's network settings, as Docker gives them
                (root / "etc" / name).unlink(missing_ok=True)
                shutil.copy(Path("/etc") / name, root / "etc" / name)
            shutil.rmtree(path, ignore_errors=True)
            root.rename(path)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return path


def tools_key(runner: Path = RUNNER) -> str:
    """The install phase's identity: the hash of the script and the versions it reads."""
    digest = hashlib.sha256()
    for name in ("install-tools.sh", "tools.env"):
        digest.update(name.encode() + b"\0" + (runner / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _mounted(root: Path) -> Iterator[Path]:
    """``/proc``, ``/dev`` and ``/sys`` of this machine bound into ``root`` for a while."""
    mounted: list[Path] = []
    try:
        for name in ("proc", "dev", "sys"):
            point = root / name
            point.mkdir(exist_ok=True)
            _run(["mount", "--rbind", f"/{name}", str(point)])
            _run(["mount", "--make-rslave", str(point)])
            mounted.append(point)
        yield root
    finally:
        for point in reversed(mounted):
            subprocess.run(["umount", "-R", "-l", str(point)], check=False, capture_output=True)


def chroot_command(root: Path, command: str, env: Mapping[str, str], cwd: str) -> list[str]:
    """The argv that runs ``command`` with ``bash`` inside ``root``, with exactly ``env``."""
    assignments = [f"{k}={v}" for k, v in env.items()]
    return ["chroot", str(root), "/usr/bin/env", "-i", *assignments, "bash", "-c", f"cd {cwd} && {command}"]


def with_tools(runner: Path = RUNNER) -> Path:
    """The base after the install phase of ``runner/install-tools.sh`` (made once per script)."""
    key = tools_key(runner)
    path = CACHE / f"{SUITE}-tools-{key}"
    source = base()
    with _locked("tools"):
        if (path / ".complete").exists():
            return path
        work = Path(tempfile.mkdtemp(prefix="tools-", dir=CACHE))
        try:
            root = work / "root"
            _run(["cp", "-a", "--reflink=auto", str(source), str(root)])
            shutil.copytree(runner, root / "install" / "runner")
            env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}
            with _mounted(root):
                command = chroot_command(root, "bash /install/runner/install-tools.sh", env, "/")
                _run(command)
            shutil.rmtree(root / "install")
            (root / ".complete").write_text(key)
            shutil.rmtree(path, ignore_errors=True)
            root.rename(path)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return path


@contextlib.contextmanager
def build_root(lower: Path, scratch: Path) -> Iterator[Path]:
    """A writable root for one build: an overlay on ``lower``, with ``/proc``, ``/dev``, ``/sys``."""
    upper, work, merged = scratch / "upper", scratch / "work", scratch / "root"
    for directory in (upper, work, merged):
        directory.mkdir(parents=True)
    _run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower},upperdir={upper},workdir={work}", str(merged)])
    try:
        with _mounted(merged):
            yield merged
    finally:
        subprocess.run(["umount", "-l", str(merged)], check=False, capture_output=True)


def main() -> int:
    if os.geteuid() != 0:
        print("the build image needs root (mmdebstrap, chroot, mount)", file=sys.stderr)
        return 1
    current = with_tools()
    for stale in CACHE.glob(f"{SUITE}-tools-*"):  # layers of earlier versions of the script
        if stale != current:
            shutil.rmtree(stale, ignore_errors=True)
    print(f"build image: {current}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Real OCI images made without Docker, pushed straight to a local registry.

An image here is a busybox-static root file system (amd64 or arm64, from Debian's
``busybox-static`` package) plus a small layer of its own, so every image runs ``/bin/sh``
for a real ``RUN`` line, images share their base layer, and each tag has its own digest.
Layers are deterministic gzip'd tars, so the same content always has the same digest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CACHE = Path(__file__).resolve().parents[2] / ".cache"
APPLETS = ("sh", "ls", "cat", "echo", "mkdir", "chmod", "touch", "test", "true", "env", "id", "stat", "rm", "cp")


class SeedError(RuntimeError):
    """A seed image could not be made or pushed."""


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def busybox_binary(arch: str) -> Path:
    """Path of Debian's static busybox for ``arch`` (``amd64`` installed, ``arm64`` fetched once)."""
    if arch == "amd64":
        path = Path("/bin/busybox")
        if not path.exists():
            raise SeedError("busybox-static is not installed (apt-get install busybox-static)")
        return path
    target = CACHE / f"busybox-{arch}" / "bin" / "busybox"
    if target.exists():
        return target
    work = Path(tempfile.mkdtemp(prefix="busybox-"))
    try:
        subprocess.run(
            ["apt-get", "download", f"busybox-static:{arch}"],
            cwd=work,
            check=True,
            capture_output=True,
        )
        deb = next(work.glob("*.deb"))
        CACHE.mkdir(parents=True, exist_ok=True)  # dpkg-deb -x makes the last directory only
        subprocess.run(["dpkg-deb", "-x", str(deb), str(target.parent.parent)], check=True)
    except (subprocess.CalledProcessError, StopIteration) as exc:
        raise SeedError(
            f"cannot fetch busybox-static:{arch}; run `dpkg --add-architecture {arch} && apt-get update`"
        ) from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def tar_layer(files: dict[str, bytes], *, symlinks: dict[str, str] | None = None, mode: int = 0o644) -> bytes:
    """A deterministic gzip'd tar holding ``files`` and ``symlinks`` (path -> target)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({str(Path(p).parent) for p in [*files, *(symlinks or {})]} - {"."})
        for directory in dirs:
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
        for path, target in sorted((symlinks or {}).items()):
            info = tarfile.TarInfo(path)
            info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, 0
            tar.addfile(info)
    return gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)


@cache
def base_layer(arch: str) -> bytes:
    """The busybox root file system layer for ``arch``; cached, identical for every image."""
    binary = busybox_binary(arch).read_bytes()
    links = {f"bin/{applet}": "busybox" for applet in APPLETS}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("bin", "etc", "tmp"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755, 0
            tar.addfile(info)
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode, info.mtime = len(binary), 0o755, 0
        tar.addfile(info, io.BytesIO(binary))
        for path, target in sorted(links.items()):
            info = tarfile.TarInfo(path)
            info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, 0
            tar.addfile(info)
    return gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)


@cache
def _family_layer(family: str, arch: str) -> bytes:
    payload = (f"{family}/{arch}\n" * 4096).encode()  # ~ tens of KB, like a small package set
    return tar_layer({f"usr/share/{family.replace('/', '_')}/data": payload})


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return _digest(self.data)

    def descriptor(self, **extra: object) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data), **extra}


@dataclass(frozen=True)
class PlatformImage:
    """One single-platform image: its config, layers and manifest."""

    platform: str
    config: Blob
    layers: tuple[Blob, ...]
    manifest: Blob


def platform_image(platform: str, marker: str, *, extra_layers: int = 0, family: str | None = None) -> PlatformImage:
    """A busybox image for ``platform`` whose own layer holds ``/etc/seed`` = ``marker``.

    Images of the same ``family`` also share a middle layer, as the tags of one
    repository usually share more than the distribution's base.
    """
    os_name, arch, *variant = platform.split("/")
    layers = [Blob(OCI_LAYER, base_layer(arch))]
    if family is not None:
        layers.append(Blob(OCI_LAYER, _family_layer(family, arch)))
    for n in range(extra_layers):
        layers.append(Blob(OCI_LAYER, tar_layer({f"opt/layer{n}": f"{marker}#{n}\n".encode()})))
    layers.append(Blob(OCI_LAYER, tar_layer({"etc/seed": f"{marker}\n".encode()})))
    config_doc: dict[str, object] = {
        "architecture": arch,
        "os": os_name,
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {
            "type": "layers",
            "diff_ids": [_digest(gzip.decompress(layer.data)) for layer in layers],
        },
        "history": [{"created_by": f"devstack seed {marker}"} for _ in layers],
    }
    if variant:
        config_doc["variant"] = variant[0]
    config = Blob(OCI_CONFIG, json.dumps(config_doc, sort_keys=True).encode())
    manifest_doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    manifest = Blob(OCI_MANIFEST, json.dumps(manifest_doc, sort_keys=True).encode())
    return PlatformImage(platform=platform, config=config, layers=tuple(layers), manifest=manifest)


def index_of(images: list[PlatformImage]) -> Blob:
    """An OCI image index listing ``images`` with their platforms."""
    manifests = []
    for image in images:
        os_name, arch, *variant = image.platform.split("/")
        platform: dict[str, str] = {"os": os_name, "architecture": arch}
        if variant:
            platform["variant"] = variant[0]
        manifests.append(image.manifest.descriptor(platform=platform))
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    return Blob(OCI_INDEX, json.dumps(doc, sort_keys=True).encode())


class Pusher:
    """Pushes blobs and manifests to a registry, with the hub's token auth or basic auth."""

    def __init__(self, host: str, username: str, password: str) -> None:
        self.base = f"http://{host}"
        self.auth = (username, password)
        self.session = requests.Session()
        self._tokens: dict[str, str] = {}

    def _authorise(self, response: requests.Response, scope: str) -> dict[str, str]:
        challenge = response.headers.get("WWW-Authenticate", "")
        if challenge.lower().startswith("basic"):
            return {}
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        token = self.session.get(
            params["realm"], params={"service": params["service"], "scope": scope}, auth=self.auth, timeout=30
        )
        token.raise_for_status()
        self._tokens[scope] = token.json()["token"]
        return {"Authorization": f"Bearer {self._tokens[scope]}"}

    def _request(self, method: str, url: str, repository: str, **kwargs: object) -> requests.Response:
        scope = f"repository:{repository}:pull,push,delete"
        headers = dict(kwargs.pop("headers", {}) or {})  # type: ignore[call-overload]
        if scope in self._tokens:
            headers["Authorization"] = f"Bearer {self._tokens[scope]}"
        response = self.session.request(method, url, headers=headers, auth=None, timeout=60, **kwargs)  # type: ignore[arg-type]
        if response.status_code == 401:
            headers.update(self._authorise(response, scope))
            kwargs_auth = None if "Authorization" in headers else self.auth
            response = self.session.request(method, url, headers=headers, auth=kwargs_auth, timeout=60, **kwargs)  # type: ignore[arg-type]
        return response

    def blob(self, repository: str, blob: Blob) -> None:
        url = f"{self.base}/v2/{repository}/blobs/{blob.digest}"
        if self._request("HEAD", url, repository).status_code == 200:
            return
        start = self._request("POST", f"{self.base}/v2/{repository}/blobs/uploads/", repository)
        if start.status_code != 202:
            raise SeedError(f"blob upload to {repository} refused: {start.status_code} {start.text}")
        location = start.headers["Location"]
        if location.startswith("/"):
            location = self.base + location
        sep = "&" if "?" in location else "?"
        done = self._request(
            "PUT",
            f"{location}{sep}digest={blob.digest}",
            repository,
            data=blob.data,
            headers={"Content-Type": "application/octet-stream"},
        )
        if done.status_code != 201:
            raise SeedError(f"blob upload to {repository} failed: {done.status_code} {done.text}")

    def manifest(self, repository: str, reference: str, blob: Blob) -> str:
        url = f"{self.base}/v2/{repository}/manifests/{reference}"
        response = self._request("PUT", url, repository, data=blob.data, headers={"Content-Type": blob.media_type})
        if response.status_code != 201:
            raise SeedError(f"manifest push {repository}:{reference} failed: {response.status_code} {response.text}")
        return blob.digest

    def delete_manifest(self, repository: str, digest: str) -> None:
        url = f"{self.base}/v2/{repository}/manifests/{digest}"
        response = self._request("DELETE", url, repository)
        if response.status_code != 202:
            raise SeedError(f"delete {repository}@{digest} failed: {response.status_code} {response.text}")

    def image(self, repository: str, tag: str, image: PlatformImage) -> str:
        for blob in (*image.layers, image.config):
            self.blob(repository, blob)
        return self.manifest(repository, tag, image.manifest)

    def multi(self, repository: str, tag: str, images: list[PlatformImage]) -> str:
        """Push every platform image by digest, then the index under ``tag``; returns its digest."""
        for image in images:
            for blob in (*image.layers, image.config):
                self.blob(repository, blob)
            self.manifest(repository, image.manifest.digest, image.manifest)
        return self.manifest(repository, tag, index_of(images))


def seed(pusher: Pusher, repository: str, tag: str, platforms: list[str], *, marker: str | None = None) -> str:
    """Push a busybox image for ``platforms`` as ``repository:tag``; a list of two or more
    platforms makes an OCI index. Returns the digest the tag points at."""
    label = marker or f"{repository}:{tag}"
    images = [platform_image(p, label) for p in platforms]
    if len(images) == 1:
        return pusher.image(repository, tag, images[0])
    return pusher.multi(repository, tag, images)

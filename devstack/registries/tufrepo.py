"""A TUF repository that publishes a Sigstore ``trusted_root.json``, as Sigstore's does.

Sigstore serves its trust root from https://tuf-repo-cdn.sigstore.dev, a TUF repository
(https://theupdateframework.github.io/specification/latest/) with consistent snapshots: the
root metadata at ``N.root.json``, ``timestamp.json``, ``N.snapshot.json`` and
``N.targets.json``, and each target at ``targets/<sha256>.<name>``. This one is made with
python-tuf's metadata API and its own keys (one per role), so a test holds its root metadata
(:attr:`TufRepository.root_bytes`, what a client bootstraps from) and can rotate the root,
let metadata expire, or alter a target after signing, and see what the client does. It is
served from a directory over HTTP on 127.0.0.1, and counts the requests it answers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]  # re-exported, untyped
from tuf.api.metadata import (  # type: ignore[attr-defined]  # re-exported from tuf.api._payload
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from devstack.registries.proxy import QuietServer

ROLES = (Root.type, Timestamp.type, Snapshot.type, Targets.type)
TRUSTED_ROOT = "trusted_root.json"


class TufRepository:
    """A TUF repository with one target, ``trusted_root.json``, served on 127.0.0.1."""

    def __init__(self, directory: Path, trusted_root: bytes, *, days: int = 30) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "targets").mkdir(exist_ok=True)
        self.signers = {role: CryptoSigner.generate_ecdsa() for role in ROLES}
        self.expires = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=days)
        root = Root(expires=self.expires, consistent_snapshot=True)
        for role, signer in self.signers.items():
            root.add_key(signer.public_key, role)
        self.root = Metadata(root)
        self.root.sign(self.signers[Root.type])
        self.root_bytes = self._write(self.root, f"{root.version}.root.json")
        self.targets = Metadata(Targets(expires=self.expires))
        self.snapshot = Metadata(Snapshot(expires=self.expires))
        self.timestamp = Metadata(Timestamp(expires=self.expires))
        self.requests: list[str] = []
        self._server: QuietServer | None = None
        self.publish(trusted_root)

    def publish(self, trusted_root: bytes) -> None:
        """A new version of the trust root: the target, then targets, snapshot and timestamp."""
        digest = hashlib.sha256(trusted_root).hexdigest()
        (self.directory / "targets" / f"{digest}.{TRUSTED_ROOT}").write_bytes(trusted_root)
        targets = self.targets.signed
        targets.targets[TRUSTED_ROOT] = TargetFile.from_data(TRUSTED_ROOT, trusted_root, ["sha256"])
        targets.version += 1
        self._sign_and_write(self.targets, f"{targets.version}.targets.json")
        snapshot = self.snapshot.signed
        snapshot.meta["targets.json"] = MetaFile(version=targets.version)
        snapshot.version += 1
        self._sign_and_write(self.snapshot, f"{snapshot.version}.snapshot.json")
        timestamp = self.timestamp.signed
        timestamp.snapshot_meta = MetaFile(version=snapshot.version)
        timestamp.version += 1
        self._sign_and_write(self.timestamp, "timestamp.json")

    def rotate_root(self) -> None:
        """A new root (version + 1) with a new timestamp key, signed by the old and the new root key."""
        root = self.root.signed
        old = self.signers[Root.type]
        self.signers[Root.type] = CryptoSigner.generate_ecdsa()
        self.signers[Timestamp.type] = CryptoSigner.generate_ecdsa()
        for role in (Root.type, Timestamp.type):
            for keyid in list(root.roles[role].keyids):
                root.revoke_key(keyid, role)
            root.add_key(self.signers[role].public_key, role)
        root.version += 1
        self.root.signatures.clear()
        self.root.sign(old, append=True)
        self.root.sign(self.signers[Root.type], append=True)
        self._write(self.root, f"{root.version}.root.json")
        self.timestamp.signed.version += 1
        self._sign_and_write(self.timestamp, "timestamp.json")

    def expire_timestamp(self) -> None:
        """A timestamp whose expiry has passed, correctly signed: a frozen or stale mirror."""
        self.timestamp.signed.expires = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1)
        self.timestamp.signed.version += 1
        self._sign_and_write(self.timestamp, "timestamp.json")

    def tamper_target(self) -> None:
        """The published trust root altered after it was signed for (a compromised CDN): one
        byte changed, its length kept."""
        for path in (self.directory / "targets").glob(f"*.{TRUSTED_ROOT}"):
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0x01
            path.write_bytes(bytes(data))

    def _sign_and_write(self, metadata: Metadata[Any], name: str) -> None:
        metadata.signatures.clear()
        metadata.sign(self.signers[metadata.signed.type])
        self._write(metadata, name)

    def _write(self, metadata: Metadata[Any], name: str) -> bytes:
        data = metadata.to_bytes(JSONSerializer(compact=False))
        (self.directory / name).write_bytes(data)
        return data

    # -- serving -------------------------------------------------------------------------------

    def start(self) -> TufRepository:
        repository = self

        class Handler(SimpleHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                repository.requests.append(self.path)
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = QuietServer(("127.0.0.1", 0), partial(Handler, directory=str(self.directory)))
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

"""A Distribution registry (Debian's ``docker-registry``) run as a local server.

Two flavours play the two sides of hubmirror:

* the *hub*: bearer-token auth whose realm is the hub front's ``/token`` endpoint, so the
  challenge looks exactly like Docker Hub's;
* the *ECR*: basic auth with the user name and password moto's ``GetAuthorizationToken``
  hands out (``AWS`` / ``<account>-auth-token``).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import yaml

from devstack.procs import StackError, free_port, start_process, stop_process, wait_http

REGISTRY_BINARY = "docker-registry"


@dataclass
class TokenAuth:
    """Token-auth settings: the realm URL, the service name and the issuer's certificate."""

    realm: str
    service: str
    issuer: str
    cert_pem: Path


@dataclass
class BasicAuth:
    """Basic-auth settings: one user and password."""

    username: str
    password: str


@dataclass
class Registry:
    """One registry process on 127.0.0.1 with its own storage directory."""

    workdir: Path
    auth: TokenAuth | BasicAuth | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the registry host as image references spell it."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def _config(self) -> dict[str, object]:
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.workdir / "data")},
                "delete": {"enabled": True},
                "cache": {"blobdescriptor": "inmemory"},
            },
            "http": {"addr": self.host, "secret": "devstack-not-a-secret"},
            # Docker Hub serves, and ECR stores, images whose layers list ``urls`` (the foreign
            # layers of every Windows image name mcr.microsoft.com). Distribution 2.7 and later
            # refuse any layer URL unless a pattern allows it (distribution/distribution#2795;
            # https://distribution.github.io/distribution/about/configuration/#validation).
            "validation": {"manifests": {"urls": {"allow": ["^https?://"]}}},
        }
        if isinstance(self.auth, TokenAuth):
            config["auth"] = {
                "token": {
                    "realm": self.auth.realm,
                    "service": self.auth.service,
                    "issuer": self.auth.issuer,
                    "rootcertbundle": str(self.auth.cert_pem),
                }
            }
        elif isinstance(self.auth, BasicAuth):
            htpasswd = self.workdir / "htpasswd"
            hashed = bcrypt.hashpw(self.auth.password.encode(), bcrypt.gensalt(rounds=4)).decode()
            htpasswd.write_text(f"{self.auth.username}:{hashed}\n")
            config["auth"] = {"htpasswd": {"realm": "basic-realm", "path": str(htpasswd)}}
        return config

    def start(self) -> Registry:
        if shutil.which(REGISTRY_BINARY) is None:
            raise StackError(f"{REGISTRY_BINARY} is not installed (apt-get install docker-registry)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "config.yml"
        config_path.write_text(yaml.safe_dump(self._config()))
        self.proc = start_process([REGISTRY_BINARY, "serve", str(config_path)], log=self.workdir / "registry.log")
        wait_http(f"{self.url}/v2/", proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

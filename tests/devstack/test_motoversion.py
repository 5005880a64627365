"""devstack's moto extensions refuse a moto they were not written for, and say so."""

from __future__ import annotations

import re
from pathlib import Path

import moto
import pytest

from devstack.aws import mapruns, sfnerrors
from devstack.aws.motoversion import MOTO_VERSION, MotoVersionError

#: pure: no network, as in the unit tests
pytestmark = pytest.mark.usefixtures("no_network")

ROOT = Path(__file__).resolve().parents[2]


def test_the_version_the_extensions_were_written_for_is_the_one_pinned() -> None:
    pin = re.search(r'"moto\[server\]==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert pin is not None
    assert pin.group(1) == MOTO_VERSION == moto.__version__


def test_another_moto_is_refused_before_anything_is_patched(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl

    before = ErrorEqualsDecl._eval_body
    monkeypatch.setattr(moto, "__version__", "5.9.0")
    with pytest.raises(
        MotoVersionError, match=r"devstack\.aws\.sfnerrors patches moto 5\.2\.5's internals, and this is moto 5\.9\.0"
    ):
        sfnerrors.install()
    with pytest.raises(MotoVersionError, match=r"install moto\[server\]==5\.2\.5"):
        mapruns.install()
    assert ErrorEqualsDecl._eval_body is before


def test_the_dispatcher_resolves_each_host_as_moto_does_and_only_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from devstack.aws.iam import dispatcher

    kept, plain = dispatcher(), DomainDispatcherApplication(create_backend_app)
    hosts = [
        "s3.us-east-1.amazonaws.com",
        "states.us-east-1.amazonaws.com",
        "codebuild.us-east-1.amazonaws.com",
        "s3",
        "nothing.example",
        None,
    ]
    assert [kept.get_backend_for_host(h) for h in hosts] == [plain.get_backend_for_host(h) for h in hosts]

    def listed() -> list[str]:
        raise AssertionError("moto's modules listed again for a host already resolved")

    monkeypatch.setattr(backends, "list_of_moto_modules", listed)
    assert kept.get_backend_for_host("s3.us-east-1.amazonaws.com") == "s3"

"""The moto version devstack's extensions were written for.

``lambdas``, ``codebuild``, ``mapruns``, ``sfnerrors`` and ``s3objects`` replace or wrap internals of moto
(its Lambda backend's ``invoke``, its Step Functions service factory, its Map run and error
handling, its S3 objects), which change between releases without notice. Each refuses to install on
another version, saying so, rather than misbehave in ways a test would take for
hubmirror's own.
"""

from __future__ import annotations

#: Keep equal to the ``moto[server]==`` pin in pyproject.toml (a unit test checks).
MOTO_VERSION = "5.2.5"


class MotoVersionError(RuntimeError):
    """The installed moto is not the one the extensions were written for."""


def require_moto(extension: str) -> None:
    """Raise :class:`MotoVersionError` unless the installed moto is :data:`MOTO_VERSION`."""
    import moto

    found = str(getattr(moto, "__version__", "unknown"))
    if found != MOTO_VERSION:
        raise MotoVersionError(
            f"devstack.aws.{extension} patches moto {MOTO_VERSION}'s internals, and this is moto {found}: "
            f"install moto[server]=={MOTO_VERSION} (pyproject.toml), or port devstack.aws.{extension} to {found} "
            "and change MOTO_VERSION in devstack/aws/motoversion.py"
        )

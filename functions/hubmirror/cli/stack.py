"""A deployed stack's resources, found from its outputs as ``sam`` finds them."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from hubmirror.adapters import aws

DEFAULT_STACK = "hubmirror"


class AccessError(RuntimeError):
    """AWS could not be reached or refused: the message says which call, and why, in words."""


def aws_problem(exc: BaseException, doing: str) -> AccessError:
    """An AWS failure in plain words: what was being done, and what AWS said."""
    if isinstance(exc, NoCredentialsError):
        why = "no AWS credentials found (set AWS_PROFILE, or run `aws configure` / `aws sso login`)"
    elif isinstance(exc, NoRegionError):
        why = "no AWS region set (set AWS_DEFAULT_REGION, or region in your AWS profile)"
    elif isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        why = f"AWS answered {error.get('Code', 'an error')}: {error.get('Message', '')}".rstrip(": ")
    else:
        why = str(exc) or type(exc).__name__
    return AccessError(f"{doing}: {why}")


def default_stack_name(directory: Path | None = None) -> str:
    """The stack name ``sam deploy`` uses from ``samconfig.toml`` (``[default.deploy.parameters]``, else
    ``[default.global.parameters]``), else ``hubmirror``."""
    path = (directory or Path.cwd()) / "samconfig.toml"
    try:
        config = tomllib.loads(path.read_text()).get("default", {})
    except (OSError, tomllib.TOMLDecodeError):
        return DEFAULT_STACK
    for section in ("deploy", "global"):
        name = config.get(section, {}).get("parameters", {}).get("stack_name")
        if name:
            return str(name)
    return DEFAULT_STACK


@dataclass(frozen=True)
class StackInfo:
    """What the ``hubmirror`` command needs of a deployed stack (its outputs)."""

    name: str
    outputs: dict[str, str]

    def output(self, key: str) -> str:
        try:
            return self.outputs[key]
        except KeyError:
            raise AccessError(
                f"stack {self.name} has no output {key}: is it a hubmirror stack, and of this version? "
                "(deploy this version of template.yaml)"
            ) from None

    @property
    def bucket(self) -> str:
        return self.output("ArtifactsBucketName")

    @property
    def state_machine(self) -> str:
        return self.output("StateMachineArn")

    @property
    def target_registry(self) -> str:
        return self.output("TargetRepositoryPrefix").split("/", 1)[0]

    @property
    def target_prefix(self) -> str:
        return self.output("TargetRepositoryPrefix").partition("/")[2]

    @property
    def version(self) -> str | None:
        return self.outputs.get("Version")

    @property
    def runs_on_push(self) -> bool:
        return self.outputs.get("RunOnAllowlistChange", "false") == "true"


def find_stack(name: str, client: Any = None) -> StackInfo:
    """The stack's outputs (``cloudformation:DescribeStacks``); :class:`AccessError` in words."""
    try:
        stacks = (client or aws.client("cloudformation")).describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc.response.get("Error", {}).get("Message", "")):
            raise AccessError(
                f"no stack named {name} in this account and region (deploy one with `sam deploy`, "
                "or name yours with --stack)"
            ) from None
        raise aws_problem(exc, f"reading stack {name}") from None
    except BotoCoreError as exc:
        raise aws_problem(exc, f"reading stack {name}") from None
    outputs = {str(o["OutputKey"]): str(o["OutputValue"]) for o in stacks[0].get("Outputs", [])}
    return StackInfo(name, outputs)

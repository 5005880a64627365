"""A local CodeBuild for moto: builds that really run their buildspec.

moto 5 records a ``StartBuild`` and reports every build ``SUCCEEDED`` at once; it ignores
source and environment overrides, and Step Functions' ``codebuild:startBuild.sync`` is not
supported by its interpreter. :func:`install` changes three things:

* ``StartBuild`` (the API) takes the overrides (``sourceTypeOverride``,
  ``sourceLocationOverride``, ``environmentVariablesOverride``,
  ``privilegedModeOverride``) and starts a real build: the S3 source zip is downloaded and
  unpacked, the ``buildspec.yml`` found in it is parsed, and the commands of its
  ``install``, ``pre_build``, ``build`` and ``post_build`` phases run with ``bash`` in the
  source directory, inside the build image (:mod:`devstack.aws.buildimage`: a Debian 12 root
  file system holding only what the image and the install phase give), with the project's
  and the override's environment variables and nothing of this machine's, as CodeBuild
  does (a failing command fails the build; ``post_build`` still runs);
* ``BatchGetBuilds`` reports the build's real status and phases;
* Step Functions gets a ``codebuild`` service integration supporting ``startBuild.sync``:
  start the build, poll ``BatchGetBuilds`` until it ends, succeed with the build (keys in
  the PascalCase Step Functions uses) or fail with ``States.TaskFailed`` and the build as
  the cause, as on AWS.

Each build's output goes to ``<logdir>/<build-id>.log``.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import subprocess
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import boto3
import yaml
from moto.codebuild.models import CodeBuildBackend
from moto.codebuild.responses import CodeBuildResponse
from moto.core.common_types import TYPE_RESPONSE
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_factory
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
    StateTaskServiceCallback,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

from devstack.aws import buildimage
from devstack.aws.motoversion import require_moto

PHASES = ("install", "pre_build", "build", "post_build")
BUILD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _bind(function: Callable[..., bool], *args: Any) -> Callable[[], bool]:
    return lambda: function(*args)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


@dataclass
class LocalCodeBuild:
    """Runs builds for moto's CodeBuild projects on this machine."""

    logdir: Path
    aws_env: dict[str, str]
    builds: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    #: phases the next builds fail in, one a build (a fault for the tests: an image that cannot
    #: be pulled, a source that cannot be downloaded, a killed build)
    faults: list[str] = field(default_factory=list)
    #: project name -> the access key of its service role (devstack.aws.iam)
    roles: dict[str, str] = field(default_factory=dict)
    #: called with each build before it runs, once each (a test moving an upstream tag between
    #: the check and the copy, say)
    before_build: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    _fault_of: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, backend: CodeBuildBackend, params: dict[str, Any]) -> dict[str, Any]:
        name = params["projectName"]
        project = backend.codebuild_projects[name].project_metadata
        metadata = backend.start_build(name, params.get("sourceVersion"), params.get("artifactsOverride"))
        source_type = params.get("sourceTypeOverride") or project["source"]["type"]
        location = params.get("sourceLocationOverride") or project["source"].get("location")
        metadata["source"] = {"type": source_type, "location": location}
        env_vars = [
            *project["environment"].get("environmentVariables", []),
            *params.get("environmentVariablesOverride", []),
        ]
        metadata["environment"] = {**project["environment"], "environmentVariables": env_vars}
        if "privilegedModeOverride" in params:
            metadata["environment"]["privilegedMode"] = bool(params["privilegedModeOverride"])
        metadata["phases"] = [
            {"phaseType": "SUBMITTED", "phaseStatus": "SUCCEEDED", "startTime": _now(), "endTime": _now()}
        ]
        metadata["logs"] = {"deepLink": str(self.logdir / f"{metadata['id'].replace(':', '_')}.log")}
        with self._lock:
            self.builds[metadata["id"]] = metadata
            self.started.append(metadata["id"])
        threading.Thread(target=self._run, args=(metadata,), name=f"codebuild-{metadata['id']}", daemon=True).start()
        return metadata

    def _run(self, build: dict[str, Any]) -> None:
        began = time.monotonic()
        log_path = Path(build["logs"]["deepLink"])
        log_path.parent.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="codebuild-"))
        status = "SUCCEEDED"
        with self._lock:
            fault = self.faults.pop(0) if self.faults else None
            hooks, self.before_build[:] = list(self.before_build), []
        for hook in hooks:
            hook(build)
        if fault:
            self._fault_of[build["id"]] = fault
        try:
            with log_path.open("w") as log:
                if not self._phase(build, "DOWNLOAD_SOURCE", lambda: self._download(build, workdir / "src", log)):
                    raise RuntimeError("the source could not be downloaded")
                spec = yaml.safe_load((workdir / "src" / "buildspec.yml").read_text())
                image: list[Path] = []
                if not self._phase(build, "PROVISIONING", lambda: image.append(self._image(workdir / "src", log))):
                    raise RuntimeError("the build image could not be provisioned")
                with buildimage.build_root(image[0], workdir / "overlay") as root:
                    shutil.copytree(workdir / "src", root / buildimage.SRC_DIR.lstrip("/"), symlinks=True)
                    env = self._environment(build, spec, buildimage.SRC_DIR)
                    failed = False
                    for phase in PHASES:
                        commands = ((spec.get("phases") or {}).get(phase) or {}).get("commands") or []
                        if not commands or (failed and phase != "post_build"):
                            continue
                        ok = self._phase(build, phase.upper(), _bind(self._commands, commands, env, root, log))
                        failed = failed or not ok
                status = "FAILED" if failed else "SUCCEEDED"
        except Exception as exc:  # a broken source or buildspec fails the build, as on CodeBuild
            status = "FAILED"
            with log_path.open("a") as log:
                log.write(f"[Container] build failed before its commands: {type(exc).__name__}: {exc}\n")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        self.seconds[build["id"]] = time.monotonic() - began
        build["phases"].append({"phaseType": "COMPLETED", "startTime": _now()})
        build["currentPhase"] = "COMPLETED"
        build["endTime"] = _now()
        build["buildComplete"] = True
        build["buildStatus"] = status

    def _phase(self, build: dict[str, Any], name: str, work: Callable[[], object]) -> bool:
        build["currentPhase"] = name
        entry: dict[str, Any] = {"phaseType": name, "startTime": _now()}
        build["phases"].append(entry)
        started = time.monotonic()
        result = False if self._fault_of.get(build["id"]) == name else work()
        ok = result is not False
        entry.update(
            endTime=_now(),
            durationInSeconds=int(time.monotonic() - started),
            phaseStatus="SUCCEEDED" if ok else "FAILED",
        )
        return ok

    def _role_credentials(self, build: dict[str, Any]) -> dict[str, str]:
        """The service role's credentials, as CodeBuild gives them to a build."""
        key = self.roles.get(str(build.get("projectName", "")))
        return {"AWS_ACCESS_KEY_ID": key} if key else {}

    def _download(self, build: dict[str, Any], target: Path, log: TextIO) -> None:
        source = build["source"]
        if source["type"] != "S3":
            raise ValueError(f"only S3 sources are supported locally, not {source['type']}")
        bucket, _, key = str(source["location"]).partition("/")
        credentials = {**self.aws_env, **self._role_credentials(build)}
        s3 = boto3.client(
            "s3",
            endpoint_url=credentials["AWS_ENDPOINT_URL"],
            region_name=credentials["AWS_DEFAULT_REGION"],
            aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        )
        # CodeBuild checks the source bucket's identity with the service role before it
        # downloads: https://docs.aws.amazon.com/codebuild/latest/userguide/setting-up-service-role.html
        s3.get_bucket_acl(Bucket=bucket)
        s3.get_bucket_location(Bucket=bucket)
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        target.mkdir(parents=True)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                path = target / info.filename
                if not path.resolve().is_relative_to(target.resolve()):
                    raise ValueError(f"unsafe path in the source zip: {info.filename}")
                archive.extract(info, target)
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    path.chmod(mode)
        log.write(f"[Container] downloaded s3://{bucket}/{key} ({len(data)} bytes)\n")

    def _image(self, src: Path, log: TextIO) -> Path:
        """The build image: Debian 12 after the install phase of the bundle's own script."""
        image = buildimage.with_tools(src / "hubmirror" / "runner")
        log.write(f"[Container] image {image.name}\n")
        return image

    def _environment(self, build: dict[str, Any], spec: dict[str, Any], src: str) -> dict[str, str]:
        env = {
            "PATH": BUILD_PATH,
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "CODEBUILD_BUILD_ID": build["id"],
            "CODEBUILD_BUILD_ARN": build["arn"],
            "CODEBUILD_SRC_DIR": src,
            "CODEBUILD_INITIATOR": build.get("initiator", "local"),
            # Where CodeBuild's container credentials endpoint (169.254.170.2) serves the
            # service role's credentials: the SDKs find them through this variable. Here the
            # role's key comes in the environment as well; nothing answers at that address.
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": f"/v2/credentials/{build['id'].rpartition(':')[2]}",
            **self.aws_env,
            **self._role_credentials(build),
        }
        for variable in ((spec.get("env") or {}).get("variables") or {}).items():
            env[str(variable[0])] = str(variable[1])
        for variable in build["environment"].get("environmentVariables", []):
            env[variable["name"]] = variable["value"]
        return env

    def _commands(self, commands: list[str], env: dict[str, str], root: Path, log: TextIO) -> bool:
        for command in commands:
            log.write(f"[Container] Running command {command}\n")
            log.flush()
            proc = subprocess.run(
                buildimage.chroot_command(root, command, env, str(env["CODEBUILD_SRC_DIR"])),
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
            if proc.returncode != 0:
                log.write(f"[Container] Command did not exit successfully {command} exit status {proc.returncode}\n")
                return False
        return True

    def duration(self, build_id: str) -> float:
        """Seconds a build ran, from its source download to its end."""
        return self.seconds.get(build_id, 0.0)

    def wait_idle(self, timeout: float = 600) -> None:
        """Wait until no build is running (tests call this before stopping the stack)."""
        deadline = time.monotonic() + timeout
        while any(b["buildStatus"] == "IN_PROGRESS" for b in list(self.builds.values())):
            if time.monotonic() > deadline:
                raise TimeoutError("CodeBuild builds still running")
            time.sleep(0.1)


_installed: dict[str, LocalCodeBuild] = {}
_original_start_build = CodeBuildResponse.start_build
_original_batch_get_builds = CodeBuildBackend.batch_get_builds
_original_service_for = state_task_service_factory.state_task_service_for


def _start_build(self: CodeBuildResponse) -> TYPE_RESPONSE:
    local = _installed.get("local")
    if local is None:
        return _original_start_build(self)  # type: ignore[return-value]
    params = json.loads(self.body)
    if params.get("projectName") not in self.codebuild_backend.codebuild_projects:
        return _original_start_build(self)  # type: ignore[return-value]
    build = local.start(self.codebuild_backend, params)
    return 200, {}, json.dumps({"build": build})


def _batch_get_builds(self: CodeBuildBackend, ids: list[str]) -> list[dict[str, Any]]:
    local = _installed.get("local")
    if local is None:
        return _original_batch_get_builds(self, ids)
    return [local.builds[i] for i in ids if i in local.builds]


def _rekey(value: Any, first: Callable[[str], str]) -> Any:
    """Recase the first letter of every key: the SDK's camelCase <-> Step Functions' PascalCase."""
    if isinstance(value, dict):
        return {first(k[:1]) + k[1:]: _rekey(v, first) for k, v in value.items()}
    if isinstance(value, list):
        return [_rekey(v, first) for v in value]
    return value


class StateTaskServiceCodeBuild(StateTaskServiceCallback):
    """``arn:aws:states:::codebuild:startBuild[.sync]`` for moto's Step Functions."""

    def __init__(self) -> None:
        super().__init__(supported_integration_patterns={ResourceCondition.Sync})  # type: ignore[arg-type]

    def _get_supported_parameters(self) -> set[str] | None:
        if self.resource.api_action.lower() != "startbuild":
            return None
        return {
            "ProjectName",
            "SourceTypeOverride",
            "SourceLocationOverride",
            "SourceVersion",
            "EnvironmentVariablesOverride",
            "PrivilegedModeOverride",
            "TimeoutInMinutesOverride",
        }

    def _eval_service_task(
        self, env: Any, resource_runtime_part: Any, normalised_parameters: dict[str, Any], state_credentials: Any
    ) -> None:
        client: Any = boto_client_for(
            region=resource_runtime_part.region, service="codebuild", state_credentials=state_credentials
        )
        response = client.start_build(**_rekey(normalised_parameters, str.lower))
        response.pop("ResponseMetadata", None)
        env.stack.append(_rekey(json.loads(json.dumps(response, default=str)), str.upper))

    def _eval_integration_pattern(
        self, env: Any, resource_runtime_part: Any, normalised_parameters: dict[str, Any], state_credentials: Any
    ) -> None:
        """``.sync``: wait for the build, then succeed with it or fail ``States.TaskFailed``.

        moto's own version ends every such task ``States.Runtime`` (``'NoneType' object has
        no attribute 'interrupt_all'``: it releases a task-token endpoint a ``.sync`` task
        does not have), successful builds included; a Catch on ``States.ALL`` then hid it.
        This one has no task token to wait for, as AWS's ``startBuild.sync`` has none.
        """
        started = env.stack.pop()
        self.timeout.eval(env=env)
        timeout_seconds = env.stack.pop()
        env.stack.append(started)
        resolver = self._build_sync_resolver(
            env=env,
            resource_runtime_part=resource_runtime_part,
            normalised_parameters=normalised_parameters,
            state_credentials=state_credentials,
        )
        outcome = self._eval_sync(
            env=env,
            sync_resolver=resolver,
            timeout_seconds=timeout_seconds,
            callback_endpoint=None,
            heartbeat_endpoint=None,
        )
        env.stack.append(outcome)

    def _build_sync_resolver(
        self, env: Any, resource_runtime_part: Any, normalised_parameters: dict[str, Any], state_credentials: Any
    ) -> Callable[[], Any]:
        client: Any = boto_client_for(
            region=resource_runtime_part.region, service="codebuild", state_credentials=state_credentials
        )
        started = env.stack.pop()
        build_id = started["Build"]["Id"]

        def resolve() -> dict[str, Any] | None:
            builds = client.batch_get_builds(ids=[build_id])["builds"]
            if not builds or builds[0]["buildStatus"] == "IN_PROGRESS":
                return None
            build = _rekey(json.loads(json.dumps(builds[0], default=str)), str.upper)
            if build["BuildStatus"] == "SUCCEEDED":
                return {"Build": build}
            raise FailureEventException(
                FailureEvent(
                    env=env,
                    error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                    event_type=HistoryEventType.TaskFailed,
                    event_details=EventDetails(  # type: ignore[typeddict-item]
                        taskFailedEventDetails=TaskFailedEventDetails(
                            resource=self._get_sfn_resource(),
                            resourceType=self._get_sfn_resource_type(),
                            error=StatesErrorNameType.StatesTaskFailed.to_name(),
                            cause=to_json_str({"Build": build}),
                        )
                    ),
                )
            )

        return resolve


def _service_for(service_name: str) -> Any:
    if service_name == "codebuild":
        return StateTaskServiceCodeBuild()
    return _original_service_for(service_name)


def install(local: LocalCodeBuild) -> None:
    """Make moto's CodeBuild run real builds, and Step Functions wait for them."""
    require_moto("codebuild")
    _installed["local"] = local
    CodeBuildResponse.start_build = _start_build  # type: ignore[method-assign,assignment]
    CodeBuildBackend.batch_get_builds = _batch_get_builds  # type: ignore[method-assign]
    state_task_factory.state_task_service_for = _service_for  # type: ignore[attr-defined]


def uninstall() -> None:
    _installed.pop("local", None)
    CodeBuildResponse.start_build = _original_start_build  # type: ignore[method-assign]
    CodeBuildBackend.batch_get_builds = _original_batch_get_builds  # type: ignore[method-assign]
    state_task_factory.state_task_service_for = _original_service_for  # type: ignore[attr-defined]

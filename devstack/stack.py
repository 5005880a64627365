"""The whole local stack, all real, all on 127.0.0.1, started and stopped as one.

* a "hub": a Distribution registry with Docker-Hub-style token auth behind the hub front
  (rate-limit headers, request counters, faults);
* an "ECR": a Distribution registry with basic auth, accepting the credentials moto's
  ``GetAuthorizationToken`` hands out, behind the ECR front (redirected blob downloads,
  strict manifests, repositories from moto's ECR, per-action rates);
* AWS: moto in server mode, in this process, with real Lambda invocations (the handlers,
  in warm worker processes) and a real CodeBuild (the buildspec's commands); the project's
  ``template.yaml`` deployed into it.

Every server is stopped by :meth:`Stack.stop` (registries by their PID).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import shutil
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from devstack.aws import codebuild, eventsize, iam, lambdas, mapruns, s3objects, sfnerrors, sfntargets
from devstack.aws.deploy import ACCOUNT, REGION, Deployment, access_key, deploy
from devstack.content.images import Pusher
from devstack.procs import free_port
from devstack.registries.ecrfront import EcrFront, Principal, Repository, template_for
from devstack.registries.hubfront import HubFront
from devstack.registries.registry import BasicAuth, Registry
from hubmirror.domain import keys

ECR_USER = "AWS"
ECR_PASSWORD = f"{ACCOUNT}-auth-token"


def moto_repository(name: str) -> Repository | None:
    """The repository as moto's ECR holds it (what ``CreateRepository`` made), or None."""
    from moto.ecr.models import ecr_backends

    found = ecr_backends[ACCOUNT][REGION].repositories.get(name)
    if found is None:
        return None
    return Repository(name, mutable=found.image_tag_mutability != "IMMUTABLE", policy=found.policy)


def create_from_template(templates: list[dict[str, Any]], name: str, ecr: Any = None) -> Repository | None:
    """What ECR does on a push to a missing repository: create it in moto with the settings of
    the creation template for its name (encryption, tag mutability, tags, lifecycle and
    repository policies), or refuse (None) when no template applies. ``ecr``: the client to
    call moto with (a new one when None)."""
    template = template_for(templates, name)
    if template is None:
        return None
    ecr = ecr or boto3.client("ecr")
    encryption = template.get("EncryptionConfiguration", {"EncryptionType": "AES256"})
    configuration: Any = {"encryptionType": encryption["EncryptionType"]}
    if "KmsKey" in encryption:
        configuration["kmsKey"] = encryption["KmsKey"]
    ecr.create_repository(
        repositoryName=name,
        imageTagMutability=template.get("ImageTagMutability", "MUTABLE"),
        encryptionConfiguration=configuration,
        tags=[{"Key": t["Key"], "Value": t["Value"]} for t in template.get("ResourceTags", [])],
    )
    if template.get("LifecyclePolicy"):
        ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=template["LifecyclePolicy"])
    if template.get("RepositoryPolicy"):
        ecr.set_repository_policy(repositoryName=name, policyText=template["RepositoryPolicy"])
    return moto_repository(name)


def policy_judge(repository: Repository, caller: Principal, action: str, arn: str) -> bool:
    """The IAM stand-in's reading of a repository policy, for a caller of another account."""
    context = {
        "aws:PrincipalArn": caller.arn,
        "aws:PrincipalAccount": caller.account,
        "aws:PrincipalOrgPaths": list(caller.org_paths),
    }
    return iam.repository_policy_allows(repository.policy, context, action)


_NO_INPUT: Any = object()


@dataclass
class RunResult:
    """One execution of the state machine, observed from outside."""

    execution_arn: str
    status: str
    error: str | None
    cause: str | None
    subject: str | None
    report: dict[str, Any] | None
    text: str | None
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    builds: list[str]
    upstream: dict[str, int]
    invocations: dict[str, int]
    #: what the ECR front did: blob redirects, refused mounts, throttled requests, ...
    target: dict[str, int]
    seconds: float
    map_run_events: list[dict[str, Any]] = field(default_factory=list)
    lambda_seconds: float = 0.0
    build_seconds: list[float] = field(default_factory=list)

    #: AWS calls IAM refused during the run (devstack.aws.iam): principal, action, resource
    iam_refused: list[Any] = field(default_factory=list)
    #: what the state machine's catchers recorded (``runs/<run>/errors/*.json``): step -> error
    step_errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the EventBridge events the run put on the default bus, as a rule delivers them to SQS
    published: list[dict[str, Any]] = field(default_factory=list)
    #: the chat topic's message of the run (the custom notification), if one was published
    chat: dict[str, Any] | None = None

    @property
    def tasks_failed(self) -> list[dict[str, Any]]:
        """``TaskFailed`` events of the execution and of its map runs' children."""
        return [e for e in [*self.events, *self.map_run_events] if e["type"] == "TaskFailed"]

    def task_events(self, kind: str, resource: str) -> list[dict[str, Any]]:
        """``Task<kind>`` events (``Succeeded``, ``Failed``, ...) of tasks on ``resource`` (``codebuild``)."""
        found = []
        for event in [*self.events, *self.map_run_events]:
            if event["type"] == f"Task{kind}":
                details: dict[str, Any] = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
                if details.get("resourceType") == resource:
                    found.append(event)
        return found

    @property
    def state_transitions(self) -> int:
        """States entered, in the execution and in its map runs' children (what AWS bills)."""
        return sum(1 for e in [*self.events, *self.map_run_events] if str(e["type"]).endswith("StateEntered"))

    def largest_payload(self) -> int:
        """The largest input or output (bytes) of any state, task or Lambda in the run."""
        largest = 0
        for event in [*self.events, *self.map_run_events]:
            for key, details in event.items():
                if key.endswith("EventDetails") and isinstance(details, dict):
                    for field_name in ("input", "output", "parameters"):
                        value = details.get(field_name)
                        if isinstance(value, str):
                            largest = max(largest, len(value.encode()))
        return largest

    def outcomes(self) -> dict[str, str]:
        """``{target repository:tag: outcome}`` from the report (targets are unique)."""
        assert self.report is not None, "no report was published"
        return {i["target"]: i["outcome"] for i in self.report["items"]}

    def failures(self) -> str:
        """The run's cause and its failed items with their reasons, for an assertion's message."""
        items = (self.report or {}).get("items", [])
        failed = [f"{i['target']}: {i.get('reason', '')}" for i in items if i.get("outcome") == "failed"]
        return "\n".join([str(self.cause), *failed])

    def item(self, target: str) -> dict[str, Any]:
        """The report's entry for the item writing ``target`` (``repository:tag``)."""
        assert self.report is not None
        return next(i for i in self.report["items"] if i["target"] == target)


@dataclass
class Stack:
    """Start with :meth:`start` (or as a context manager); :meth:`stop` stops everything."""

    workdir: Path
    parameters: dict[str, str] = field(default_factory=dict)
    extra_environment: dict[str, str] = field(default_factory=dict)
    #: ECR's registry setting BLOB_MOUNTING (disabled unless an account turns it on)
    ecr_blob_mounting: bool = False
    #: ECR request rates by action, where a test raises a quota (as an account can)
    ecr_rates: dict[str, float] = field(default_factory=dict)
    #: evaluate every AWS call against its caller's role from template.yaml (devstack.aws.iam)
    enforce_iam: bool = True
    #: a rule on the default bus that sends hubmirror's events to a queue (RunResult.published);
    #: moto delivers each event to SQS slowly, so a run of thousands of images may go without
    route_events: bool = True
    #: role statements (role, Sid) to deploy without, as if removed from template.yaml
    without_statements: frozenset[tuple[str, str]] = frozenset()
    #: function timeouts (logical id -> seconds) shorter than the template's, for deadline tests
    lambda_timeouts: dict[str, int] = field(default_factory=dict)
    front: HubFront | None = None
    hub: Registry | None = None
    ecr: EcrFront | None = None
    ecr_backend: Registry | None = None
    deployment: Deployment | None = None
    queue_url: str | None = None
    lambda_runtime: lambdas.LambdaRuntime | None = None
    local_codebuild: codebuild.LocalCodeBuild | None = None
    _moto: Any = None
    _ecr: Any = None
    _saved_env: dict[str, str | None] = field(default_factory=dict)
    _runs: int = 0

    def _ecr_client(self) -> Any:
        """One ECR client for the stack's creations on push (a client is slow to make, and
        thread-safe), made once moto's endpoint is set."""
        if self._ecr is None:
            self._ecr = boto3.client("ecr")
        return self._ecr

    @property
    def iam_calls(self) -> list[iam.Call]:
        """Every AWS call a role made so far, with IAM's verdict."""
        return list(self._moto.enforcer.calls) if self._moto is not None else []

    # -- life cycle --------------------------------------------------------------------
    def start(self) -> Stack:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.workdir.mkdir(parents=True)
        try:
            self._start_registries()
            self._start_aws()
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start_registries(self) -> None:
        self.front = HubFront(self.workdir / "hub")
        self.hub = Registry(self.workdir / "hub", auth=self.front.token_auth()).start()
        self.front.start(self.hub.host)
        self.ecr_backend = Registry(self.workdir / "ecr", auth=BasicAuth(ECR_USER, ECR_PASSWORD)).start()
        self.ecr = EcrFront(
            self.workdir / "ecr",
            repositories=moto_repository,
            create=lambda name: create_from_template(
                self.deployment.repository_templates if self.deployment else [], name, self._ecr_client()
            ),
            allows=policy_judge,
            blob_mounting=self.ecr_blob_mounting,
            rates=self.ecr_rates,
            account=ACCOUNT,
            region=REGION,
        ).start(self.ecr_backend.host)
        self.ecr.backend_authorization = "Basic " + base64.b64encode(f"{ECR_USER}:{ECR_PASSWORD}".encode()).decode()

    def _start_aws(self) -> None:
        from moto.core.config import default_user_config

        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        aws_env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": endpoint,
        }
        for name, value in {**aws_env, "MOTO_PORT": str(port)}.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        default_user_config["stepfunctions"] = {"execute_state_machine": True}
        default_user_config["lambda"] = {"use_docker": False}
        self.lambda_runtime = lambdas.LambdaRuntime(
            logdir=self.workdir / "logs" / "lambda",
            base_env={
                **aws_env,
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": os.environ.get("HOME", "/root"),
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_DEV": "false",
            },
            python=sys.executable,
        )
        lambdas.install(self.lambda_runtime)
        self.local_codebuild = codebuild.LocalCodeBuild(logdir=self.workdir / "logs" / "codebuild", aws_env=aws_env)
        codebuild.install(self.local_codebuild)
        mapruns.install()
        sfnerrors.install()
        eventsize.install()
        sfntargets.install()
        s3objects.install()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # moto logs every Fail state as an unhandled exception; the tests read the history instead
        logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
        self._moto = iam.server("127.0.0.1", port)
        self._moto.start()
        # moto's backends are process-wide: a stack started earlier in this process left state behind
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30)  # noqa: S310
        assert self.ecr is not None
        self.deployment = deploy(
            target_registry=self.ecr.host,
            # a stored allowlist starts a run only where a test asks for it (RunOnAllowlistChange):
            # elsewhere a test writes its allowlist, then starts the run it waits for
            # and the local stack has no route to Sigstore's TUF repository: its trust root is the shipped one
            parameters={"RunOnAllowlistChange": "false", "SigstoreTufUrl": "", **self.parameters},
            extra_environment=self.extra_environment,
            without=self.without_statements,
            timeouts=self.lambda_timeouts,
        )
        self.local_codebuild.roles = {project: access_key(role) for project, role in self.deployment.roles_of.items()}
        if self.enforce_iam:
            self._moto.enforcer.enforce(self.deployment)
        sqs, sns = boto3.client("sqs"), boto3.client("sns")
        self.queue_url = sqs.create_queue(QueueName="hubmirror-reports")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=self.deployment.topic_arn, Protocol="sqs", Endpoint=queue_arn)
        if self.route_events:  # EventBridge: a rule on the default bus sends hubmirror's events to a queue
            events_queue = sqs.create_queue(QueueName="hubmirror-events")["QueueUrl"]
            events_arn = sqs.get_queue_attributes(QueueUrl=events_queue, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            rules = boto3.client("events")
            rules.put_rule(Name="hubmirror-events", EventPattern=json.dumps({"source": ["hubmirror"]}))
            rules.put_targets(Rule="hubmirror-events", Targets=[{"Id": "queue", "Arn": events_arn}])

    def stop(self) -> None:
        if self.local_codebuild is not None:
            with contextlib.suppress(TimeoutError):
                self.local_codebuild.wait_idle(timeout=120)
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        lambdas.uninstall()
        codebuild.uninstall()
        mapruns.uninstall()
        sfnerrors.uninstall()
        eventsize.uninstall()
        s3objects.uninstall()
        sfntargets.uninstall()
        if self.lambda_runtime is not None:
            self.lambda_runtime.stop()
        for server in (self.hub, self.ecr_backend):
            if server is not None:
                server.stop()
        for front in (self.front, self.ecr):
            if front is not None:
                front.stop()
        self.front = self.ecr = None
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    # -- helpers for tests and the demo ------------------------------------------------
    def hub_pusher(self) -> Pusher:
        assert self.front is not None
        return Pusher(self.front.host, *self.front.admin)

    def ecr_pusher(self) -> Pusher:
        assert self.ecr is not None
        return Pusher(self.ecr.host, ECR_USER, ECR_PASSWORD)

    def write_allowlist(self, text: str) -> str:
        """Store a new allowlist version where the deployed stack reads it (as ``hubmirror push``
        does, without its validation: a test may store a broken one); returns the version id."""
        assert self.deployment is not None
        answer = boto3.client("s3").put_object(
            Bucket=self.deployment.bucket, Key=keys.ALLOWLIST, Body=text.encode(), ContentType="application/yaml"
        )
        return str(answer["VersionId"])

    def add_principal(
        self, role: str, statements: list[dict[str, Any]], tags: dict[str, str] | None = None
    ) -> dict[str, str]:
        """A role of the account besides the stack's (a team's CI role, a stranger), its calls
        evaluated like the stack's; returns the environment its callers sign with."""
        assert self._moto is not None
        key = self._moto.enforcer.add_principal(role, statements, tags)
        return {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}

    def inject_aws(self, fault: iam.ServiceFault) -> None:
        """Make AWS answer the calls the fault matches with its error (S3 refusing a write, say)."""
        assert self._moto is not None
        self._moto.enforcer.inject(fault)

    def clear_aws_faults(self) -> None:
        assert self._moto is not None
        self._moto.enforcer.faults.clear()

    def run(self, execution_input: Any = _NO_INPUT, *, timeout: float = 600, name: str | None = None) -> RunResult:
        """Start an execution (input ``{}`` unless given; ``None`` sends ``null``), wait for it,
        collect its report and what it cost."""
        assert self.deployment is not None
        machine = self.deployment.state_machine_arn
        self._runs += 1
        run_name = name or f"run-{self._runs:03d}-{uuid.uuid4().hex[:8]}"
        data = json.dumps({} if execution_input is _NO_INPUT else execution_input)
        return self.observe(
            lambda: boto3.client("stepfunctions").start_execution(stateMachineArn=machine, name=run_name, input=data)[
                "executionArn"
            ],
            timeout=timeout,
        )

    def executions(self) -> list[dict[str, Any]]:
        """Every execution of the state machine, newest first."""
        assert self.deployment is not None
        sfn = boto3.client("stepfunctions")
        return [dict(e) for e in sfn.list_executions(stateMachineArn=self.deployment.state_machine_arn)["executions"]]

    def observe(self, action: Callable[[], Any], *, timeout: float = 600) -> RunResult:
        """Do ``action``, which starts one execution: it returns the execution's ARN, or anything
        else and the execution it started (a ``hubmirror push``) is the one new since. Then wait for
        it, and collect its report and what it cost."""
        assert self.deployment is not None
        assert self.front is not None
        assert self.lambda_runtime is not None
        assert self.local_codebuild is not None
        sfn = boto3.client("stepfunctions")
        known = {e["executionArn"] for e in self.executions()}
        upstream_before = self.front.snapshot()
        assert self.ecr is not None
        target_before = self.ecr.snapshot()
        invocations_before = Counter(self.lambda_runtime.invocations)
        lambda_seconds_before = self.lambda_runtime.seconds
        builds_before = len(self.local_codebuild.started)
        chats_before = len(self._chat_messages())
        calls_before = len(self.iam_calls)
        started = time.monotonic()
        answer = action()
        arn = answer if isinstance(answer, str) and answer.startswith("arn:") else None
        acted = time.monotonic()
        while arn is None:
            new = [e["executionArn"] for e in self.executions() if e["executionArn"] not in known]
            if new:
                arn = new[0]
            elif time.monotonic() - acted > 30:  # an execution starts within a second of the action
                raise AssertionError(f"no execution started after the action (it returned {answer!r})")
            else:
                time.sleep(0.05)
        while True:
            described = sfn.describe_execution(executionArn=arn)
            if described["status"] != "RUNNING":
                break
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"execution {arn} still running after {timeout}s")
            time.sleep(0.05)
        seconds = time.monotonic() - started
        self.local_codebuild.wait_idle()
        events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        subject, report, attributes = self._read_report()
        run_name = arn.rsplit(":", 1)[1]
        step_errors = self._step_errors(run_name)
        text = self._published_text()
        chats = self._chat_messages()[chats_before:]
        upstream_after = self.front.snapshot()
        target_after = self.ecr.snapshot()
        invocations = Counter(self.lambda_runtime.invocations)
        invocations.subtract(invocations_before)
        return RunResult(
            execution_arn=arn,
            status=described["status"],
            error=described.get("error"),
            cause=described.get("cause"),
            subject=subject,
            report=report,
            text=text,
            attributes=attributes,
            events=[dict(e) for e in events],
            builds=self.local_codebuild.started[builds_before:],
            upstream={
                k: upstream_after.get(k, 0) - upstream_before.get(k, 0)
                for k in set(upstream_after) | set(upstream_before)
            },
            invocations={k: v for k, v in invocations.items() if v},
            target={k: n for k, v in target_after.items() if (n := v - target_before.get(k, 0))},
            seconds=seconds,
            map_run_events=mapruns.events_of(arn),
            lambda_seconds=self.lambda_runtime.seconds - lambda_seconds_before,
            build_seconds=[self.local_codebuild.duration(b) for b in self.local_codebuild.started[builds_before:]],
            step_errors=step_errors,
            iam_refused=[c for c in self.iam_calls[calls_before:] if not c.allowed],
            published=self._read_published(),
            chat=json.loads(chats[-1]) if chats else None,
        )

    def _read_published(self) -> list[dict[str, Any]]:
        """Every event the rule delivered to the events queue since the last run, oldest first.

        Read from moto's queue in this process and then emptied: a run of 5,000 changed images
        delivers 5,001 events, which ReceiveMessage would hand out ten at a time."""
        from moto.sqs.models import sqs_backends

        if not self.route_events:
            return []
        queue = sqs_backends[ACCOUNT][REGION].get_queue("hubmirror-events")
        with queue._messages_lock:
            found = [json.loads(message.body) for message in queue._messages]
            queue._messages = []
        return found

    def _step_errors(self, run: str) -> dict[str, dict[str, Any]]:
        assert self.deployment is not None
        s3 = boto3.client("s3")
        bucket = self.deployment.bucket
        found: dict[str, dict[str, Any]] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"runs/{run}/errors/"):
            for obj in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                found[obj["Key"].rsplit("/", 1)[-1].removesuffix(".json")] = json.loads(body)
        return found

    def _chat_messages(self) -> list[str]:
        """Every message published to the chat topic so far (moto keeps them in process)."""
        from moto.sns.models import sns_backends

        assert self.deployment is not None
        return [
            message
            for _, message, *_ in sns_backends[ACCOUNT][REGION]
            .topics[self.deployment.chat_topic_arn]
            .sent_notifications
        ]

    def _published_text(self) -> str | None:
        """The plain-text body (what e-mail subscribers get) of the last published report."""
        from moto.sns.models import sns_backends

        assert self.deployment is not None
        sent = sns_backends[ACCOUNT][REGION].topics[self.deployment.topic_arn].sent_notifications
        if not sent:
            return None
        message = sent[-1][1]
        try:
            return str(json.loads(message)["default"])
        except (ValueError, KeyError, TypeError):
            return message

    def _read_report(self) -> tuple[str | None, dict[str, Any] | None, dict[str, Any]]:
        sqs = boto3.client("sqs")
        assert self.queue_url is not None
        messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        for message in messages:
            sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        if not messages:
            return None, None, {}
        envelope = json.loads(messages[-1]["Body"])
        try:
            report = json.loads(envelope.get("Message", ""))
        except ValueError:
            report = None
        return envelope.get("Subject"), report, envelope.get("MessageAttributes", {})

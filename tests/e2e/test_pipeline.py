"""The whole pipeline, for real: allowlist -> state machine -> copy or build -> registry -> SNS.

One local stack for the module; each fixture below is one execution of the real state
machine, in the order a platform team would live them. Expected digests come from the
seed images (built by the test), never from hubmirror's own code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from devstack.aws.deploy import bucket_lifecycle, load_template
from devstack.content.images import Pusher, platform_image, seed
from devstack.stack import ECR_PASSWORD, ECR_USER, RunResult, Stack
from tests.infrastructure import retention
from tests.support import RegistryReader, platforms_of

pytestmark = pytest.mark.e2e

BUILD_LINES = ["RUN mkdir /etc/vault", "RUN chmod 777 /etc/vault", 'VOLUME ["/etc/vault"]']


@dataclass
class World:
    stack: Stack
    hub: str
    target: RegistryReader
    pusher: Pusher
    digests: dict[str, str]

    def allowlist(self, *, vault_lines: list[str] = BUILD_LINES, busybox_tags: tuple[str, ...] = ("1.36",)) -> str:
        lines = "\n".join(f"      - {json.dumps(line) if line.startswith('VOLUME') else line}" for line in vault_lines)
        return f"""images:
  - source: {self.hub}/library/alpine
    tags: ["3.20"]
    target: alpine
  - source: {self.hub}/library/busybox
    tags: [{", ".join(json.dumps(t) for t in busybox_tags)}]
    target: busybox
  - source: {self.hub}/hashicorp/vault
    tags: ["1.14"]
    target: vault
    platforms: [linux/amd64, linux/arm64]
    build_commands:
{lines}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    stack = Stack(Path(tmp_path_factory.mktemp("stack")))
    with stack:
        assert stack.front is not None
        assert stack.ecr is not None
        pusher = stack.hub_pusher()
        digests = {
            "alpine": seed(pusher, "library/alpine", "3.20", ["linux/amd64", "linux/arm64"]),
            "busybox": seed(pusher, "library/busybox", "1.36", ["linux/amd64"]),
            "vault": seed(pusher, "hashicorp/vault", "1.14", ["linux/amd64", "linux/arm64"]),
        }
        world = World(stack, stack.front.host, RegistryReader(stack.ecr.host, ECR_USER, ECR_PASSWORD), pusher, digests)
        stack.write_allowlist(world.allowlist())
        yield world


@pytest.fixture(scope="module")
def first(world: World) -> RunResult:
    return world.stack.run({})


@pytest.fixture(scope="module")
def second(world: World, first: RunResult) -> RunResult:
    return world.stack.run({})


@pytest.fixture(scope="module")
def after_delete(world: World, second: RunResult) -> RunResult:
    world.target.delete_tag("mirror/alpine", "3.20")
    assert world.target.manifest("mirror/alpine", "3.20") is None
    return world.stack.run({})


@pytest.fixture(scope="module")
def after_new_lines(world: World, after_delete: RunResult) -> RunResult:
    world.stack.write_allowlist(world.allowlist(vault_lines=[*BUILD_LINES, "ENV VAULT_ADDR=http://127.0.0.1:8200"]))
    return world.stack.run({})


@pytest.fixture(scope="module")
def with_missing_tag(world: World, after_new_lines: RunResult) -> RunResult:
    """A tag that does not exist upstream, while another item has really changed upstream."""
    world.digests["busybox"] = seed(world.pusher, "library/busybox", "1.36", ["linux/amd64"], marker="busybox 1.36.1")
    world.stack.write_allowlist(
        world.allowlist(
            vault_lines=[*BUILD_LINES, "ENV VAULT_ADDR=http://127.0.0.1:8200"], busybox_tags=("1.36", "9.99")
        )
    )
    return world.stack.run({})


# -- the first run: everything lands -----------------------------------------------------


def test_first_run_copies_and_builds_everything(first: RunResult) -> None:
    assert first.status == "SUCCEEDED", first.cause
    assert first.outcomes() == {
        "mirror/alpine:3.20": "copied",
        "mirror/busybox:1.36": "copied",
        "mirror/vault:1.14": "built",
    }
    assert len(first.builds) == 2  # one copy build and one image build for the single batch


def test_two_platform_copy_keeps_the_index_digest_and_both_platforms(world: World, first: RunResult) -> None:
    landed = world.target.manifest("mirror/alpine", "3.20")
    assert landed is not None
    assert landed.digest == world.digests["alpine"]
    assert platforms_of(landed.document) == ["linux/amd64", "linux/arm64"]
    for descriptor in landed.document["manifests"]:
        assert world.target.manifest("mirror/alpine", descriptor["digest"]) is not None


def test_single_platform_copy_is_verbatim(world: World, first: RunResult) -> None:
    landed = world.target.manifest("mirror/busybox", "1.36")
    assert landed is not None
    assert landed.digest == world.digests["busybox"]


def test_build_applies_the_lines_for_every_platform_pinned_and_annotated(world: World, first: RunResult) -> None:
    landed = world.target.manifest("mirror/vault", "1.14")
    assert landed is not None
    annotations = landed.document["annotations"]
    assert annotations["org.opencontainers.image.base.digest"] == world.digests["vault"]
    assert annotations["org.opencontainers.image.base.name"] == f"{world.hub}/hashicorp/vault:1.14"
    assert annotations["io.hubmirror.recipe"].startswith("sha256:")
    assert platforms_of(landed.document) == ["linux/amd64", "linux/arm64"]
    for descriptor in landed.document["manifests"]:
        manifest = world.target.manifest("mirror/vault", descriptor["digest"])
        assert manifest is not None
        assert manifest.document["annotations"]["org.opencontainers.image.base.digest"] == world.digests["vault"]
        assert (
            manifest.document["annotations"]["org.opencontainers.image.base.name"]
            == f"{world.hub}/hashicorp/vault:1.14"
        )
        config = world.target.config("mirror/vault", manifest.document)
        assert config["architecture"] == descriptor["platform"]["architecture"]
        assert "/etc/vault" in config["config"]["Volumes"]
        members = world.target.layer_members("mirror/vault", manifest.document)
        assert members["etc/vault"].isdir()
        assert members["etc/vault"].mode & 0o777 == 0o777
        assert members["etc/seed"].isfile()  # the upstream image's own content is there too


def test_the_report_shows_each_mirrored_image_as_a_pull_reference_with_the_digest_pushed(
    world: World, first: RunResult
) -> None:
    assert first.text is not None
    assert world.stack.ecr is not None
    for target in ("alpine:3.20", "vault:1.14"):
        repository, _, tag = target.partition(":")
        landed = world.target.manifest(f"mirror/{repository}", tag)
        assert landed is not None
        pull = f"{world.stack.ecr.host}/mirror/{target}@{landed.digest}"
        assert f" -> {pull}" in first.text
        assert first.item(f"mirror/{target}")["target_digest"] == landed.digest
    built = world.target.manifest("mirror/vault", "1.14")
    assert built is not None
    assert built.digest != world.digests["vault"]  # the built image's digest, not its base's


def test_build_context_pins_from_by_digest(world: World, first: RunResult) -> None:
    assert world.stack.deployment is not None
    s3 = boto3.client("s3")
    run = first.execution_arn.rsplit(":", 1)[1]
    bucket = world.stack.deployment.bucket
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"runs/{run}/jobs/")["Contents"]
    (key,) = [o["Key"] for o in listed if o["Key"].endswith("-build.json")]  # the copies have batches of their own
    job = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    dockerfile = job["items"][0]["dockerfile"].splitlines()
    assert dockerfile[0] == f"FROM {world.hub}/hashicorp/vault@{world.digests['vault']}"
    assert dockerfile[1:] == BUILD_LINES


def test_report_reaches_sqs_with_every_item_and_a_subject_with_counts(first: RunResult) -> None:
    assert first.report is not None
    assert first.report["status"] == "succeeded"
    assert first.report["counts"] == {"copied": 2, "built": 1, "unchanged": 0, "deferred": 0, "failed": 0}
    assert {i["target"] for i in first.report["items"]} == {
        "mirror/alpine:3.20",
        "mirror/busybox:1.36",
        "mirror/vault:1.14",
    }
    assert first.subject is not None
    assert "1 built" in first.subject
    assert "2 copied" in first.subject
    assert first.attributes["status"]["Value"] == "succeeded"
    assert first.text is not None
    assert "mirror/vault:1.14" in first.text


def test_target_repositories_are_made_on_first_push_by_the_creation_template(world: World, first: RunResult) -> None:
    ecr = boto3.client("ecr")
    repositories = {r["repositoryName"]: r for r in ecr.describe_repositories()["repositories"]}
    assert {"mirror/alpine", "mirror/busybox", "mirror/vault"} <= set(repositories)
    assert world.stack.ecr is not None
    assert world.stack.ecr.snapshot()["created_on_push"] >= 3  # by ECR, not by a CreateRepository of the job
    assert not [c for c in world.stack.iam_calls if c.action == "ecr:CreateRepository"]
    tags = ecr.list_tags_for_resource(resourceArn=repositories["mirror/vault"]["repositoryArn"])["tags"]
    assert {"Key": "managed-by", "Value": "hubmirror"} in tags


# -- the second run: nothing to do, and it costs nothing --------------------------------------


def test_second_run_is_all_unchanged_without_builds_or_pulls(second: RunResult) -> None:
    assert second.status == "SUCCEEDED", second.cause
    assert set(second.outcomes().values()) == {"unchanged"}
    assert second.builds == []
    assert second.upstream.get("get_manifest", 0) == 0
    assert second.upstream.get("head_manifest", 0) == 3  # one HEAD per item
    assert second.upstream.get("get_blob", 0) == 0


# -- truth lives in the target -----------------------------------------------------------------


def test_a_deleted_target_tag_is_restored(world: World, after_delete: RunResult) -> None:
    assert after_delete.outcomes() == {
        "mirror/alpine:3.20": "copied",
        "mirror/busybox:1.36": "unchanged",
        "mirror/vault:1.14": "unchanged",
    }
    landed = world.target.manifest("mirror/alpine", "3.20")
    assert landed is not None
    assert landed.digest == world.digests["alpine"]


def test_changing_build_lines_rebuilds_that_item_alone(world: World, after_new_lines: RunResult) -> None:
    assert after_new_lines.outcomes() == {
        "mirror/alpine:3.20": "unchanged",
        "mirror/busybox:1.36": "unchanged",
        "mirror/vault:1.14": "built",
    }
    landed = world.target.manifest("mirror/vault", "1.14")
    assert landed is not None
    manifest = world.target.manifest("mirror/vault", landed.document["manifests"][0]["digest"])
    assert manifest is not None
    assert "VAULT_ADDR=http://127.0.0.1:8200" in world.target.config("mirror/vault", manifest.document)["config"]["Env"]


# -- failures are reported, never hidden, and never stop the others ----------------------------


def test_missing_upstream_tag_fails_alone_and_fails_the_execution(world: World, with_missing_tag: RunResult) -> None:
    result = with_missing_tag
    assert result.status == "FAILED"
    assert result.error == "hubmirror.SyncFailed"
    assert result.outcomes() == {
        "mirror/alpine:3.20": "unchanged",
        "mirror/busybox:1.36": "copied",
        "mirror/busybox:9.99": "failed",
        "mirror/vault:1.14": "unchanged",
    }
    assert "not found upstream" in result.item("mirror/busybox:9.99")["reason"]
    assert "9.99" in result.item("mirror/busybox:9.99")["reason"]
    landed = world.target.manifest("mirror/busybox", "1.36")
    assert landed is not None
    assert landed.digest == world.digests["busybox"]
    assert result.report is not None
    assert result.report["status"] == "failed"
    # the report went out before the execution failed
    published = [
        n
        for n, e in enumerate(result.events)
        if e["type"] == "TaskSucceeded" and e["taskSucceededEventDetails"]["resourceType"] == "sns"
    ]
    failed = [n for n, e in enumerate(result.events) if e["type"] == "ExecutionFailed"]
    assert published
    assert failed
    assert published[0] < failed[0]


def test_invalid_allowlist_is_refused_before_any_registry_is_contacted(
    world: World, with_missing_tag: RunResult
) -> None:
    version = world.stack.write_allowlist(f"images:\n  - source: {world.hub}/library/alpine\n    tags: [3.10]\n")
    try:
        result = world.stack.run({})
    finally:
        world.stack.write_allowlist(world.allowlist())
    assert result.status == "FAILED"
    assert result.upstream.get("head_manifest", 0) == 0
    assert result.upstream.get("token", 0) == 0
    assert result.report is not None
    assert "quote it" in (result.report["plan_error"] or "")
    assert f"allowlist.yaml (version {version}):3" in (result.report["plan_error"] or "")  # which version, where
    assert result.subject is not None
    assert "refused" in result.subject


def test_dry_run_reports_what_would_change_and_changes_nothing(world: World, with_missing_tag: RunResult) -> None:
    image = platform_image("linux/amd64", "busybox 1.36.2")
    new_digest = world.pusher.image("library/busybox", "1.36", image)
    before = world.target.manifest("mirror/busybox", "1.36")
    result = world.stack.run({"dry_run": True, "only": ["busybox"]})
    assert result.outcomes() == {"mirror/busybox:1.36": "would_copy"}
    assert result.builds == []
    assert result.upstream.get("get_manifest", 0) == 0
    after = world.target.manifest("mirror/busybox", "1.36")
    assert before is not None
    assert after is not None
    assert after.digest == before.digest != new_digest


def test_only_and_force_resync_just_the_named_image(world: World, with_missing_tag: RunResult) -> None:
    result = world.stack.run({"only": ["alpine"], "force": True})
    assert result.status == "SUCCEEDED", result.cause
    assert result.outcomes() == {"mirror/alpine:3.20": "copied"}
    assert len(result.builds) == 1


@pytest.mark.parametrize("execution_input", [[], "x", 42, True], ids=["list", "string", "number", "boolean"])
def test_an_input_that_is_not_an_object_is_refused_with_a_report(
    world: World, with_missing_tag: RunResult, execution_input: object
) -> None:
    # AWS fails such an execution States.Runtime, with no report, when a Catch has to put its
    # error into a non-object input (the local stack does too: devstack.aws.sfnerrors)
    result = world.stack.run(execution_input)
    assert result.status == "FAILED"
    assert result.error != "States.Runtime"
    assert result.report is not None
    assert "must be a JSON object" in (result.report["plan_error"] or "")


def test_unknown_only_selector_is_refused(world: World, with_missing_tag: RunResult) -> None:
    result = world.stack.run({"only": ["alpnie"]})
    assert result.status == "FAILED"
    assert result.report is not None
    assert "alpnie" in (result.report["plan_error"] or "")


# -- the state machine as AWS runs it ----------------------------------------------------------


def test_a_clean_run_has_its_builds_succeed_and_no_step_error(first: RunResult, second: RunResult) -> None:
    for run in (first, second):
        assert run.tasks_failed == []
        assert run.step_errors == {}
        assert run.iam_refused == []  # every AWS call allowed by its caller's role in template.yaml
    succeeded = first.task_events("Succeeded", "codebuild")
    assert len(succeeded) == len(first.builds) == 2  # the Copy and the Build task, each TaskSucceeded
    for event in succeeded:
        output = json.loads(event["taskSucceededEventDetails"]["output"])
        assert output["Build"]["BuildStatus"] == "SUCCEEDED"


def test_every_key_the_runs_wrote_is_covered_by_a_lifecycle_rule_meant_for_it(
    world: World, with_missing_tag: RunResult
) -> None:
    """Every object version and delete marker five runs left in the bucket (copies, builds, a
    moved tag, new allowlist versions), judged against the bucket's lifecycle rules. The rules
    are read from the template: moto stores them (the same rules are deployed) but drops
    ``NewerNoncurrentVersions`` from a ``NoncurrentVersionExpiration``."""
    s3, bucket = boto3.client("s3"), world.stack.deployment.bucket
    rules = bucket_lifecycle(load_template(), "ArtifactsBucket")
    deployed = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [(r["ID"], r["Filter"]) for r in deployed] == [(r["ID"], r["Filter"]) for r in rules]
    written: set[str] = set()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        written |= {v["Key"] for v in page.get("Versions", []) + page.get("DeleteMarkers", [])}
    assert {key.split("/", 1)[0] for key in written} >= {"runs", "allowlist", "locks", "blobs", "contexts"}
    assert [problem for key in sorted(written) for problem in retention.problems(rules, key)] == []


def test_a_failing_build_line_fails_its_task_and_its_item(world: World, with_missing_tag: RunResult) -> None:
    world.stack.write_allowlist(world.allowlist(vault_lines=["RUN false"]))
    try:
        run = world.stack.run({"only": ["vault"]})
    finally:
        world.stack.write_allowlist(world.allowlist())
    assert run.status == "FAILED"
    failed = run.task_events("Failed", "codebuild")
    assert len(failed) == 1
    details = failed[0]["taskFailedEventDetails"]
    assert details["error"] == "States.TaskFailed"
    assert json.loads(details["cause"])["Build"]["BuildStatus"] == "FAILED"
    assert list(run.step_errors) == ["00000-build"]
    assert run.outcomes() == {"mirror/vault:1.14": "failed"}
    assert "buildah build failed" in run.item("mirror/vault:1.14")["reason"]  # the job's own words
    assert world.target.manifest("mirror/vault", "1.14") is not None  # the good image is still there


#: A build line that succeeds only if a server answers over the network: the hub's /v2/.
def _reach(host: str) -> str:
    address, _, port = host.rpartition(":")
    return (
        f"RUN printf 'GET /v2/ HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 5 {address} {port} > /reach.log 2>&1; "
        "busybox grep -q HTTP/1 /reach.log"
    )


#: A build line that looks for credentials everywhere a line could: its environment, every
#: process's environment, the files registry clients and the AWS SDKs read. It writes what it
#: saw into the image, for the test to read; it never fails.
PROBE = (
    "RUN busybox env > /probe-env; "
    "for f in /proc/[0-9]*/environ; do busybox tr '\\0' '\\n' < $f; echo; done >> /probe-env 2>/dev/null; "
    "busybox ls /proc | busybox grep -c '^[0-9]' > /probe-pids; "
    "for f in /run/containers/0/auth.json /root/.docker/config.json /root/.config/containers/auth.json "
    "/root/.aws/credentials /root/.aws/config /codebuild; do test -e $f && echo $f; done > /probe-files; "
    "busybox find / -xdev -name auth.json >> /probe-files 2>/dev/null; true"
)


def test_build_lines_reach_no_network_and_no_credentials_unless_granted(
    world: World, with_missing_tag: RunResult
) -> None:
    """RUN lines run without a network unless the entry sets build_network, and see no secret either way."""
    fences = f"""  - source: {world.hub}/library/busybox
    tags: ["1.36"]
    target: fence-offline
    platforms: [linux/amd64]
    build_commands: [{json.dumps(_reach(world.hub))}]
  - source: {world.hub}/library/busybox
    tags: ["1.36"]
    target: fence-online
    platforms: [linux/amd64]
    build_network: true
    build_commands: [{json.dumps(_reach(world.hub))}, {json.dumps(PROBE)}]
  - source: {world.hub}/library/busybox
    tags: ["1.36"]
    target: fence-quiet
    platforms: [linux/amd64]
    build_commands: [{json.dumps(PROBE)}]
"""
    world.stack.write_allowlist(world.allowlist() + fences)
    try:
        run = world.stack.run({"only": ["fence-offline", "fence-online", "fence-quiet"]})
    finally:
        world.stack.write_allowlist(world.allowlist())
    assert run.outcomes() == {
        "mirror/fence-offline:1.36": "failed",  # the same line, without the network
        "mirror/fence-online:1.36": "built",
        "mirror/fence-quiet:1.36": "built",
    }
    assert "buildah build failed" in run.item("mirror/fence-offline:1.36")["reason"]
    assert run.item("mirror/fence-offline:1.36")["cause"] == "build-line"
    assert "its RUN lines had the network (build_network: true)" in run.item("mirror/fence-online:1.36")["reason"]
    assert world.target.manifest("mirror/fence-offline", "1.36") is None
    codebuild = world.stack.local_codebuild
    assert codebuild is not None
    secrets = {value for value in codebuild.roles.values() if value} | {ECR_PASSWORD}
    for target in ("fence-online", "fence-quiet"):
        index = world.target.manifest(f"mirror/{target}", "1.36")
        assert index is not None
        image = world.target.manifest(f"mirror/{target}", index.document["manifests"][0]["digest"])
        assert image is not None
        seen = {
            name: (world.target.layer_file(f"mirror/{target}", image.document, name) or b"").decode()
            for name in ("probe-env", "probe-pids", "probe-files")
        }
        assert "PATH=" in seen["probe-env"]  # the probe ran and read its environment
        assert int(seen["probe-pids"]) <= 3  # its own processes only, not the job's
        configured = world.target.config(f"mirror/{target}", image.document)["config"].get("Env") or []
        lines = [*seen["probe-env"].splitlines(), *configured]  # what the lines saw, and what the image carries
        variables = {line.partition("=")[0] for line in lines if "=" in line}
        assert not {v for v in variables if v.startswith(("AWS_", "CODEBUILD_", "ECS_", "HUBMIRROR_"))}, variables
        assert "REGISTRY_AUTH_FILE" not in variables
        assert seen["probe-files"] == "", seen["probe-files"]
        for secret in secrets:
            assert all(secret not in text for text in [*seen.values(), *configured]), target


def test_a_job_that_dies_before_its_outcomes_fails_its_items_with_the_builds_status(
    world: World, with_missing_tag: RunResult
) -> None:
    before = world.target.manifest("mirror/alpine", "3.20")
    assert world.stack.local_codebuild is not None
    world.stack.local_codebuild.faults.append("DOWNLOAD_SOURCE")
    run = world.stack.run({"only": ["alpine"], "force": True})
    assert run.status == "FAILED"
    assert run.report is not None  # every run ends with a report
    reason = run.item("mirror/alpine:3.20")["reason"]
    assert run.outcomes() == {"mirror/alpine:3.20": "failed"}
    assert "ended FAILED in its DOWNLOAD_SOURCE phase" in reason
    assert "its log: " in reason
    after = world.target.manifest("mirror/alpine", "3.20")
    assert after is not None
    assert before is not None
    assert after.digest == before.digest

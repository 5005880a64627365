"""A team adopts hubmirror without forking it: the operator's path, end to end, on the local stack.

One stack deployed as ``sam deploy`` deploys it (``RunOnAllowlistChange`` on, no allowlist in the
bundle); every step below is what a platform engineer or a CI job does, through the real
``hubmirror`` command (its ``main``, in this process, against the stack's outputs in
CloudFormation), in the order they live them. Expected digests come from the seed images.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from devstack.content.images import seed
from devstack.registries.proxy import Fault
from devstack.stack import ECR_PASSWORD, ECR_USER, RunResult, Stack
from hubmirror.cli import main
from hubmirror.domain import keys
from tests.support import RegistryReader

pytestmark = pytest.mark.e2e


@dataclass
class Cli:
    code: int
    out: str
    err: str


def hubmirror(*args: str) -> Cli:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([*args, "--stack", "hubmirror"] if args[0] not in ("validate", "schema") else list(args))
    return Cli(code, out.getvalue(), err.getvalue())


@dataclass
class World:
    stack: Stack
    hub: str
    target: RegistryReader
    digests: dict[str, str]
    files: Path

    def allowlist(self, name: str, text: str) -> Path:
        path = self.files / name
        path.write_text(text.replace("HUB", self.hub))
        return path

    def versions(self) -> list[str]:
        assert self.stack.deployment is not None
        listed = boto3.client("s3").list_object_versions(Bucket=self.stack.deployment.bucket, Prefix=keys.ALLOWLIST)
        found = [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]  # a delete leaves a marker
        return [v["VersionId"] for v in sorted(found, key=lambda v: v["LastModified"], reverse=True)]


FIRST = """images:
  - source: HUB/library/alpine
    tags: ["3.20"]
    target: alpine
  - source: HUB/library/busybox
    tags: ["1.36"]
    target: busybox
"""
# alpine unchanged, busybox gains a tag, redis is new with a selector, nothing else
SECOND = """images:
  - source: HUB/library/alpine
    tags: ["3.20"]
    target: alpine
  - source: HUB/library/busybox
    tags: ["1.36", "1.37"]
    target: busybox
  - source: HUB/library/redis
    select: {semver: ">=7.0", latest: 1}
    target: redis
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    stack = Stack(
        Path(tmp_path_factory.mktemp("stack")),
        parameters={
            "RunOnAllowlistChange": "true",
            "AllowlistWriterRoles": "arn:aws:iam::123456789012:role/team-ci,arn:aws:iam::123456789012:role/ops/*",
        },
    )
    with stack:
        assert stack.front is not None
        assert stack.ecr is not None
        pusher = stack.hub_pusher()
        digests = {
            "alpine": seed(pusher, "library/alpine", "3.20", ["linux/amd64", "linux/arm64"]),
            "busybox": seed(pusher, "library/busybox", "1.36", ["linux/amd64"]),
            "busybox-1.37": seed(pusher, "library/busybox", "1.37", ["linux/amd64"]),
            "redis-7.2": seed(pusher, "library/redis", "7.2", ["linux/amd64"]),
            "redis-6.2": seed(pusher, "library/redis", "6.2", ["linux/amd64"]),
        }
        yield World(
            stack,
            stack.front.host,
            RegistryReader(stack.ecr.host, ECR_USER, ECR_PASSWORD),
            digests,
            Path(tmp_path_factory.mktemp("team-repo")),
        )


@pytest.fixture(scope="module")
def empty_run(world: World) -> RunResult:
    return world.stack.run({})


def test_a_stack_without_an_allowlist_runs_and_says_how_to_push_one(empty_run: RunResult) -> None:
    assert empty_run.status == "SUCCEEDED", empty_run.failures()
    assert empty_run.report is not None
    assert empty_run.report["total"] == 0
    assert any("no allowlist yet: push one with `hubmirror push FILE`" in n for n in empty_run.report["notices"])
    assert "no allowlist yet" in (empty_run.text or "")


def test_a_refused_push_stores_nothing(world: World, empty_run: RunResult) -> None:
    bad = world.allowlist("bad.yaml", "images:\n  - source: HUB/library/alpine\n    tags: [3.20]\n")
    result = hubmirror("push", str(bad))
    assert result.code == 1
    assert f"{bad}:3: images[0].tags[0]" in result.out
    assert "nothing was changed" in result.err
    assert "Traceback" not in result.err
    assert world.versions() == []
    assert world.stack.executions()[0]["executionArn"] == empty_run.execution_arn  # no run started


@pytest.fixture(scope="module")
def first_plan(world: World, empty_run: RunResult) -> tuple[Cli, dict[str, int]]:
    path = world.allowlist("allowlist.yaml", FIRST)
    assert world.stack.front is not None
    before = world.stack.front.snapshot()
    result = hubmirror("plan", str(path), "--format", "json")
    after = world.stack.front.snapshot()
    return result, {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}


def test_plan_of_a_first_allowlist_costs_one_head_per_tag_and_no_pull(first_plan: tuple[Cli, dict[str, int]]) -> None:
    result, cost = first_plan
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    assert [(i["target"], i["action"]) for i in plan["items"]] == [
        ("mirror/alpine:3.20", "copy"),
        ("mirror/busybox:1.36", "copy"),
    ]
    assert [e["change"] for e in plan["entries"]] == ["added", "added"]
    assert plan["pulls"] > 0
    assert cost.get("head_manifest") == 2
    assert cost.get("get_manifest", 0) == 0
    assert any("no allowlist yet" in note for note in plan["notes"])


@pytest.fixture(scope="module")
def pushed(world: World, first_plan: object) -> tuple[Cli, RunResult]:
    holder: dict[str, Cli] = {}

    def push() -> None:
        holder["cli"] = hubmirror("push", str(world.files / "allowlist.yaml"))

    run = world.stack.observe(push)
    return holder["cli"], run


def test_a_push_starts_a_run_that_mirrors_the_images_and_names_the_version(
    world: World, pushed: tuple[Cli, RunResult]
) -> None:
    cli, run = pushed
    assert cli.code == 0, cli.err
    version = world.versions()[0]
    assert f"allowlist version {version}" in cli.out
    assert run.status == "SUCCEEDED", run.failures()
    assert run.outcomes() == {"mirror/alpine:3.20": "copied", "mirror/busybox:1.36": "copied"}
    fetched = world.target.manifest("mirror/alpine", "3.20")
    assert fetched is not None
    assert fetched.digest == world.digests["alpine"]
    assert run.report is not None
    assert run.report["allowlist"]["version"] == version
    assert f"Allowlist: version {version}" in (run.text or "")


def test_the_same_version_delivered_again_starts_no_second_run(world: World, pushed: tuple[Cli, RunResult]) -> None:
    """EventBridge delivers at least once: the plan marks each version it runs."""
    assert world.stack.deployment is not None
    version = world.versions()[0]
    sfn = boto3.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=world.stack.deployment.state_machine_arn,
        name="redelivered",
        input=json.dumps({"allowlist_version": version}),
    )["executionArn"]
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        time.sleep(0.05)
    assert described["status"] == "SUCCEEDED"
    assert f"allowlist version {version} already started" in json.loads(described["output"])["skipped"]
    assert world.stack.lambda_runtime is not None


def test_plan_of_a_change_shows_each_entry_and_each_next_action(world: World, pushed: tuple[Cli, RunResult]) -> None:
    path = world.allowlist("allowlist.yaml", SECOND)
    assert world.stack.front is not None
    before = world.stack.front.snapshot()
    result = hubmirror("plan", str(path), "--format", "markdown")
    after = world.stack.front.snapshot()
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == f"### hubmirror plan: {path} against stack hubmirror"
    assert "**2 copy, 2 unchanged; " in lines[2]  # two new tags: busybox:1.37 and the selected redis:7.2
    assert f"| `{world.hub}/library/busybox -> busybox` | changed (tags) |" in lines
    assert f"| `{world.hub}/library/redis -> redis` | added |" in lines
    assert f"| `{world.hub}/library/redis -> redis` | selector picks `7.2` |" in lines
    rows = {
        line.split(" | ")[2]: line.split(" | ")[0].lstrip("| ")
        for line in lines
        if line.startswith("| ") and " | `mirror/" in line
    }
    assert rows == {
        "`mirror/alpine:3.20`": "unchanged",
        "`mirror/busybox:1.36`": "unchanged",
        "`mirror/busybox:1.37`": "copy",
        "`mirror/redis:7.2`": "copy",
    }
    assert after.get("head_manifest", 0) - before.get("head_manifest", 0) == 4  # one per tag
    assert after.get("get_manifest", 0) - before.get("get_manifest", 0) == 0
    assert after.get("tags_list", 0) - before.get("tags_list", 0) == 1  # the selector's tag list


def test_plan_without_access_to_the_stack_plans_the_upstream_side_and_says_so(
    world: World, monkeypatch: pytest.MonkeyPatch, pushed: object
) -> None:
    """A contributor's laptop, or a pull request from a fork: no AWS credentials at all."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(world.files / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(world.files / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # credentials found earlier in this process
    result = hubmirror("plan", str(world.allowlist("allowlist.yaml", SECOND)))
    assert result.code == 0, result.err
    assert "no AWS credentials found" in result.out
    assert "planned the upstream side only" in result.out
    assert "copy (target not read)" in result.out
    assert "Traceback" not in result.out + result.err


def test_removing_an_entry_is_shown_and_deletes_nothing(world: World, pushed: object) -> None:
    only_alpine = FIRST.split("  - source: HUB/library/busybox", maxsplit=1)[0]
    result = hubmirror("plan", str(world.allowlist("smaller.yaml", only_alpine)))
    assert result.code == 0, result.err
    assert f"removed   {world.hub}/library/busybox -> busybox  (stays in the target: a sync deletes nothing)" in (
        result.out
    )


@pytest.fixture(scope="module")
def waited(world: World, pushed: object) -> tuple[Cli, RunResult]:
    holder: dict[str, Cli] = {}

    def run() -> None:
        holder["cli"] = hubmirror("run", "--wait")

    result = world.stack.observe(run)
    return holder["cli"], result


def test_run_wait_shows_progress_and_prints_the_report_with_its_verdict(waited: tuple[Cli, RunResult]) -> None:
    cli, run = waited
    assert run.status == "SUCCEEDED", run.failures()
    assert cli.code == 0, cli.err
    progress = [line for line in cli.err.splitlines() if " items done" in line]
    assert progress, cli.err
    assert progress[-1].endswith(": 2 of 2 items done")  # plain lines: stderr is not a terminal here
    assert cli.out.startswith(f"hubmirror run {run.execution_arn.rsplit(':', 1)[1]}: SUCCEEDED")
    assert "unchanged" in cli.out


def test_report_prints_the_latest_report(waited: tuple[Cli, RunResult]) -> None:
    _, run = waited
    result = hubmirror("report")
    assert result.code == 0, result.err
    assert result.out.startswith(f"hubmirror run {run.execution_arn.rsplit(':', 1)[1]}: SUCCEEDED")


def test_a_failed_run_exits_1(world: World, waited: object) -> None:
    assert world.stack.front is not None
    world.stack.front.inject(Fault("head_manifest", 500, times=50, repository="library/busybox"))
    holder: dict[str, Cli] = {}
    try:
        world.stack.observe(lambda: holder.setdefault("cli", hubmirror("run", "--wait", "--only", "busybox")))
    finally:
        world.stack.front.faults.clear()
    cli = holder["cli"]
    assert cli.code == 1
    assert "FAILED" in cli.out.splitlines()[0]


def test_a_version_pushed_during_a_run_runs_when_that_run_reports(world: World, waited: object) -> None:
    """The new version's own execution finds the lock held and ends; the run holding it starts
    one for the newest version as it reports."""
    assert world.stack.deployment is not None
    assert world.stack.front is not None
    sfn = boto3.client("stepfunctions")
    s3 = boto3.client("s3")
    bucket = world.stack.deployment.bucket
    # the running execution is slowed at its first HEAD, so the push lands while it holds the lock
    world.stack.front.inject(Fault("head_manifest", 0, times=1, repository="library/alpine", delay=4))
    running = sfn.start_execution(
        stateMachineArn=world.stack.deployment.state_machine_arn, name="slow-run", input="{}"
    )["executionArn"]
    deadline = time.monotonic() + 60
    while (lock := _lock_holder(s3, bucket)) != running.rsplit(":", 1)[1]:
        assert time.monotonic() < deadline, f"the run lock is held by {lock}"
        time.sleep(0.05)
    third = SECOND.replace('tags: ["1.36", "1.37"]', 'tags: ["1.37"]')
    before = {e["executionArn"] for e in world.stack.executions()}
    pushed = hubmirror("push", str(world.allowlist("allowlist.yaml", third)))
    assert pushed.code == 0, pushed.err
    version = world.versions()[0]
    own = [e for e in world.stack.executions() if e["executionArn"] not in before]
    assert len(own) == 1
    while (described := sfn.describe_execution(executionArn=own[0]["executionArn"]))["status"] == "RUNNING":
        time.sleep(0.05)
    assert described["status"] == "SUCCEEDED"
    assert "has been syncing since" in json.loads(described["output"])["skipped"]

    def follow_up() -> str:
        name = f"allowlist-{version}"
        while not any(e["name"] == name for e in world.stack.executions()):
            time.sleep(0.05)
        return next(e["executionArn"] for e in world.stack.executions() if e["name"] == name)

    result = world.stack.observe(follow_up)
    assert result.status == "SUCCEEDED", result.failures()
    assert result.report is not None
    assert result.report["allowlist"]["version"] == version
    first = sfn.describe_execution(executionArn=running)
    assert first["status"] == "SUCCEEDED"


def _lock_holder(s3: object, bucket: str) -> str | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=keys.RUN_LOCK)["Body"].read()  # type: ignore[attr-defined]
    except Exception:
        return None
    return json.loads(body).get("execution")


def test_history_lists_the_versions_and_restore_brings_one_back(world: World, waited: object) -> None:
    versions = world.versions()
    listed = hubmirror("history")
    assert listed.code == 0, listed.err
    assert [line.split()[0] for line in listed.out.splitlines()] == versions
    assert listed.out.splitlines()[0].endswith("(in force)")
    first = versions[-1]
    restored = world.stack.observe(lambda: hubmirror("restore", first))
    assert restored.status == "SUCCEEDED", restored.failures()
    assert world.versions()[0] != first  # a new version, with the first one's content
    assert restored.report is not None
    assert set(restored.outcomes()) == {"mirror/alpine:3.20", "mirror/busybox:1.36"}


#: What a broad role of the account may do: everything, as far as its own IAM goes.
EVERYTHING = [{"Effect": "Allow", "Action": "*", "Resource": "*"}]


def as_principal(monkeypatch: pytest.MonkeyPatch, credentials: dict[str, str]) -> None:
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


def test_only_the_named_writers_change_the_allowlist_and_the_report_names_who_did(
    world: World, monkeypatch: pytest.MonkeyPatch, waited: object
) -> None:
    """The bucket policy decides (the IAM stand-in evaluates it), not a check in hubmirror's code."""
    from devstack.aws.iam import user_id

    path = world.allowlist("allowlist.yaml", FIRST)
    before = world.versions()
    stranger = world.stack.add_principal("platform-admin", EVERYTHING)
    team_ci = world.stack.add_principal("team-ci", EVERYTHING)
    bot = world.stack.add_principal("release-bot", EVERYTHING, tags={"hubmirror-allowlist-writer": "true"})

    as_principal(monkeypatch, stranger)
    refused = hubmirror("push", str(path))
    assert refused.code == 2
    assert refused.err.startswith(
        "hubmirror: arn:aws:sts::123456789012:assumed-role/platform-admin/local may not change the allowlist"
    )
    assert "AllowlistWriterRoles" in refused.err
    assert world.stack.deployment is not None
    with pytest.raises(boto3.client("s3").exceptions.ClientError, match="AccessDenied"):
        boto3.client("s3").delete_object(Bucket=world.stack.deployment.bucket, Key=keys.ALLOWLIST)  # "no allowlist"
    assert world.versions() == before  # the allowlist in force is untouched

    as_principal(monkeypatch, team_ci)
    forged = boto3.client("s3")
    with pytest.raises(forged.exceptions.ClientError, match="AccessDenied"):
        forged.put_object(  # a named writer naming another writer
            Bucket=world.stack.deployment.bucket,
            Key=keys.ALLOWLIST,
            Body=path.read_bytes(),
            Tagging=f"hubmirror-writer={user_id('release-bot')}",
        )
    holder: dict[str, Cli] = {}
    run = world.stack.observe(lambda: holder.setdefault("cli", hubmirror("push", str(path))))
    assert holder["cli"].code == 0, holder["cli"].err
    assert run.report is not None
    assert run.report["allowlist"]["writer"] == user_id("team-ci")
    assert "pushed by arn:aws:sts::123456789012:assumed-role/team-ci/local (user id AROA" in (run.text or "")

    as_principal(monkeypatch, bot)  # a principal carrying the tag, named nowhere in the stack
    run = world.stack.observe(lambda: holder.__setitem__("cli", hubmirror("push", str(path))))
    assert holder["cli"].code == 0, holder["cli"].err
    assert run.report is not None
    assert run.report["allowlist"]["writer"] == user_id("release-bot")

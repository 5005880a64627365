"""Faults, one item each, on the whole local stack: each ends in its item's outcome alone,
names the side and the cause, leaves the good target tag as it was, and heals by the next run.

One stack for the module. The story, in fixtures:

1. ``synced``: a clean run mirrors every image (the target tags every later check compares to);
2. ``faulty``: every image but the hostile ones moves upstream, every fault is injected at
   once, one run; the two ``good-*`` images carry no fault and must sync all the same;
3. ``healed``: the faults are removed (the missing tag is pushed), one more run converges.

Then runs of their own: hostile execution inputs, S3 refusing writes, two executions at once.
Expected digests come from the images the test pushed, never from hubmirror's code.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.aws.iam import ServiceFault
from devstack.content.images import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, Blob, Pusher, platform_image
from devstack.registries.cdn import DownloadFault
from devstack.registries.proxy import Fault
from devstack.stack import ECR_PASSWORD, ECR_USER, RunResult, Stack
from tests.support import RegistryReader

pytestmark = pytest.mark.e2e

ITEM_DEADLINE = 15
TAG_LIST_LIMIT = 50
CHECK_TIMEOUT = 45  # seconds; the check keeps 30 for its writes: a 15 s deadline


@dataclass
class World:
    stack: Stack
    pusher: Pusher
    target: RegistryReader
    #: image name -> the digest its tag points at upstream now
    digests: dict[str, str] = field(default_factory=dict)
    #: image name -> its current image's own layer (new with each push: the one a download fault breaks)
    blob: dict[str, str] = field(default_factory=dict)
    version: int = 0

    @property
    def hub(self) -> str:
        assert self.stack.front is not None
        return self.stack.front.host

    def push(self, name: str) -> None:
        """A new image under ``library/<name>:1`` (the tag moves upstream)."""
        self.version += 1
        image = platform_image("linux/amd64", f"{name} v{self.version}", extra_layers=1)
        self.digests[name] = self.pusher.image(f"library/{name}", "1", image)
        self.blob[name] = image.layers[-1].digest


@dataclass(frozen=True)
class Case:
    """One fault: what is done to one image, and what its outcome and reason must be."""

    name: str
    inject: Callable[[World], None]
    outcome: str
    reason: str  # a regular expression the report's reason matches
    tag: str = "1"

    @property
    def target(self) -> str:
        return f"mirror/{self.name}:{self.tag}"


def _hub(world: World, fault: Fault) -> None:
    assert world.stack.front is not None
    world.stack.front.inject(fault)


def _ecr(world: World, fault: Fault) -> None:
    assert world.stack.ecr is not None
    world.stack.ecr.inject(fault)


def _cdn(world: World, name: str, mode: str, **extra: Any) -> None:
    assert world.stack.front is not None
    world.stack.front.cdn.inject(DownloadFault(mode, digest=world.blob[name], times=10, **extra))


def _moves_before_the_copy(world: World) -> None:
    assert world.stack.local_codebuild is not None
    world.stack.local_codebuild.before_build.append(lambda _build: world.push("tag-moved"))


ALWAYS = 1000  # a fault that outlasts every retry of the run
CASES = [
    Case(
        "up-missing",
        lambda w: None,
        "failed",
        r"^not found upstream: upstream .*/library/up-missing: 9\.99 not found",
        tag="9.99",
    ),
    Case(
        "up-403",
        lambda w: _hub(w, Fault("head_manifest", 403, times=ALWAYS, repository="library/up-403")),
        "failed",
        r"^authentication: upstream .*/library/up-403: access denied anonymously \(403\)",
    ),
    Case(
        "up-429",
        lambda w: _hub(w, Fault("head_manifest", 429, {"Retry-After": "1"}, times=ALWAYS, repository="library/up-429")),
        "deferred",
        r"^rate limited: upstream .*/library/up-429: the registry answered 429 .* times; deferred to a later run",
    ),
    Case(
        "up-429-once",
        lambda w: _hub(w, Fault("get_manifest", 429, {"Retry-After": "1"}, times=1, repository="library/up-429-once")),
        "copied",
        r"^copied ",
    ),
    Case(
        "up-head-503",
        lambda w: _hub(w, Fault("head_manifest", 503, times=ALWAYS, repository="library/up-head-503")),
        "failed",
        r"^unavailable: upstream .*/library/up-head-503: the registry answered 503 3 times",
    ),
    Case(
        "up-blob-500",
        lambda w: _hub(w, Fault("get_blob", 500, times=ALWAYS, repository="library/up-blob-500")),
        "failed",
        r"^copy failed: unavailable: upstream .*/library/up-blob-500: server error 500",
    ),
    Case(
        "blob-reset",
        lambda w: _cdn(w, "blob-reset", "reset"),
        "failed",
        r"^copy failed: download: upstream .*/library/blob-reset: blob sha256:\w+: ",
    ),
    Case(
        "blob-slow",
        lambda w: _cdn(w, "blob-slow", "slow", delay=2.0),
        "failed",
        r"^copy failed: download: upstream .*/library/blob-slow: blob sha256:\w+: still downloading at the item's deadline",
    ),
    Case(
        "blob-truncated",
        lambda w: _cdn(w, "blob-truncated", "truncate"),
        "failed",
        r"^copy failed: download: upstream .*/library/blob-truncated: blob sha256:\w+: ",
    ),
    Case(
        "blob-corrupt",
        lambda w: _cdn(w, "blob-corrupt", "corrupt"),
        "failed",
        r"^copy failed: download: upstream .*: blob sha256:\w+: the bytes do not match the digest \(corrupt\)",
    ),
    Case("tag-moved", _moves_before_the_copy, "copied", r"^copied "),
    Case(
        "target-500",
        lambda w: _ecr(w, Fault("put_manifest", 500, times=ALWAYS, repository="mirror/target-500")),
        "failed",
        r"^copy failed: unavailable: target .*/mirror/target-500: server error 500",
    ),
    Case(
        "target-401",
        lambda w: _ecr(
            w,
            Fault(
                "blob_upload",
                401,
                {"WWW-Authenticate": 'Basic realm="ecr"'},
                times=ALWAYS,
                repository="mirror/target-401",
            ),
        ),
        "failed",
        r"^copy failed: authentication: target .*/mirror/target-401: access denied with the configured credentials \(401\)",
    ),
    Case(
        "target-down",
        lambda w: _ecr(w, Fault("head_manifest", 503, times=ALWAYS, repository="mirror/target-down")),
        "failed",
        r"^unavailable: target .*/mirror/target-down: the registry answered 503 3 times",
    ),
    Case(
        "check-slow",
        lambda w: _hub(w, Fault("head_manifest", 0, times=1, repository="library/check-slow", delay=CHECK_TIMEOUT)),
        "deferred",
        r"^not checked in time",
    ),
]
HOSTILE = ["absurd-size", "unknown-type", "nested-index"]
GOOD = ["good-a", "good-b"]


def _allowlist(world: World) -> str:
    lines = ["images:"]
    for case in CASES:
        lines += [
            f"  - source: {world.hub}/library/{case.name}",
            f'    tags: ["{case.tag}"]',
            f"    target: {case.name}",
        ]
    for name in [*HOSTILE, *GOOD]:
        lines += [f"  - source: {world.hub}/library/{name}", '    tags: ["1"]', f"    target: {name}"]
    lines += [
        f"  - source: {world.hub}/library/many-tags",
        "    select:",
        "      latest: 1",
        "    target: many-tags",
    ]
    return "\n".join(lines) + "\n"


def _hostile(world: World) -> None:
    """Upstream content no registry should be trusted with, one image each."""
    base = platform_image("linux/amd64", "hostile base")
    for blob in (*base.layers, base.config):
        for name in HOSTILE:
            world.pusher.blob(f"library/{name}", blob)
    document = json.loads(base.manifest.data)
    document["layers"][-1]["size"] = 10**15  # a size claim no target can take
    world.digests["absurd-size"] = world.pusher.manifest(
        "library/absurd-size", "1", Blob(OCI_MANIFEST, json.dumps(document).encode())
    )
    unknown = {**json.loads(base.manifest.data), "artifactType": "application/vnd.example.unknown.v1"}
    unknown["config"] = {**unknown["config"], "mediaType": "application/vnd.example.unknown.config.v1+json"}
    world.pusher.blob("library/unknown-type", Blob(OCI_CONFIG, base.config.data))
    world.digests["unknown-type"] = world.pusher.manifest(
        "library/unknown-type", "1", Blob(OCI_MANIFEST, json.dumps(unknown).encode())
    )
    world.pusher.manifest("library/nested-index", base.manifest.digest, base.manifest)
    inner = Blob(
        OCI_INDEX,
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [base.manifest.descriptor(platform={"os": "linux", "architecture": "amd64"})],
            }
        ).encode(),
    )
    world.pusher.manifest("library/nested-index", inner.digest, inner)
    outer = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [inner.descriptor()]}
    world.digests["nested-index"] = world.pusher.manifest(
        "library/nested-index", "1", Blob(OCI_INDEX, json.dumps(outer).encode())
    )
    many = platform_image("linux/amd64", "many tags")
    for n in range(TAG_LIST_LIMIT + 10):
        world.pusher.image("library/many-tags", f"1.{n}", many)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    stack = Stack(
        Path(tmp_path_factory.mktemp("faults")),
        extra_environment={
            "HUBMIRROR_ITEM_DEADLINE_SECONDS": str(ITEM_DEADLINE),
            "HUBMIRROR_TAG_LIST_LIMIT": str(TAG_LIST_LIMIT),
        },
        lambda_timeouts={"CheckFunction": CHECK_TIMEOUT},
        ecr_rates={"PutImage": 100.0},
        parameters={"PutImageRate": "100"},
    )
    with stack:
        assert stack.ecr is not None
        world = World(stack, stack.hub_pusher(), RegistryReader(stack.ecr.host, ECR_USER, ECR_PASSWORD))
        for case in CASES:
            if case.tag == "1":
                world.push(case.name)
        for name in GOOD:
            world.push(name)
        _hostile(world)
        stack.write_allowlist(_allowlist(world))
        yield world


def _target_digests(world: World) -> dict[str, str | None]:
    names = [c.name for c in CASES if c.tag == "1"] + GOOD
    found = {}
    for name in names:
        fetched = world.target.manifest(f"mirror/{name}", "1")
        found[name] = fetched.digest if fetched else None
    return found


@pytest.fixture(scope="module")
def synced(world: World) -> tuple[RunResult, dict[str, str | None]]:
    run = world.stack.run({})
    return run, _target_digests(world)


@pytest.fixture(scope="module")
def faulty(world: World, synced: tuple[RunResult, dict[str, str | None]]) -> RunResult:
    for case in CASES:
        if case.tag == "1":
            world.push(case.name)  # every image moved upstream: each needs a check and a copy
    for name in GOOD:
        world.push(name)
    for case in CASES:
        case.inject(world)
    return world.stack.run({})


@pytest.fixture(scope="module")
def healed(world: World, faulty: RunResult) -> RunResult:
    assert world.stack.front is not None
    assert world.stack.ecr is not None
    world.stack.front.faults.clear()
    world.stack.front.cdn.faults.clear()
    world.stack.ecr.faults.clear()
    image = platform_image("linux/amd64", "up-missing 9.99")
    world.digests["up-missing"] = world.pusher.image("library/up-missing", "9.99", image)
    return world.stack.run({})


# -- the faulty run ------------------------------------------------------------------------


def test_the_clean_run_mirrors_every_image_but_the_hostile_ones(
    synced: tuple[RunResult, dict[str, str | None]],
) -> None:
    run, digests = synced
    assert run.report is not None
    failed = {i["key"].rsplit("/", 1)[-1] for i in run.report["items"] if i["outcome"] == "failed"}
    assert failed == {"absurd-size:1", "nested-index:1", "up-missing:9.99", "many-tags (select)"}
    assert all(digests.values())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_fault_ends_in_its_own_outcome_and_reason(faulty: RunResult, case: Case) -> None:
    item = faulty.item(case.target)
    assert item["outcome"] == case.outcome, item
    assert re.search(case.reason, item["reason"]), item["reason"]
    assert "object at 0x" not in item["reason"]
    assert "Traceback" not in item["reason"]


@pytest.mark.parametrize(
    ("name", "outcome", "reason"),
    [
        ("absurd-size", "failed", r"declares a size of 1000000000000000 bytes; a layer is at most \d+ bytes"),
        ("unknown-type", "copied", r"^copied "),
        ("nested-index", "failed", r"is an index inside an index; nested indexes are not supported"),
    ],
)
def test_hostile_upstream_content_is_refused_in_words(
    synced: tuple[RunResult, dict[str, str | None]], name: str, outcome: str, reason: str
) -> None:
    item = synced[0].item(f"mirror/{name}:1")
    assert item["outcome"] == outcome, item
    assert re.search(reason, item["reason"]), item["reason"]


def test_a_tag_list_over_the_limit_fails_its_entry_instead_of_selecting_from_part(
    synced: tuple[RunResult, dict[str, str | None]],
) -> None:
    report = synced[0].report
    assert report is not None
    entry = next(i for i in report["items"] if i["key"].endswith("library/many-tags (select)"))
    assert entry["outcome"] == "failed"
    assert f"more than {TAG_LIST_LIMIT} tags" in entry["reason"]


def test_the_images_without_a_fault_sync_all_the_same(world: World, faulty: RunResult) -> None:
    for name in GOOD:
        assert faulty.item(f"mirror/{name}:1")["outcome"] == "copied"
        fetched = world.target.manifest(f"mirror/{name}", "1")
        assert fetched is not None
        assert fetched.digest == world.digests[name]


def test_no_good_target_tag_moves_when_its_copy_fails(
    world: World, synced: tuple[RunResult, dict[str, str | None]], faulty: RunResult
) -> None:
    before = synced[1]
    for case in CASES:
        if case.tag != "1" or case.outcome == "copied":
            continue
        fetched = world.target.manifest(f"mirror/{case.name}", "1")
        assert fetched is not None, case.name
        assert fetched.digest == before[case.name], case.name  # the image synced before, untouched
        for layer in fetched.document.get("layers", []):  # and whole: every blob verifies
            world.target.blob(f"mirror/{case.name}", layer["digest"])


def test_the_tag_moved_after_the_check_is_copied_as_checked(world: World, faulty: RunResult) -> None:
    item = faulty.item("mirror/tag-moved:1")
    fetched = world.target.manifest("mirror/tag-moved", "1")
    assert fetched is not None
    assert fetched.digest == item["upstream_digest"] != world.digests["tag-moved"]  # the newest is for the next run


def test_the_faulty_run_reports_and_fails_without_a_trace(faulty: RunResult) -> None:
    assert faulty.status == "FAILED"
    assert faulty.text is not None
    assert "Traceback" not in faulty.text
    assert "stackTrace" not in faulty.text


#: The cause each fault's report gives (README's troubleshooting table), and whether the next run retries it.
CAUSES = {
    "up-missing": ("allowlist", "the allowlist is wrong", False),
    "up-403": ("upstream-credentials", "upstream credentials", True),
    "up-429": ("rate-limit", "rate limit", True),
    "up-head-503": ("upstream-unavailable", "upstream unavailable", True),
    "up-blob-500": ("upstream-unavailable", "upstream unavailable", True),
    "blob-reset": ("upstream-unavailable", "upstream unavailable", True),
    "blob-corrupt": ("upstream-unavailable", "upstream unavailable", True),
    "target-500": ("target", "target permissions or quota", True),
    "target-401": ("target", "target permissions or quota", True),
    "target-down": ("target", "target permissions or quota", True),
    "check-slow": ("hubmirror", "hubmirror itself", True),
}


def test_each_failed_or_deferred_image_carries_its_cause_and_next_step_everywhere(faulty: RunResult) -> None:
    """The report's JSON and text, the chat message and the image's event say the same cause and remedy."""
    events = _image_events(faulty)
    assert faulty.text is not None
    assert faulty.chat is not None
    chat = faulty.chat["content"]
    checked = 0
    targets = {case.name: case.target for case in CASES}
    for name, (cause, title, retried) in CAUSES.items():
        target = targets[name]
        item = faulty.item(target)
        assert (item["cause"], item["retried"]) == (cause, retried), (name, item)
        assert item["next_step"]
        detail = events[target]["detail"]
        assert (detail["cause"], detail["next_step"], detail["retried"]) == (cause, item["next_step"], retried)
        text_lines = faulty.text.splitlines()
        at = next(n for n, line in enumerate(text_lines) if line.endswith(f" -> {target}") or f" -> {target} [" in line)
        assert text_lines[at + 2] == f"      cause: {title}; retried by the next run: {'yes' if retried else 'no'}"
        assert text_lines[at + 3] == f"      what to do: {item['next_step']}"
        shown = [line for line in chat["description"].splitlines() if line.startswith(f"• `{target}`")]
        assert all(f"_({title}; " in line for line in shown)  # the chat lists the first 15 images
        checked += len(shown)
    assert checked >= 8
    for hostile in ("absurd-size", "nested-index"):  # no run can mirror them: a retry will not help
        assert (faulty.item(f"mirror/{hostile}:1")["cause"], faulty.item(f"mirror/{hostile}:1")["retried"]) == (
            "allowlist",
            False,
        )
    steps = " ".join(chat["nextSteps"])
    assert "fix the entry's source or tags in the allowlist" in steps  # the missing tag's remedy leads
    region = "us-east-1"
    console = f"https://{region}.console.aws.amazon.com/"
    assert (
        f"Execution: {console}states/home?region={region}#/v2/executions/details/{faulty.execution_arn}" in faulty.text
    )
    assert f"Full report: {console}s3/object/" in faulty.text
    assert any(step.startswith(f"Execution: {console}states/") for step in chat["nextSteps"])
    assert any(step.startswith(f"Full report: {console}s3/object/") for step in chat["nextSteps"])


def _image_events(run: RunResult) -> dict[str, dict[str, Any]]:
    return {e["detail"]["target"]: e for e in run.published if e["detail-type"] != "Sync Completed"}


def test_programs_get_one_event_per_image_that_changed_or_failed_and_one_for_the_run(faulty: RunResult) -> None:
    """An EventBridge rule on the default bus ({"source": ["hubmirror"]}) -> SQS, as a user sets it up."""
    outcomes = faulty.outcomes()
    news = {t: o for t, o in outcomes.items() if o in ("copied", "built", "deferred", "failed")}
    events = _image_events(faulty)
    assert {t: e["detail"]["outcome"] for t, e in events.items()} == news
    assert len(events) == len([e for e in faulty.published if e["detail-type"] != "Sync Completed"])  # one each
    for target, event in events.items():
        assert event["source"] == "hubmirror"
        assert event["detail-type"] == "Image " + news[target].capitalize()
        assert event["detail"]["reason"] == faulty.item(target)["reason"][:2000]
    (run,) = [e for e in faulty.published if e["detail-type"] == "Sync Completed"]
    assert faulty.report is not None
    assert run["detail"]["counts"] == faulty.report["counts"]
    assert run["detail"]["status"] == "failed"
    assert run["detail"]["report"].startswith("s3://")
    assert "Notices" not in (faulty.text or "")  # every event was taken


def test_a_warm_run_puts_only_the_run_event(healed: RunResult, world: World) -> None:
    again = world.stack.run({"only": ["good-a", "good-b"]})
    assert again.outcomes() == {"mirror/good-a:1": "unchanged", "mirror/good-b:1": "unchanged"}
    assert [e["detail-type"] for e in again.published] == ["Sync Completed"]


# -- the run after ---------------------------------------------------------------------------


def test_a_warm_run_spends_one_head_on_each_image_no_run_can_mirror(world: World, healed: RunResult) -> None:
    """The hostile images were refused by the first runs' jobs, which remembered why: a later run
    reports the same refusal for one HEAD each, no manifest GET and nothing written."""
    front = world.stack.front
    assert front is not None
    front.reset_counts()
    run = world.stack.run({})
    assert run.iam_refused == []  # the job may write the refusal, the check may read it (and list: 404, not 403)
    for name in ("absurd-size", "nested-index"):
        asked = [kind for kind, repository, _ in front.log if repository == f"library/{name}"]
        assert asked == ["head_manifest"], (name, asked)
        item = run.item(f"mirror/{name}:1")
        assert (item["outcome"], item["cause"]) == ("failed", "allowlist")
        assert "remembered from run" in item["reason"]
        assert world.target.manifest(f"mirror/{name}", "1") is None


def test_the_run_after_the_faults_converges_in_its_normal_time(
    world: World, synced: tuple[RunResult, dict[str, str | None]], healed: RunResult
) -> None:
    assert healed.report is not None
    outcomes = healed.outcomes()
    faulted = {c.target for c in CASES}
    assert {t: o for t, o in outcomes.items() if t in faulted and o not in ("copied", "unchanged")} == {}
    for case in CASES:
        wanted = world.digests[case.name]
        fetched = world.target.manifest(f"mirror/{case.name}", case.tag)
        assert fetched is not None
        assert fetched.digest == wanted, case.name
    # no claim left behind makes it wait: about as long as the clean run that copied everything
    assert healed.seconds < synced[0].seconds + 60, (healed.seconds, synced[0].seconds)


# -- runs of their own -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("execution_input", "words"),
    [
        ([], "must be a JSON object"),
        ("x", "not a string"),
        (42, "not a number"),
        (True, "not a boolean"),
        (None, "not null"),
        ({"only": []}, "'only' is empty"),
        ({"only": [f"no-{n}" for n in range(900)]}, "'no-4' and 895 more"),
        ({"only": ["x"] * 5000}, "'only' names 5000 images, more than 1000"),
        ({"fast": True, "only": ["good-a"]}, "unknown execution input key 'fast'"),
        ({"force": "yes"}, "'force' must be true or false"),
    ],
    ids=[
        "list",
        "string",
        "number",
        "boolean",
        "null",
        "empty-only",
        "unknown-names",
        "too-many",
        "unknown-key",
        "type",
    ],
)
def test_a_hostile_execution_input_is_refused_with_a_short_report(
    world: World, healed: RunResult, execution_input: object, words: str
) -> None:
    run = world.stack.run(execution_input)
    assert run.status == "FAILED"
    assert run.report is not None
    assert words in (run.report["plan_error"] or "")
    assert len(run.report["plan_error"]) < 1000
    assert run.builds == []
    # the plan refused it and the report said so; no check ran, so no registry was asked
    assert sorted(name.rsplit("-", 1)[-1] for name in run.invocations) == ["PlanFunction", "ReportFunction"]


@pytest.mark.parametrize(
    ("resource", "check"),
    [
        ("*/runs/*/plan.json", "plan"),
        ("*/runs/*/outcomes/*-copy.json", "outcomes"),
        ("*/runs/*/report.json", "report"),
    ],
)
def test_s3_refusing_a_write_still_ends_in_a_report_and_the_next_run_heals(
    world: World, healed: RunResult, resource: str, check: str
) -> None:
    world.push("good-a")
    world.stack.inject_aws(
        ServiceFault(
            "s3:PutObject",
            f"arn:aws:s3:::{resource}",
            500,
            "InternalError",
            "We encountered an internal error. Please try again.",
            times=ALWAYS,
        )
    )
    try:
        run = world.stack.run({"only": ["good-a"]})
    finally:
        world.stack.clear_aws_faults()
    text = run.text or ""
    assert "Traceback" not in text
    assert "stackTrace" not in text
    if check == "plan":
        assert run.report is not None
        assert "InternalError" in (run.report["plan_error"] or "")
    elif check == "outcomes":  # the job copied, then could not say so: the target says it
        assert run.report is not None
        item = run.item("mirror/good-a:1")
        assert item["outcome"] == "copied", item
        assert item["reason"].startswith("in place in the target"), item
    else:  # the report itself could not be saved: the last-resort message, short and plain
        assert run.subject == "hubmirror FAILED: the report step failed"
        assert run.execution_arn.rsplit(":", 1)[1] in text
        assert "/aws/lambda/" in text
    again = world.stack.run({"only": ["good-a"]})
    assert again.outcomes() == {"mirror/good-a:1": "copied" if check == "plan" else "unchanged"}
    fetched = world.target.manifest("mirror/good-a", "1")
    assert fetched is not None
    assert fetched.digest == world.digests["good-a"]


def test_two_executions_at_once_sync_once_and_the_second_says_why(world: World, healed: RunResult) -> None:
    world.push("good-b")
    assert world.stack.front is not None
    before = world.stack.front.snapshot()
    results: dict[str, RunResult] = {}

    def start(name: str) -> None:
        results[name] = world.stack.run({"only": ["good-b"]}, name=name)

    threads = [threading.Thread(target=start, args=(f"together-{n}-{time.time_ns()}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(r.status for r in results.values())
    assert statuses == ["FAILED", "SUCCEEDED"], statuses
    published = _published(world)
    refused = [m for m in published if "another execution" in m]
    assert len(refused) == 1
    assert re.search(r"another execution, together-\d-\d+, has been syncing since", refused[0])
    after = world.stack.front.snapshot()
    assert after.get("get_manifest", 0) - before.get("get_manifest", 0) == 1  # one copy, one pull
    fetched = world.target.manifest("mirror/good-b", "1")
    assert fetched is not None
    assert fetched.digest == world.digests["good-b"]


def _published(world: World) -> list[str]:
    from moto.sns.models import sns_backends

    from devstack.aws.deploy import ACCOUNT, REGION

    assert world.stack.deployment is not None
    topic = sns_backends[ACCOUNT][REGION].topics[world.stack.deployment.topic_arn]
    return [str(message) for _, message, *_ in topic.sent_notifications]


def test_every_execution_of_this_module_published_one_report_without_a_trace(world: World, healed: RunResult) -> None:
    assert world.stack.deployment is not None
    sfn = boto3.client("stepfunctions")
    pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=world.stack.deployment.state_machine_arn)
    executions = [e for page in pages for e in page["executions"]]
    assert all(e["status"] != "RUNNING" for e in executions)
    published = _published(world)
    assert len(published) == len(executions)  # one message per execution, whatever its end
    for message in published:
        assert "Traceback" not in message
        assert "stackTrace" not in message

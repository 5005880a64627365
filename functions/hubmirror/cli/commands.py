"""The ``hubmirror`` commands. Each returns an exit code (:mod:`hubmirror.cli`) and prints for people.

The logic is the Lambdas': the allowlist's rules, the plan's expansion, the check's decision, the
report's text. This module only reads files and the stack, and prints.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from hubmirror import __version__
from hubmirror.adapters import aws
from hubmirror.adapters.ecr import Ecr
from hubmirror.adapters.publickeys import KeyReader
from hubmirror.adapters.registry.client import RegistryClient
from hubmirror.adapters.s3 import Store
from hubmirror.adapters.stepfunctions import Executions
from hubmirror.allowlist.rules import Allowlist, AllowlistError, parse_allowlist
from hubmirror.allowlist.schema import allowlist_schema
from hubmirror.cli.output import Progress, plan_json, plan_markdown, plan_text
from hubmirror.cli.stack import AccessError, StackInfo, aws_problem, find_stack
from hubmirror.domain import keys
from hubmirror.domain.items import InputError, RunOptions
from hubmirror.steps import report as reporting
from hubmirror.steps.plan import WRITER_ARN_TAG, WRITER_TAG
from hubmirror.steps.preview import Preview, preview

OK, FAILED, ERROR, NO_VERDICT = 0, 1, 2, 3
#: The rate-limit floor a stack keeps unless deployed with another (template parameter RateLimitFloor).
DEFAULT_FLOOR = 10
POLL_SECONDS = 2.0


def _err(message: str) -> None:
    print(f"hubmirror: {message}", file=sys.stderr)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError as exc:
        _err(f"cannot read {path}: {exc.strerror or exc}")
        return None


def _count(n: int, noun: str) -> str:
    """``1 image``, ``2 images``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _parse(path: Path, data: bytes) -> Allowlist | None:
    """The validated allowlist, or None after printing every problem (file, line, path, rule)."""
    try:
        allowlist = parse_allowlist(data, source=str(path))
    except AllowlistError as exc:
        for line in exc.lines():
            print(line)
        print(f"{path}: {_count(len(exc.problems), 'problem')}; nothing was changed", file=sys.stderr)
        return None
    for note in allowlist.notes:  # advice for the reviewer; stdout stays the command's output
        print(note.format(str(path)), file=sys.stderr)
    return allowlist


def _stack(name: str) -> StackInfo:
    stack = find_stack(name)
    if stack.version and stack.version != __version__:
        _err(
            f"warning: this is hubmirror {__version__}; stack {name} runs {stack.version} "
            "(install the CLI of the deployed version, or deploy this one)"
        )
    return stack


def _aws(doing: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except (ClientError, BotoCoreError) as exc:
        raise aws_problem(exc, doing) from None


# -- validate, schema ----------------------------------------------------------------------
def validate(paths: Sequence[Path]) -> int:
    worst = OK
    for path in paths:
        data = _read(path)
        if data is None:
            worst = max(worst, ERROR)
            continue
        allowlist = _parse(path, data)
        if allowlist is None:
            worst = max(worst, FAILED)
            continue
        tags = sum(len(e.tags) for e in allowlist.entries)
        pins = sum(len(e.pinned) for e in allowlist.entries)
        selectors = sum(1 for e in allowlist.entries if e.selector is not None)
        images = _count(len(allowlist.entries), "image")
        print(f"{path}: OK ({images}: {_count(tags, 'tag')}, {pins} pinned, {_count(selectors, 'selector')})")
    return worst


def schema() -> int:
    print(json.dumps(allowlist_schema(), indent=2))
    return OK


# -- push, history, restore ------------------------------------------------------------------
def _store_allowlist(stack: StackInfo, data: bytes) -> str:
    """Store a new allowlist version, tagged with its writer as the bucket policy requires."""
    identity = _aws(
        "asking AWS who is pushing (sts:GetCallerIdentity)", lambda: aws.client("sts").get_caller_identity()
    )
    tags = {WRITER_TAG: str(identity["UserId"]), WRITER_ARN_TAG: str(identity["Arn"])}
    try:
        return Store(stack.bucket).put_version(keys.ALLOWLIST, data, "application/yaml", tags)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "AccessDenied":
            raise aws_problem(exc, f"storing the allowlist in s3://{stack.bucket}/{keys.ALLOWLIST}") from None
        raise AccessError(
            f"{identity['Arn']} may not change the allowlist of stack {stack.name}: its bucket policy lets only the "
            "roles named in the stack's AllowlistWriterRoles parameter, and principals tagged "
            "hubmirror-allowlist-writer=true, store it (and the role needs s3:PutObject on it); nothing was changed"
        ) from None
    except BotoCoreError as exc:
        raise aws_problem(exc, f"storing the allowlist in s3://{stack.bucket}/{keys.ALLOWLIST}") from None


def push(path: Path, stack_name: str) -> int:
    data = _read(path)
    if data is None:
        return ERROR
    if _parse(path, data) is None:
        return FAILED
    stack = _stack(stack_name)
    version = _store_allowlist(stack, data)
    print(f"pushed {path} as allowlist version {version} (s3://{stack.bucket}/{keys.ALLOWLIST})")
    if stack.runs_on_push:
        print(f"a run starts for it now: follow it with `hubmirror report --stack {stack_name}` when it ends")
    else:
        print(f"the next scheduled run uses it; start one now with `hubmirror run --stack {stack_name} --wait`")
    return OK


def history(stack_name: str) -> int:
    stack = _stack(stack_name)
    versions = _aws("listing the allowlist's versions", lambda: Store(stack.bucket).versions(keys.ALLOWLIST))
    if not versions:
        print(f"stack {stack_name} has no allowlist yet: push one with `hubmirror push FILE`")
        return OK
    for v in versions:
        mark = "  (in force)" if v["latest"] and not v["deleted"] else ""
        what = "deleted" if v["deleted"] else f"{v['size']} bytes"
        print(f"{v['version']}  {v['modified']}  {what}{mark}")
    return OK


def restore(version: str, stack_name: str) -> int:
    stack = _stack(stack_name)
    store = Store(stack.bucket)
    found = _aws(f"reading allowlist version {version}", lambda: store.find_version(keys.ALLOWLIST, version))
    if found is None:
        _err(f"stack {stack_name} has no allowlist version {version} (`hubmirror history` lists them)")
        return ERROR
    if _parse(Path(f"allowlist.yaml (version {version})"), found[0]) is None:
        return FAILED  # the rules are stricter now than when it was stored
    new = _store_allowlist(stack, found[0])
    print(f"restored allowlist version {version} as version {new}")
    return OK


# -- run, report ---------------------------------------------------------------------------
def _report_of(store: Store, run: str) -> reporting.Report | None:
    doc = _aws(f"reading the report of {run}", lambda: store.find_json(keys.report(run)))
    return reporting.Report.from_document(doc) if doc is not None else None


def _print_report(report: reporting.Report, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(reporting.document(report, cap=len(report.outcomes)), indent=2, sort_keys=True))
    else:
        sys.stdout.write(reporting.text(report, cap=len(report.outcomes)))


def _verdict(report: reporting.Report) -> int:
    return FAILED if report.failed else OK


def _done_items(store: Store, run: str, seen: dict[str, int]) -> int:
    """Items with an outcome so far (each outcome file read once)."""
    for key in store.keys(keys.folder(run, "outcomes")):
        if key not in seen:
            seen[key] = len(store.get_json(key))
    return sum(seen.values())


def run(stack_name: str, *, only: Sequence[str], force: bool, dry_run: bool, wait: bool, fmt: str) -> int:
    options: dict[str, Any] = {}
    if only:
        options["only"] = list(only)
    if force:
        options["force"] = True
    if dry_run:
        options["dry_run"] = True
    try:
        RunOptions.parse(options)  # the plan's own check, before anything starts
    except InputError as exc:
        _err(str(exc))
        return ERROR
    stack = _stack(stack_name)
    executions = Executions()
    # named as the console names a manual run, with who started it: the CLI
    name = time.strftime("cli-%Y%m%dT%H%M%SZ-", time.gmtime()) + uuid.uuid4().hex[:8]
    arn = _aws("starting an execution", lambda: executions.start(stack.state_machine, name, json.dumps(options)))
    print(f"started {name} ({arn})", file=sys.stderr if wait else sys.stdout)
    if not wait:
        print(f"follow it with `hubmirror report --stack {stack_name} {name}` when it ends")
        return OK
    store = Store(stack.bucket)
    progress = Progress()
    seen: dict[str, int] = {}
    total: int | None = None
    while True:
        status = _aws("reading the execution", lambda: executions.describe(arn))
        state = str(status["status"])
        if total is None:
            plan = _aws("reading the plan", lambda: store.find_json(keys.plan(name)))
            total = len(plan["items"]) + len(plan.get("failures", [])) if plan else None
        done = _aws("reading outcomes", lambda: _done_items(store, name, seen)) if total is not None else 0
        progress.show(min(done, total or 0), total, state.lower())
        if state != "RUNNING":
            break
        time.sleep(POLL_SECONDS)
    progress.end()
    report = _report_of(store, name)
    if report is None:
        output = json.loads(status.get("output") or "{}")
        if state == "SUCCEEDED" and output.get("skipped"):
            print(f"{name} had nothing to do: {output['skipped']}")
            return OK
        _err(f"{name} ended {state} without a report ({status.get('error', '')} {status.get('cause', '')})".strip())
        return NO_VERDICT
    _print_report(report, fmt)
    return _verdict(report)


def report(stack_name: str, run_name: str | None, fmt: str) -> int:
    stack = _stack(stack_name)
    store = Store(stack.bucket)
    if run_name is None:
        for name in _aws("listing executions", lambda: Executions().recent(stack.state_machine)):
            found = _report_of(store, name)
            if found is not None:
                _print_report(found, fmt)
                return _verdict(found)
        _err(f"stack {stack_name} has no report yet: start a run with `hubmirror run --stack {stack_name} --wait`")
        return ERROR
    found = _report_of(store, run_name)
    if found is None:
        _err(f"no report for run {run_name} in stack {stack_name} (still running, or another name?)")
        return ERROR
    _print_report(found, fmt)
    return _verdict(found)


# -- plan ----------------------------------------------------------------------------------
@cache
def _upstream(host: str) -> RegistryClient:
    return RegistryClient(host)


def plan(path: Path, stack_name: str, fmt: str, floor: int) -> int:
    data = _read(path)
    if data is None:
        return ERROR
    proposed = _parse(path, data)
    if proposed is None:
        return FAILED
    notes: list[str] = []
    deployed: Allowlist | None = None
    target: RegistryClient | None = None
    prefix = "mirror"
    try:
        stack = _stack(stack_name)
        prefix = stack.target_prefix
        found = _aws("reading the deployed allowlist", lambda: Store(stack.bucket).find_version(keys.ALLOWLIST))
        if found is None:
            notes.append(f"stack {stack_name} has no allowlist yet: every entry is new")
        else:
            try:
                deployed = parse_allowlist(found[0], source=f"allowlist.yaml (version {found[1]})")
            except AllowlistError as exc:
                notes.append(f"the deployed allowlist (version {found[1]}) breaks a rule: {exc.lines()[0]}")
        credentials = _aws("logging in to the target registry", lambda: Ecr().credentials())
        target = RegistryClient(stack.target_registry, credentials, side="target")
    except AccessError as exc:
        notes.append(
            f"{exc}; planned the upstream side only: entry changes are not known, and copies are shown for "
            "tags the target may already hold"
        )
    result: Preview = preview(
        proposed,
        deployed=deployed,
        prefix=prefix,
        list_tags=lambda ref: _upstream(ref.api_host).tags(ref.repository),
        upstream=_upstream,
        target=target,
        floor=floor,
        public_keys=KeyReader(),
    )
    result.notes.extend(notes)
    result.notes.extend(note.format(str(path)) for note in proposed.notes)  # for the pull request's reviewer
    title = f"hubmirror plan: {path} against stack {stack_name}"
    render = {"text": lambda: plan_text(result, title=title), "markdown": lambda: plan_markdown(result, title=title)}
    sys.stdout.write(render.get(fmt, lambda: plan_json(result))())
    return FAILED if result.failed else OK

"""hubmirror against ``skopeo sync``, into the same strict ECR stand-in, on the local stack (``make bench``).

Generates N images in the local hub (repositories of four tags sharing a base and a family
layer, a third of them two-platform). skopeo cannot build, so the compared figures are of a
copy-only workload: every item is a copy. The items ``plan`` gives build lines (one in 25)
are measured apart, hubmirror only: added to the synced mirror after the comparison.

Both tools write into the same strict ECR stand-in (:mod:`devstack.registries.ecrfront`: ``PutImage`` at
10 a second, blob downloads redirected, mounts refused): hubmirror under its prefix, ``skopeo
sync`` under ``skopeo/``, whose repositories are made first with ``CreateRepository`` (no
creation template covers that prefix, so ECR would refuse the push otherwise). Every repeat
runs on a fresh stack, so each cold sync starts from empty targets, an empty bucket and an
empty blob index; in each repeat, for both tools: a cold sync, a warm no-op sync and one changed
tag among N; then hubmirror's builds. Every figure is the median of the repeats.

Measured: wall time; upstream requests by kind and blob bytes (counted at the hub front);
``PutImage`` calls and the 429s sent (counted at the ECR front); for hubmirror also state
transitions and Lambda invocations (map-run children included), CodeBuild builds, the largest
state payload and a cost estimate per run at published AWS prices. hubmirror's copy time is its
cold time minus its warm time (plan, check and report taken out), set against the floor the
``PutImage`` rate sets: calls ÷ rate. skopeo sync fails some images on ECR's throttling; after
its cold sync it is run again over those alone until none fails, and the cold sync plus those
is its time to a complete mirror. Writes ``benchmarks/results.json``; ``--markdown FILE`` prints
a results file as the Markdown table CONTRIBUTING.md shows.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3

from devstack.content.images import platform_image
from devstack.content.workload import (
    Item,
    Workload,
    plan,
    push,
    skopeo_sync_file,
    tags_by_repository,
    with_builds,
)
from devstack.procs import stop_on_sigterm
from devstack.registries.ecrfront import DEFAULT_RATES, EcrFront
from devstack.stack import ECR_PASSWORD, ECR_USER, RunResult, Stack

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("head_manifest", "get_manifest", "get_blob", "tags_list", "token", "rejected_429")
#: What the ECR front counts that the figures use: manifests accepted, 429s sent (by action too).
TARGET_KINDS = ("PutImage", "rejected_429", "throttled_PutImage", "mount_refused", "blob_redirect")
SCENARIOS = ("cold", "warm", "one_changed")
TOOLS = ("hubmirror", "skopeo_sync")
#: skopeo writes here, beside hubmirror's prefix, in the same registry.
SKOPEO_PREFIX = "skopeo"
#: ``skopeo sync --retry-times``: an image whose copy failed with an error skopeo deems
#: retryable (a registry error code such as TOOMANYREQUESTS) is copied again, up to this often.
SKOPEO_RETRIES = 3
#: After a cold ``skopeo sync`` that failed images, it is run again over those alone, as an
#: operator would, up to this often: the time to a complete mirror, set beside hubmirror's.
SKOPEO_RESYNCS = 3
#: skopeo's words for an image it failed: ``Error copying ref "docker://HOST/REPOSITORY:TAG"``.
_FAILED_REF = re.compile(r'Error copying ref "docker://[^/]+/(?P<ref>[^"]+:[^":]+)"')

# Published on-demand prices (us-east-1), per unit.
PRICE_TRANSITION = 0.025 / 1000  # Step Functions Standard, per state transition
PRICE_LAMBDA_GB_SECOND = 0.0000133334  # Lambda arm64, per GB-second
PRICE_LAMBDA_REQUEST = 0.20 / 1_000_000  # Lambda, per request
PRICE_CODEBUILD_MINUTE = {"copy": 0.005, "build": 0.01}  # general1.small / general1.medium, Linux, per minute
CODEBUILD_PROVISIONING_SECONDS = 45  # a build's queue + provisioning + source download, billed too
LAMBDA_GB = 0.5  # MemorySize 512 in template.yaml


@dataclass
class Measure:
    """One run of one tool: its wall time, what it asked upstream, what the target saw."""

    seconds: float
    requests: dict[str, int]
    blob_bytes: int
    target: dict[str, int]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 3),
            "requests": self.requests,
            "blob_bytes": self.blob_bytes,
            "target": self.target,
            **self.extra,
        }


def cpu_times() -> tuple[int, int]:
    """This machine's busy and total CPU time so far (jiffies, all cores), from ``/proc/stat``."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


class PutImageClock:
    """Samples the ECR front's ``PutImage`` and 429 counts while a run goes on, to tell when the
    run's manifests were written: how long before the first, over what window, at what rate,
    how many in each second; and how busy the machine's CPUs were meanwhile."""

    def __init__(self, front: EcrFront, interval: float = 0.05) -> None:
        self.front = front
        self.interval = interval
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="put-image-clock", daemon=True)
        self._started = 0.0
        self._cpu = (0, 0)
        self.cpu_busy: float | None = None

    def _read(self) -> tuple[float, int, int]:
        counts = self.front.snapshot()
        return time.monotonic() - self._started, counts.get("PutImage", 0), counts.get("rejected_429", 0)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(self._read())

    def __enter__(self) -> PutImageClock:
        self._started = time.monotonic()
        self._cpu = cpu_times()
        self.samples.append(self._read())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(self._read())
        busy, total = (now - then for now, then in zip(cpu_times(), self._cpu, strict=True))
        self.cpu_busy = round(busy / total, 2) if total else None

    def summary(self) -> dict[str, Any]:
        """Seconds from the start to the first and the last ``PutImage``, and the rate between."""
        base_puts, base_429 = self.samples[0][1], self.samples[0][2]
        calls = self.samples[-1][1] - base_puts
        if calls == 0:
            return {"calls": 0, "cpu_busy": self.cpu_busy}
        per_second = [0] * (int(self.samples[-1][0]) + 1)
        for (_, before, _), (t, after, _) in itertools.pairwise(self.samples):
            per_second[int(t)] += after - before
        first = next(t for t, puts, _ in self.samples if puts > base_puts)
        last = next(t for t, puts, _ in self.samples if puts == self.samples[-1][1])
        window = max(last - first, self.interval)
        return {
            "calls": calls,
            "rejected_429": self.samples[-1][2] - base_429,
            "first_s": round(first, 2),
            "last_s": round(last, 2),
            "window_s": round(window, 2),
            "rate_per_s": round(calls / window, 2),
            "per_second": per_second,
            "cpu_busy": self.cpu_busy,
        }


def delta(after: dict[str, int], before: dict[str, int], kinds: tuple[str, ...]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in kinds}


def _at(event: dict[str, Any]) -> float:
    stamp = event["timestamp"]
    return (datetime.fromisoformat(stamp) if isinstance(stamp, str) else stamp).timestamp()


def copy_phase(run: RunResult) -> float | None:
    """Seconds from the first CodeBuild job submitted to the last one ended (its history)."""
    submitted = [_at(e) for e in run.task_events("Submitted", "codebuild")]
    ended = [_at(e) for kind in ("Succeeded", "Failed") for e in run.task_events(kind, "codebuild")]
    return round(max(ended) - min(submitted), 2) if submitted and ended else None


def cost(run: RunResult, items: int) -> dict[str, Any]:
    invocations = sum(run.invocations.values())
    billed_minutes = {
        build_id: math.ceil((seconds + CODEBUILD_PROVISIONING_SECONDS) / 60)
        for build_id, seconds in zip(run.builds, run.build_seconds, strict=True)
    }
    codebuild = sum(
        minutes * PRICE_CODEBUILD_MINUTE["build" if "BuildProject" in build_id else "copy"]
        for build_id, minutes in billed_minutes.items()
    )
    transitions = run.state_transitions * PRICE_TRANSITION
    lambda_cost = run.lambda_seconds * LAMBDA_GB * PRICE_LAMBDA_GB_SECOND + invocations * PRICE_LAMBDA_REQUEST
    return {
        "state_transitions": run.state_transitions,
        "state_transitions_per_item": round(run.state_transitions / items, 3),
        "lambda_invocations": invocations,
        "lambda_invocations_per_item": round(invocations / items, 4),
        "lambda_gb_seconds": round(run.lambda_seconds * LAMBDA_GB, 2),
        "codebuild_builds": len(run.builds),
        "codebuild_seconds": [round(s, 1) for s in run.build_seconds],
        "codebuild_billed_minutes": sum(billed_minutes.values()),
        "largest_payload_bytes": run.largest_payload(),
        "usd": {
            "step_functions": round(transitions, 6),
            "lambda": round(lambda_cost, 6),
            "codebuild": round(codebuild, 6),
            "total": round(transitions + lambda_cost + codebuild, 6),
        },
    }


def measured(stack: Stack, action: Callable[[], dict[str, Any]]) -> Measure:
    """Run ``action`` (one sync), counting at both fronts and timing it."""
    assert stack.front is not None
    assert stack.ecr is not None
    hub_before, ecr_before = stack.front.snapshot(), stack.ecr.snapshot()
    started = time.monotonic()
    with PutImageClock(stack.ecr) as clock:
        extra = action()
    seconds = extra.pop("seconds", time.monotonic() - started)
    hub_after, ecr_after = stack.front.snapshot(), stack.ecr.snapshot()
    return Measure(
        seconds=seconds,
        requests=delta(hub_after, hub_before, KINDS),
        blob_bytes=hub_after.get("blob_bytes", 0) - hub_before.get("blob_bytes", 0),
        target=delta(ecr_after, ecr_before, TARGET_KINDS),
        extra={**extra, "put_image_clock": clock.summary()},
    )


def hubmirror_run(stack: Stack, items: int) -> Measure:
    def action() -> dict[str, Any]:
        result = stack.run({})
        outcomes = result.report["counts"] if result.report else {}
        said: dict[str, Any] = {"seconds": result.seconds, "status": result.status, "outcomes": outcomes}
        if result.status != "SUCCEEDED":  # why, in the run's own words
            said["errors"] = result.failures().splitlines()[:6]
        return {**said, **cost(result, items), "copy_phase_seconds": copy_phase(result)}

    return measured(stack, action)


_LOGRUS_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def _logrus(line: str) -> dict[str, str]:
    """The fields of a logrus text line: ``level=error msg="..." error="..."``."""
    fields: dict[str, str] = {}
    for key, value in _LOGRUS_FIELD.findall(line):
        fields[key] = value[1:-1].replace('\\"', '"') if value.startswith('"') else value
    return fields


def skopeo_run(stack: Stack, yaml_path: Path, log: Path) -> Measure:
    """``skopeo sync`` of the YAML's images into the stack's ECR under ``skopeo/``."""
    return measured(stack, lambda: skopeo_sync(stack, yaml_path, log))


def skopeo_sync(stack: Stack, yaml_path: Path, log: Path) -> dict[str, Any]:
    """Run ``skopeo sync``; returns its time, status and what it said of its failures.

    ``--keep-going`` lets a failed image leave the others to be synced (and counted), and
    ``--retry-times`` copies again an image whose error skopeo deems retryable; a failure is
    recorded with skopeo's own words, not raised.
    """
    assert stack.ecr is not None
    started = time.monotonic()
    proc = subprocess.run(
        [
            "skopeo", "sync", "--src", "yaml", "--dest", "docker", "--all", "--preserve-digests",
            "--keep-going", "--retry-times", str(SKOPEO_RETRIES),
            "--dest-tls-verify=false", "--dest-creds", f"{ECR_USER}:{ECR_PASSWORD}",
            str(yaml_path), f"{stack.ecr.host}/{SKOPEO_PREFIX}",
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.monotonic() - started
    log.write_text(proc.stderr + proc.stdout)
    lines = [_logrus(line) for line in proc.stderr.splitlines() if line.startswith("time=")]
    failed = [f"{f.get('msg', '')}: {f.get('error', '')}" for f in lines if f.get("level") in ("error", "fatal")]
    failed = [reason for reason in failed if not reason.startswith("Sync failed due to previous")]
    synced = next((m.group(1) for f in lines if (m := re.match(r"Synced (\d+) images", f.get("msg", "")))), None)
    return {
        "seconds": seconds,
        "status": "ok" if proc.returncode == 0 else "failed",
        "exit_code": proc.returncode,
        "images_synced": int(synced) if synced is not None else None,
        "images_failed": len(failed),
        "retried": sum(1 for f in lines if f.get("msg", "").startswith("Failed, retrying")),
        "errors": failed[:5],
        "failed_refs": [m["ref"] for reason in failed if (m := _FAILED_REF.match(reason))],
        "log": str(log.relative_to(ROOT)) if log.is_relative_to(ROOT) else str(log),
    }


def skopeo_resync(stack: Stack, cold: dict[str, Any], workdir: Path, log_prefix: Path) -> dict[str, Any]:
    """``skopeo sync`` again over the images a cold sync failed, until none fails (at most
    :data:`SKOPEO_RESYNCS` times): what completing skopeo's mirror takes after its cold sync.
    A failure that names no image cannot be synced again: the mirror stays incomplete."""
    assert stack.front is not None
    failed: list[str] = cold["failed_refs"]
    unnamed = cold["images_failed"] - len(failed)
    seconds, runs = 0.0, 0
    while failed and runs < SKOPEO_RESYNCS:
        runs += 1
        yaml_path = workdir / "skopeo-resync.yaml"
        refs = [ref.rsplit(":", 1) for ref in failed]
        yaml_path.write_text(skopeo_sync_file(stack.front.host, tags_by_repository((r, t) for r, t in refs)))
        said = skopeo_sync(stack, yaml_path, log_prefix.with_name(f"{log_prefix.name}-{runs}.log"))
        seconds += said["seconds"]
        failed = said["failed_refs"]
        unnamed += said["images_failed"] - len(failed)
    status = "ok" if not failed and not unnamed else "failed"
    return {"seconds": seconds, "status": status, "resyncs": runs, "images_failed": len(failed) + unnamed}


def change_one_tag(stack: Stack, workload: Workload, round_: int) -> None:
    item = workload.copies[(round_ * 7) % len(workload.copies)]
    image = platform_image(item.platforms[0], f"changed {round_}", family=item.repository)
    pusher = stack.hub_pusher()
    if len(item.platforms) == 1:
        pusher.image(item.repository, item.tag, image)
    else:
        pusher.multi(
            item.repository,
            item.tag,
            [platform_image(p, f"changed {round_}", family=item.repository) for p in item.platforms],
        )


def create_skopeo_repositories(workload: Workload) -> list[str]:
    """``CreateRepository`` for every repository skopeo sync writes (``skopeo/<last part>``: it
    keeps only the last part of a source's path unless ``--scoped``)."""
    ecr = boto3.client("ecr")
    names = sorted({f"{SKOPEO_PREFIX}/{i.repository.rsplit('/', 1)[-1]}" for i in workload.items})
    for name in names:
        ecr.create_repository(repositoryName=name)
    return names


class Repeat:
    """One repeat on a fresh stack: both tools cold, warm and one changed, then hubmirror's builds."""

    def __init__(self, number: int, items: list[Item], builds: list[Item], workdir: Path) -> None:
        self.number = number
        self.items = items
        self.builds = builds
        self.workdir = workdir
        self.measures: dict[str, dict[str, Measure]] = {}
        self.workload: Workload | None = None
        self.seed_seconds = 0.0
        #: the machine's load average as the repeat started (other work on it skews wall times)
        self.load_average = os.getloadavg()[0]
        self.put_image_rate = DEFAULT_RATES["PutImage"]

    def run(self) -> None:
        self.load_average = os.getloadavg()[0]
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        # its logs kept for each repeat. hubmirror's events are put on the bus but not routed to a
        # queue: moto delivers each to SQS within PutEvents, about 10 ms an event, which AWS does
        # after answering; routed, a cold run's report would pay 2 s of the stand-in's time
        with Stack(self.workdir / f"stack-{self.number + 1}", route_events=False) as stack:
            assert stack.front is not None
            self.put_image_rate = {**DEFAULT_RATES, **stack.ecr_rates}["PutImage"]
            started = time.monotonic()
            workload = self.workload = push(self.items, stack.hub_pusher)
            self.seed_seconds = round(time.monotonic() - started, 2)
            hub = stack.front.host
            stack.write_allowlist(workload.allowlist(hub))
            create_skopeo_repositories(workload)
            sync_yaml = self.workdir / "skopeo-sync.yaml"
            sync_yaml.write_text(workload.skopeo_sync(hub))
            n = len(workload.items)

            def both(scenario: str) -> None:
                self.measures[scenario] = {
                    "hubmirror": hubmirror_run(stack, n),
                    "skopeo_sync": skopeo_run(stack, sync_yaml, logs / f"skopeo-{scenario}-{self.number + 1}.log"),
                }
                self._say(scenario)

            # start the Lambda workers (as a deployed stack's functions are warm after a run):
            # cold then means cold images, and cold - warm takes out plan, check and report
            stack.run({"dry_run": True})
            both("cold")
            cold = self.measures["cold"]["skopeo_sync"].extra
            self.measures["cold"]["skopeo_resync"] = measured(
                stack, lambda: skopeo_resync(stack, cold, self.workdir, logs / f"skopeo-resync-{self.number + 1}")
            )
            both("warm")
            change_one_tag(stack, workload, 0)  # the same tag in every repeat (each on a fresh stack)
            both("one_changed")
            if self.builds:
                stack.write_allowlist(Workload(items=[*self.items, *self.builds]).allowlist(hub))
                self.measures["builds"] = {"hubmirror": hubmirror_run(stack, n + len(self.builds))}
                self._say("builds")

    def _say(self, scenario: str) -> None:
        said = {tool: _brief(m) for tool, m in self.measures[scenario].items()}
        print(f"repeat {self.number + 1} {scenario}: {json.dumps(said)}", flush=True)


def _brief(m: Measure) -> dict[str, Any]:
    return {
        "seconds": round(m.seconds, 2),
        "status": m.extra.get("status"),
        **{k: v for k, v in m.requests.items() if v and k != "token"},
        **{f"ecr_{k}": v for k, v in m.target.items() if v},
        **({"failed": m.extra["images_failed"]} if m.extra.get("images_failed") else {}),
        **({"errors": m.extra["errors"]} if m.extra.get("errors") else {}),
    }


def median(measures: list[Measure]) -> dict[str, Any]:
    """The run of median wall time, with every run's time and status beside it."""
    middle = sorted(measures, key=lambda m: m.seconds)[len(measures) // 2]
    return {
        **middle.to_dict(),
        "seconds": round(statistics.median(m.seconds for m in measures), 3),
        "seconds_all": [round(m.seconds, 3) for m in measures],
        "status_all": [m.extra.get("status") for m in measures],
        "rejected_429_all": [m.target["rejected_429"] for m in measures],
        "images_failed_all": [m.extra.get("images_failed", 0) for m in measures],
    }


def copy_figures(repeats: list[Repeat]) -> dict[str, Any]:
    """hubmirror's copy time (cold - warm, per repeat, median) against the PutImage floor."""
    rate = repeats[0].put_image_rate
    copies = [r.measures["cold"]["hubmirror"].seconds - r.measures["warm"]["hubmirror"].seconds for r in repeats]
    phases = [p for r in repeats if (p := r.measures["cold"]["hubmirror"].extra.get("copy_phase_seconds"))]
    puts = statistics.median(r.measures["cold"]["hubmirror"].target["PutImage"] for r in repeats)
    skopeo_puts = statistics.median(r.measures["cold"]["skopeo_sync"].target["PutImage"] for r in repeats)
    skopeo_cold = statistics.median(r.measures["cold"]["skopeo_sync"].seconds for r in repeats)
    resyncs = [r.measures["cold"]["skopeo_resync"] for r in repeats]
    skopeo_complete = [
        r.measures["cold"]["skopeo_sync"].seconds + m.seconds for r, m in zip(repeats, resyncs, strict=True)
    ]
    floor = puts / rate
    copy = statistics.median(copies)
    clocks = [r.measures["cold"]["hubmirror"].extra["put_image_clock"] for r in repeats]
    return {
        "put_image_rate_per_s": rate,
        "put_image_calls": puts,
        "floor_seconds": round(floor, 2),
        "hubmirror_copy_seconds": round(copy, 2),
        "hubmirror_copy_seconds_all": [round(c, 2) for c in copies],
        "hubmirror_copy_x_floor": round(copy / floor, 2) if floor else None,
        # the same, read from the execution's history: first job submitted to last job ended
        "hubmirror_copy_phase_seconds": statistics.median(phases) if phases else None,
        "hubmirror_copy_phase_x_floor": round(statistics.median(phases) / floor, 2) if phases and floor else None,
        "hubmirror_put_image_window_s": statistics.median(c.get("window_s", 0.0) for c in clocks),
        "hubmirror_first_put_image_s": statistics.median(c.get("first_s", 0.0) for c in clocks),
        "hubmirror_put_image_rate_per_s": statistics.median(c.get("rate_per_s", 0.0) for c in clocks),
        "hubmirror_cold_cpu_busy": statistics.median(c.get("cpu_busy") or 0.0 for c in clocks),
        "skopeo_put_image_calls": skopeo_puts,
        "skopeo_cold_seconds": round(skopeo_cold, 2),
        "skopeo_cold_x_floor": round(skopeo_cold / (skopeo_puts / rate), 2) if skopeo_puts else None,
        # the cold sync, then syncs of the images it failed until none fails: a complete mirror
        "skopeo_complete_seconds": round(statistics.median(skopeo_complete), 2),
        "skopeo_complete_seconds_all": [round(c, 2) for c in skopeo_complete],
        "skopeo_resyncs_all": [m.extra["resyncs"] for m in resyncs],
        "skopeo_complete_all": [m.extra["status"] == "ok" for m in resyncs],
    }


def _status(m: dict[str, Any], sep: str) -> str:
    """``ok``, or what failed: hubmirror's runs; skopeo's images in each run, and its retries."""
    said = []
    runs = len(m["status_all"])
    if "images_failed_all" in m and any(m["images_failed_all"]):
        said.append(f"images failed per run: {'/'.join(str(n) for n in m['images_failed_all'])}")
    elif any(s not in ("ok", "SUCCEEDED") for s in m["status_all"]):
        said.append(f"failed in {sum(s not in ('ok', 'SUCCEEDED') for s in m['status_all'])} of {runs} runs")
    if m.get("retried"):
        said.append(f"{m['retried']} retried")
    return sep.join(said) or "ok"


def table(results: dict[str, Any]) -> str:
    unique = results["workload"]["unique_blobs"]
    rows = [
        (
            "scenario",
            "tool",
            "seconds",
            "status",
            "HEAD man.",
            "GET man.",
            f"GET blob (unique {unique})",
            "MB fetched",
            "PutImage",
            "429s",
            "transitions/item",
            "λ/item",
            "builds",
            "USD/run",
        )
    ]
    for scenario in (*SCENARIOS, "builds"):
        for tool in TOOLS:
            m = results.get(scenario, {}).get(tool)
            if m is None:
                continue
            r, t = m["requests"], m["target"]
            status = _status(m, "; ")
            rows.append((
                scenario, tool, f"{m['seconds']:.2f}", status,
                str(r["head_manifest"]), str(r["get_manifest"]), str(r["get_blob"]),
                f"{m['blob_bytes'] / 1e6:.2f}", str(t["PutImage"]), str(t["rejected_429"]),
                str(m.get("state_transitions_per_item", "-")), str(m.get("lambda_invocations_per_item", "-")),
                str(m.get("codebuild_builds", "-")), f"{m['usd']['total']:.4f}" if "usd" in m else "-",
            ))  # fmt: skip
    widths = [max(len(row[n]) for row in rows) for n in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    c = results["copy"]
    lines += [
        "",
        f"PutImage floor: {c['put_image_calls']:g} PutImage calls / {c['put_image_rate_per_s']:g} per s = "
        f"{c['floor_seconds']:.1f} s",
        f"hubmirror copy time (cold - warm): {c['hubmirror_copy_seconds']:.1f} s = "
        f"{c['hubmirror_copy_x_floor']}x the floor",
        f"  hubmirror cold: first PutImage after {c['hubmirror_first_put_image_s']:.1f} s, then "
        f"{c['hubmirror_put_image_rate_per_s']:g} PutImage/s over {c['hubmirror_put_image_window_s']:.1f} s; "
        f"CPUs {c['hubmirror_cold_cpu_busy']:.0%} busy",
        f"skopeo sync cold: {c['skopeo_cold_seconds']:.1f} s = {c['skopeo_cold_x_floor']}x its floor "
        f"({c['skopeo_put_image_calls']:g} PutImage calls)",
        *_complete(c, "x"),
    ]
    return "\n".join(lines)


def markdown(results: dict[str, Any]) -> str:
    """The figures as the Markdown table CONTRIBUTING.md shows (``--markdown PATH`` prints it again)."""
    n, unique = results["images"], results["workload"]["unique_blobs"]
    builds = results["workload"].get("builds_apart", 0)
    names = {"cold": "cold", "warm": "warm", "one_changed": "one changed", "builds": f"builds, apart ({builds})"}
    header = (
        f"| N={n} | tool | seconds | HEAD manifest | GET manifest (pulls) | GET blob ({unique} unique) | MB fetched "
        "| PutImage | 429s | state transitions | Lambda invocations | CodeBuild builds | USD per run |"
    )
    lines = [header, "| " + " | ".join(["---"] * 13) + " |"]
    for scenario, label in names.items():
        for tool in TOOLS:
            m = results.get(scenario, {}).get(tool)
            if m is None:
                continue
            r, t = m["requests"], m["target"]
            seconds = f"{m['seconds']:.3g}" if m["seconds"] < 10 else f"{m['seconds']:.1f}"
            if _status(m, "; ") != "ok":
                seconds += f" ({_status(m, ', ')})"
            rows = [
                label, "hubmirror" if tool == "hubmirror" else "skopeo sync", seconds,
                str(r["head_manifest"]), str(r["get_manifest"]), str(r["get_blob"]), f"{m['blob_bytes'] / 1e6:.2f}",
                str(t["PutImage"]), str(t["rejected_429"]),
                str(m.get("state_transitions", "–")), str(m.get("lambda_invocations", "–")),
                str(m.get("codebuild_builds", "–")), f"{m['usd']['total']:.2g}" if "usd" in m else "–",
            ]  # fmt: skip
            lines.append("| " + " | ".join(rows) + " |")
    c = results["copy"]
    lines += [
        "",
        f"hubmirror's copy time (cold − warm): {c['hubmirror_copy_seconds']:.1f} s, "
        f"{c['hubmirror_copy_x_floor']}× the PutImage floor ({c['put_image_calls']:g} PutImage ÷ "
        f"{c['put_image_rate_per_s']:g}/s = {c['floor_seconds']:.1f} s); skopeo sync cold: "
        f"{c['skopeo_cold_seconds']:.1f} s, {c['skopeo_cold_x_floor']}× its floor.",
    ]
    lines[-1] += " ".join(["", *_complete(c, "×")]).rstrip()
    if c.get("hubmirror_copy_phase_seconds"):
        lines[-1] += (
            f" From the first CodeBuild job submitted to the last one ended, hubmirror took "
            f"{c['hubmirror_copy_phase_seconds']:.1f} s, {c['hubmirror_copy_phase_x_floor']}× the floor."
        )
    return "\n".join(lines)


def _complete(c: dict[str, Any], times: str) -> list[str]:
    """What completing skopeo's mirror took: its cold sync, then syncs of what it failed."""
    if "skopeo_complete_seconds" not in c:  # a results file from before this figure
        return []
    runs = "/".join(str(n) for n in c["skopeo_resyncs_all"])
    rest = "" if all(c["skopeo_complete_all"]) else f", still incomplete in {c['skopeo_complete_all'].count(False)}"
    return [
        f"skopeo sync to a complete mirror (the cold sync, then again over the images it failed; "
        f"{runs} syncs again per repeat{rest}): {c['skopeo_complete_seconds']:.1f} s, "
        f"{round(c['skopeo_complete_seconds'] / c['floor_seconds'], 2)}{times} the floor."
    ]


def checks(results: dict[str, Any], repeats: list[Repeat], workload: Workload) -> dict[str, bool | None]:
    items, unique_blobs, unique_bytes = len(workload.items), len(workload.blobs), sum(workload.blobs.values())

    def every(scenario: str, tool: str) -> list[Measure]:
        return [r.measures[scenario][tool] for r in repeats]

    warm, cold = every("warm", "hubmirror"), every("cold", "hubmirror")
    payloads = [
        r.measures[scenario]["hubmirror"].extra["largest_payload_bytes"] for r in repeats for scenario in r.measures
    ]
    copy = results["copy"]
    return {
        "warm: one upstream HEAD per item": all(m.requests["head_manifest"] == items for m in warm),
        "warm: zero upstream manifest GETs": all(m.requests["get_manifest"] == 0 for m in warm),
        # the plan and the report are two invocations whatever N: the bound is stated for 1,000 items
        "warm, N >= 1000: at most 0.05 Lambda invocations per item": (
            all(m.extra["lambda_invocations_per_item"] <= 0.05 for m in warm) if items >= 1000 else None
        ),
        "warm: zero CodeBuild builds": all(m.extra["codebuild_builds"] == 0 for m in warm),
        "cold: every item copied": all(
            m.extra["status"] == "SUCCEEDED" and m.extra["outcomes"].get("copied") == items for m in cold
        ),
        "cold: each unique upstream blob fetched once (blobs fetched = unique blobs, every repeat)": all(
            m.requests["get_blob"] == unique_blobs for m in cold
        ),
        "cold: bytes fetched = the unique blobs' bytes, every repeat": all(m.blob_bytes == unique_bytes for m in cold),
        "every payload under 256 KB": max(payloads) < 256 * 1024,
        "copy time (cold - warm) <= skopeo sync's cold time into the same target": (
            copy["hubmirror_copy_seconds"] <= copy["skopeo_cold_seconds"]
        ),
        "copy time (cold - warm) <= skopeo sync's time to a complete mirror (cold, then again over what failed)": (
            copy["hubmirror_copy_seconds"] <= copy["skopeo_complete_seconds"]
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--images", type=int, default=200, help="items to generate (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="repeats, each on a fresh stack (medians; default 3)")
    parser.add_argument("--no-builds", action="store_true", help="leave out the builds measured apart")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results.json")
    parser.add_argument("--markdown", type=Path, metavar="RESULTS", help="print a results file's Markdown table")
    args = parser.parse_args(argv)
    if args.markdown is not None:
        print(markdown(json.loads(args.markdown.read_text())))
        return 0
    stop_on_sigterm()
    workdir = ROOT / ".cache" / "bench"
    items = plan(args.images, build_every=0)  # copy-only: the figures compared with skopeo
    builds = [] if args.no_builds else with_builds(items)
    repeats: list[Repeat] = []
    for number in range(args.repeat):
        repeat = Repeat(number, items, builds, workdir)
        repeat.run()
        repeats.append(repeat)
    workload = repeats[0].workload
    assert workload is not None
    unique_blobs = len(workload.blobs)
    results: dict[str, Any] = {
        "images": args.images,
        "repeat": args.repeat,
        "workload": {
            "items": len(workload.items),
            "copies": len(workload.copies),
            "repositories": len({i.repository for i in workload.items}),
            "two_platform_items": sum(1 for i in workload.items if len(i.platforms) > 1),
            "unique_blobs": unique_blobs,
            "unique_blob_bytes": sum(workload.blobs.values()),
            "builds_apart": len(builds),
            "seed_seconds": [r.seed_seconds for r in repeats],
            "load_average_at_start": [round(r.load_average, 2) for r in repeats],
        },
    }
    for scenario in (*SCENARIOS, "builds"):
        tools = repeats[0].measures.get(scenario, {})
        results[scenario] = {tool: median([r.measures[scenario][tool] for r in repeats]) for tool in tools}
    results["copy"] = copy_figures(repeats)
    results["repeats"] = [
        {scenario: {tool: _brief(m) for tool, m in tools.items()} for scenario, tools in r.measures.items()}
        for r in repeats
    ]
    results["checks"] = checks(results, repeats, workload)
    results["notes"] = [
        "copy-only workload for the compared figures (skopeo cannot build); "
        f"{len(builds)} items with build lines are measured apart ('builds'): added to the synced "
        "mirror after the comparison, hubmirror only",
        "both tools write into the same strict ECR stand-in (PutImage 10/s, blob downloads redirected, "
        f"mounts refused); skopeo sync under {SKOPEO_PREFIX}/, its repositories made by CreateRepository first",
        f"skopeo sync runs with --all --preserve-digests --keep-going --retry-times {SKOPEO_RETRIES}",
        "skopeo (containers/image) does not retry a 429 on a manifest PUT; for a manifest list it then tries "
        "the Docker list type, which --preserve-digests forbids, and reports 'Manifest list must be converted "
        "... Instructed to preserve digests' instead of the 429, an error --retry-times does not retry: such "
        "images are counted as failed (status column; their logs under .cache/bench/logs), the sync goes on",
        "every repeat on a fresh stack (empty targets, bucket and blob index); figures are medians of "
        f"{args.repeat} repeats; upstream requests are counted at the hub front, PutImage and 429s at the ECR front",
        "hubmirror copy time = cold - warm (per repeat, median): plan, check and report taken out; "
        "floor = PutImage calls / PutImage rate",
        "wall times are of this machine's local stack, not of AWS",
        "hubmirror's EventBridge events are put on the bus but not routed to a queue (moto delivers "
        "them within PutEvents, about 10 ms an event)",
        f"CodeBuild minutes assume {CODEBUILD_PROVISIONING_SECONDS}s of provisioning per build, rounded up per build",
    ]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(table(results))
    print()
    print(markdown(results))
    print()
    for check, ok in results["checks"].items():
        print(f"{'n/a ' if ok is None else 'ok  ' if ok else 'FAIL'} {check}")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""hubmirror against ``skopeo sync``, side by side, on the local stack (``make bench``).

Generates N images in the local hub (repositories of several tags sharing base and family
layers, a third of them two-platform, one item in 25 with build lines), then measures for
both tools, each with its own empty target registry:

* a cold sync, a warm no-op sync, and one changed tag among N: wall time, upstream requests
  by kind (counted at the hub front), bytes of blobs fetched from upstream;
* for hubmirror also: state transitions and Lambda invocations per item (from the
  execution history, map-run children included), CodeBuild builds, the largest state
  payload, and a cost estimate per run at published AWS prices.

Wall times of repeated runs are medians. skopeo cannot build: it syncs the copy items
only, and its figures say so. Writes ``benchmarks/results.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.images import platform_image
from devstack.procs import stop_on_sigterm
from devstack.registry import BasicAuth, Registry
from devstack.stack import ECR_PASSWORD, ECR_USER, RunResult, Stack
from devstack.workload import Workload, plan, push

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("head_manifest", "get_manifest", "get_blob", "tags_list", "token")

# Published on-demand prices (us-east-1), per unit.
PRICE_TRANSITION = 0.025 / 1000  # Step Functions Standard, per state transition
PRICE_LAMBDA_GB_SECOND = 0.0000133334  # Lambda arm64, per GB-second
PRICE_LAMBDA_REQUEST = 0.20 / 1_000_000  # Lambda, per request
PRICE_CODEBUILD_MINUTE = {"copy": 0.005, "build": 0.01}  # general1.small / general1.medium, Linux, per minute
CODEBUILD_PROVISIONING_SECONDS = 45  # a build's queue + provisioning + source download, billed too
LAMBDA_GB = 0.5  # MemorySize 512 in template.yaml


@dataclass
class Measure:
    seconds: float
    requests: dict[str, int]
    blob_bytes: int
    extra: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 3),
            "requests": self.requests,
            "blob_bytes": self.blob_bytes,
            **self.extra,
        }


def counts(stack: Stack) -> dict[str, int]:
    assert stack.front is not None
    return stack.front.snapshot()


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in (*KINDS, "rejected_429")}


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
        "codebuild_billed_minutes": sum(billed_minutes.values()),
        "largest_payload_bytes": run.largest_payload(),
        "usd": {
            "step_functions": round(transitions, 6),
            "lambda": round(lambda_cost, 6),
            "codebuild": round(codebuild, 6),
            "total": round(transitions + lambda_cost + codebuild, 6),
        },
    }


def hubmirror_run(stack: Stack, items: int) -> tuple[Measure, RunResult]:
    before = counts(stack)
    result = stack.run({})
    after = counts(stack)
    outcomes = result.report["counts"] if result.report else {}
    measure = Measure(
        seconds=result.seconds,
        requests=delta(after, before),
        blob_bytes=after.get("blob_bytes", 0) - before.get("blob_bytes", 0),
        extra={"status": result.status, "outcomes": outcomes, **cost(result, items)},
    )
    return measure, result


def skopeo_run(stack: Stack, yaml_path: Path, destination: Registry) -> Measure:
    before = counts(stack)
    started = time.monotonic()
    proc = subprocess.run(
        [
            "skopeo", "sync", "--src", "yaml", "--dest", "docker", "--all", "--preserve-digests",
            "--dest-tls-verify=false", "--dest-creds", f"{ECR_USER}:{ECR_PASSWORD}",
            str(yaml_path), f"{destination.host}/skopeo",
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"skopeo sync failed: {proc.stderr[-2000:]}")
    after = counts(stack)
    return Measure(seconds, delta(after, before), after.get("blob_bytes", 0) - before.get("blob_bytes", 0), {})


def median(measures: list[Measure]) -> dict[str, Any]:
    middle = sorted(measures, key=lambda m: m.seconds)[len(measures) // 2]
    return {
        **middle.to_dict(),
        "seconds_all": [round(m.seconds, 3) for m in measures],
        "seconds": round(statistics.median(m.seconds for m in measures), 3),
    }


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


def table(results: dict[str, Any]) -> str:
    rows = [
        (
            "scenario",
            "tool",
            "seconds",
            "HEAD man.",
            "GET man.",
            "GET blob",
            "MB fetched",
            "transitions/item",
            "λ/item",
            "builds",
            "USD/run",
        )
    ]
    for scenario in ("cold", "warm", "one_changed"):
        for tool in ("hubmirror", "skopeo_sync"):
            m = results[scenario][tool]
            r = m["requests"]
            rows.append((
                scenario, tool, f"{m['seconds']:.2f}",
                str(r["head_manifest"]), str(r["get_manifest"]), str(r["get_blob"]),
                f"{m['blob_bytes'] / 1e6:.2f}", str(m.get("state_transitions_per_item", "-")),
                str(m.get("lambda_invocations_per_item", "-")), str(m.get("codebuild_builds", "-")),
                f"{m['usd']['total']:.4f}" if "usd" in m else "-",
            ))  # fmt: skip
    widths = [max(len(row[n]) for row in rows) for n in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--images", type=int, default=200, help="items to generate (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per warm and one-changed scenario (medians)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results.json")
    args = parser.parse_args(argv)
    stop_on_sigterm()
    workdir = ROOT / ".cache" / "bench"
    results: dict[str, Any] = {"images": args.images, "repeat": args.repeat}
    with Stack(workdir / "stack") as stack:
        assert stack.front is not None
        started = time.monotonic()
        workload = push(plan(args.images), stack.hub_pusher)
        results["workload"] = {
            "items": len(workload.items),
            "copies": len(workload.copies),
            "builds": len(workload.builds),
            "repositories": len({i.repository for i in workload.items}),
            "two_platform_items": sum(1 for i in workload.items if len(i.platforms) > 1),
            "unique_blobs": len(workload.blobs),
            "unique_blob_bytes": sum(workload.blobs.values()),
            "seed_seconds": round(time.monotonic() - started, 2),
        }
        stack.write_allowlist(workload.allowlist(stack.front.host))
        sync_yaml = workdir / "skopeo-sync.yaml"
        sync_yaml.write_text(workload.skopeo_sync(stack.front.host))
        shutil.rmtree(workdir / "skopeo-target", ignore_errors=True)  # skopeo's cold run starts empty too
        destination = Registry(workdir / "skopeo-target", auth=BasicAuth(ECR_USER, ECR_PASSWORD)).start()
        try:
            print(f"workload: {results['workload']}", flush=True)
            cold, _ = hubmirror_run(stack, len(workload.items))
            results["cold"] = {
                "hubmirror": cold.to_dict(),
                "skopeo_sync": skopeo_run(stack, sync_yaml, destination).to_dict(),
            }
            results["cold"]["hubmirror"]["blob_gets_per_unique_blob"] = round(
                cold.requests["get_blob"] / len(workload.blobs), 3
            )
            print(f"cold: {json.dumps(results['cold'])}", flush=True)
            warm = [hubmirror_run(stack, len(workload.items))[0] for _ in range(args.repeat)]
            warm_skopeo = [skopeo_run(stack, sync_yaml, destination) for _ in range(args.repeat)]
            results["warm"] = {"hubmirror": median(warm), "skopeo_sync": median(warm_skopeo)}
            print(f"warm: {json.dumps(results['warm'])}", flush=True)
            changed, changed_skopeo = [], []
            for n in range(args.repeat):
                change_one_tag(stack, workload, n)
                changed.append(hubmirror_run(stack, len(workload.items))[0])
                changed_skopeo.append(skopeo_run(stack, sync_yaml, destination))
            results["one_changed"] = {"hubmirror": median(changed), "skopeo_sync": median(changed_skopeo)}
            warm_h, cold_h = results["warm"]["hubmirror"], results["cold"]["hubmirror"]
            items = len(workload.items)
            results["checks"] = {
                "warm: one upstream HEAD per item": warm_h["requests"]["head_manifest"] == items,
                "warm: zero upstream manifest GETs": warm_h["requests"]["get_manifest"] == 0,
                # the plan and the report are two invocations whatever N: the bound is stated for 1,000 items
                "warm, N >= 1000: at most 0.05 Lambda invocations per item": (
                    warm_h["lambda_invocations_per_item"] <= 0.05 if items >= 1000 else None
                ),
                "warm: zero CodeBuild builds": warm_h["codebuild_builds"] == 0,
                "cold: each unique upstream blob fetched once": cold_h["requests"]["get_blob"] == len(workload.blobs),
                "every payload under 256 KB": max(cold_h["largest_payload_bytes"], warm_h["largest_payload_bytes"])
                < 256 * 1024,
            }
            results["notes"] = [
                "skopeo sync copies the copy items only (it cannot build); hubmirror also builds "
                f"{len(workload.builds)} items with extra lines",
                "wall times are of this machine's local stack, not of AWS; "
                "medians of --repeat runs for warm and one_changed",
                f"CodeBuild minutes assume {CODEBUILD_PROVISIONING_SECONDS}s of provisioning per build, "
                "rounded up per build",
            ]
        finally:
            destination.stop()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(table(results))
    print()
    for check, ok in results.get("checks", {}).items():
        print(f"{'n/a ' if ok is None else 'ok  ' if ok else 'FAIL'} {check}")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

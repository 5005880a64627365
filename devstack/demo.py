"""``make demo``: the operator's path on the local stack, with the real state machine.

Starts the stack (a "Docker Hub", an "ECR", moto with real Lambdas and CodeBuild, deployed from
template.yaml with no allowlist), seeds a few images (one of them a two-platform index, signed
with cosign's scheme), then does what a platform engineer does, with the real ``hubmirror``
command: ``plan`` an allowlist file, ``push`` it (which starts the first run by itself),
``run --wait`` (a warm run), ``report`` and ``history``. It prints each command's output and what
a subscriber of the report and chat topics receives (saved as ``.demo/run-N-email.txt`` and
``run-N-chat.json``), writes ``.demo/summary.json`` and stops every server
it started.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3

from devstack.aws.deploy import ACCOUNT
from devstack.content import cosign
from devstack.content.images import platform_image, seed
from devstack.procs import stop_on_sigterm
from devstack.stack import ECR_PASSWORD, ECR_USER, RunResult, Stack
from hubmirror.adapters.registry.client import RegistryClient
from hubmirror.cli import main as hubmirror
from hubmirror.domain.registry.model import Credentials

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
IMAGES = (
    ("library/nginx", "1.27", ["linux/amd64", "linux/arm64"]),
    ("library/busybox", "1.36", ["linux/amd64"]),
    ("hashicorp/vault", "1.14", ["linux/amd64", "linux/arm64"]),
)


#: The team's CI role: the writer the demo's stack names, under which the commands run.
WRITER = "team-ci"
_writer: dict[str, str] = {}


@contextlib.contextmanager
def _credentials(credentials: dict[str, str]) -> Iterator[None]:
    """The environment's AWS credentials replaced for a while (boto3's default session too)."""
    saved = {name: os.environ.get(name) for name in credentials}
    os.environ.update(credentials)
    boto3.DEFAULT_SESSION = None
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        boto3.DEFAULT_SESSION = None


#: The Secrets Manager secret (in the local stack's moto) holding the demo's cosign public key.
KEY_SECRET = "hubmirror/cosign/demo"  # noqa: S105 - a name, not a password


def allowlist(hub: str) -> str:
    return f"""# The demo's allowlist: the shape of allowlist.yaml, pointing at the local hub.
images:
  - source: {hub}/library/nginx
    tags: ["1.27"]
    target: nginx
    verify: {{secret: {KEY_SECRET}}}   # copied only when its cosign signature verifies with this key
  - source: {hub}/library/busybox
    tags: ["1.36"]
    target: busybox
  - source: {hub}/hashicorp/vault
    tags: ["1.14"]
    target: vault
    platforms: [linux/amd64, linux/arm64]
    build_commands:
      - RUN mkdir /etc/vault
      - RUN chmod 777 /etc/vault
      - VOLUME ["/etc/vault"]
"""


def summarise(run: RunResult) -> dict[str, Any]:
    report = run.report or {}
    return {
        "execution": run.execution_arn.rsplit(":", 1)[1],
        "status": run.status,
        "seconds": round(run.seconds, 2),
        "outcomes": report.get("counts", {}),
        "items": {i["target"]: i["outcome"] for i in report.get("items", [])},
        "reasons": {i["target"]: i["reason"] for i in report.get("items", [])},
        "upstream_requests": {
            kind: run.upstream.get(kind, 0)
            for kind in ("head_manifest", "get_manifest", "get_blob", "referrers", "token")
        },
        "upstream_blob_bytes": run.upstream.get("blob_bytes", 0),
        "target_front": dict(sorted(run.target.items())),  # redirects, refused mounts, throttling
        # the run's health: errors the state machine's catchers recorded, and TaskFailed events
        # in the history (map-run children included); a clean run has both at zero
        "step_errors": len(run.step_errors),
        "tasks_failed": len(run.tasks_failed),
        "codebuild_builds": len(run.builds),
        "eventbridge_events": [e["detail-type"] for e in run.published],
        "lambda_invocations": sum(run.invocations.values()),
        "subject": run.subject,
    }


def signature_verifies(ecr_host: str, repository: str, digest: str, key: cosign.Key) -> bool:
    """What ``cosign verify --key`` checks, against the mirror: the copied signature is over ``digest``."""
    target = RegistryClient(ecr_host, Credentials(ECR_USER, ECR_PASSWORD), side="target")
    signature = target.get_manifest(repository, digest.replace(":", "-") + ".sig")
    layers = {str(d["digest"]): target.get_blob(repository, str(d["digest"])) for d in signature.document()["layers"]}
    return cosign.verifies(signature.body, layers, digest, key.public_pem())


def main() -> int:
    started = time.monotonic()
    DEMO.mkdir(exist_ok=True)
    stop_on_sigterm()
    print("hubmirror demo: starting the local stack (hub, ECR, moto with real Lambdas and CodeBuild)")
    runs: list[dict[str, Any]] = []
    parameters = {
        "RunOnAllowlistChange": "true",
        "SigstoreTufUrl": "",
        "AllowlistWriterRoles": f"arn:aws:iam::{ACCOUNT}:role/{WRITER}",
    }
    with Stack(DEMO / "stack", parameters=parameters) as stack:
        assert stack.front is not None
        assert stack.ecr is not None
        pusher = stack.hub_pusher()
        key = cosign.Key.generate()
        (DEMO / "cosign.pub").write_text(key.public_pem())
        boto3.client("secretsmanager").create_secret(Name=KEY_SECRET, SecretString=key.public_pem())
        digests = {}
        for repository, tag, platforms in IMAGES:
            digests[repository] = digest = seed(pusher, repository, tag, platforms)
            print(f"  seeded {stack.front.host}/{repository}:{tag} ({', '.join(platforms)}) {digest[:19]}")
        cosign.sign(pusher, "library/nginx", digests["library/nginx"], key)
        for platform in {r: p for r, _, p in IMAGES}["library/nginx"]:  # cosign sign --recursive
            child = platform_image(platform, "library/nginx:1.27").manifest.digest
            cosign.sign(pusher, "library/nginx", child, key)
        signed = digests["library/nginx"][:19]
        print(f"  signed library/nginx@{signed} and its two platforms, as cosign does (key: .demo/cosign.pub,")
        print(f"  kept in the secret {KEY_SECRET}, which the allowlist's nginx entry names under verify:)")
        text = allowlist(stack.front.host)
        (DEMO / "allowlist.yaml").write_text(text)
        stack.front.set_budget(100)
        stack.front.reset_counts()
        commands: dict[str, int] = {}
        # the team's CI role, the one writer the stack names; it may do anything else its IAM allows
        _writer.update(stack.add_principal(WRITER, [{"Effect": "Allow", "Action": "*", "Resource": "*"}]))
        print(f"  the stack lets only {WRITER} change the allowlist (AllowlistWriterRoles); the commands run as it")
        with contextlib.chdir(DEMO):  # a team's allowlist repository: allowlist.yaml at its root
            commands["plan"] = command("plan", "allowlist.yaml")
            result = stack.observe(lambda: commands.setdefault("push", command("push", "allowlist.yaml")))
            show(result, "the first run, started by the push", 1)
            runs.append(summarise(result))
            result = stack.observe(lambda: commands.setdefault("run", command("run", "--wait")))
            show(result, "the second run, started by `hubmirror run --wait`", 2)
            runs.append(summarise(result))
            commands["report"] = command("report")
            commands["history"] = command("history")
        for n, summary in enumerate(runs, 1):
            print(
                f"run {n}: upstream requests {summary['upstream_requests']}, "
                f"CodeBuild builds: {summary['codebuild_builds']}"
            )
        verified = signature_verifies(stack.ecr.host, "mirror/nginx", digests["library/nginx"], key)
        print(f"\nthe nginx signature verifies against the mirror with .demo/cosign.pub: {verified}")
        print(f"target registry (the local ECR) is at {stack.ecr.host}; stopping every server")
    payload = {
        "commands": commands,
        "runs": runs,
        "nginx": runs[0]["reasons"]["mirror/nginx:1.27"],
        "signature_verifies_against_the_mirror": verified,
        "seconds": round(time.monotonic() - started, 2),
    }
    (DEMO / "summary.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {DEMO / 'summary.json'} ({payload['seconds']}s)")
    good = verified and all(r["status"] == "SUCCEEDED" for r in runs) and not any(commands.values())
    return 0 if good else 1


def show(result: RunResult, what: str, n: int) -> None:
    """Print what a subscriber of each topic receives from a run, and save it under ``.demo/``."""
    mail = f"Subject: {result.subject}\n\n{result.text or '(no report published)'}"
    chat = json.dumps(result.chat, indent=2, ensure_ascii=False) if result.chat else "(no chat message published)"
    print(f"\n--- {what}: the e-mail a report subscriber receives ---")
    print(mail)
    print(f"--- {what}: the chat message (Amazon Q Developer custom notification) ---")
    if result.chat:
        content = result.chat["content"]
        print(f"{content['title']}\n\n{content['description']}\n")
        print("\n".join(f"- {step}" for step in content.get("nextSteps", [])))
    else:
        print(chat)
    (DEMO / f"run-{n}-email.txt").write_text(mail)
    (DEMO / f"run-{n}-chat.json").write_text(chat + "\n")


def command(*args: str) -> int:
    """Run ``hubmirror ARGS --stack hubmirror`` as the team's CI role would, printing what it prints."""
    line = ["hubmirror", *args, "--stack", "hubmirror"]
    print(f"\n$ {' '.join(line)}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), _credentials(_writer):
        code = hubmirror(line[1:])
    print(out.getvalue().rstrip())
    print(f"(exit {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())

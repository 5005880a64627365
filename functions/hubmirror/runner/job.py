"""The copy/build script CodeBuild runs (``python3 -m hubmirror.runner s3://BUCKET/JOB``).

A job is the list of items of one batch that need a copy, or a build. For each item:

* **copy**, no platforms named: every manifest of the upstream digest the check saw (index,
  platforms, attestations) is copied byte for byte, so the index digest is preserved and
  signatures stay valid;
* **copy** with platforms: the chosen platform manifests (and their attestations) are
  copied byte for byte, then an index listing just them, annotated with the base image and
  the recipe hash, is written to the tag;
* **build**: ``buildah build`` of the rendered context for every platform, written to a
  local OCI layout whose index gets the base-image and recipe annotations, then pushed.

Blobs go through :mod:`hubmirror.copying.transfer`: skipped when the target repository has them,
mounted when another target repository has them, fetched from upstream only otherwise. The
tag moves only with the last write, after everything it points to is in place. Each item's
outcome is written to S3 as soon as it is known; the script exits 1 if any item failed, so
the build shows as failed too. It runs on Debian 12's python3 with python3-boto3 and
imports nothing from Powertools.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from hubmirror.adapters.ecr import Ecr
from hubmirror.adapters.registry.client import RegistryClient
from hubmirror.adapters.registry.retry import PUT_IMAGE_RATE, TARGET_RETRY, Pacer
from hubmirror.adapters.s3 import Store
from hubmirror.adapters.secrets import CredentialsError, for_host, load_credentials
from hubmirror.copying.blobindex import S3BlobIndex
from hubmirror.copying.extras import Extras, copy_extras
from hubmirror.copying.pulls import DeferredError, reserve_pulls
from hubmirror.copying.transfer import RefusedImageError, Transfer
from hubmirror.domain import dockerfile, keys
from hubmirror.domain.decisions import Outcome, OutcomeName, short
from hubmirror.domain.documents import JOB_DEADLINE_SECONDS, ExtrasMark, JobEntry, JobFile, OutcomeRecord, RefusalRecord
from hubmirror.domain.items import Kind, WorkItem
from hubmirror.domain.oci import (
    INDEX_MEDIA_TYPES,
    OCI_INDEX,
    descriptor_platform,
    index_platforms,
    rewritten_index,
    select_platforms,
    sha256_digest,
)
from hubmirror.domain.ratelimit import PullBudget
from hubmirror.domain.references import is_loopback
from hubmirror.domain.registry.errors import RegistryError
from hubmirror.domain.registry.model import Credentials, Manifest

TOOL_TIMEOUT = 3600
#: The job's variables buildah sees (locale, search path, proxies); nothing else passes.
TOOL_ENVIRONMENT: tuple[str, ...] = ("PATH", "HOME", "LANG", "LC_ALL")
TOOL_ENVIRONMENT += tuple(f"{name}_PROXY" for name in ("HTTP", "HTTPS", "NO"))
TOOL_ENVIRONMENT += tuple(f"{name}_proxy" for name in ("http", "https", "no"))
#: The OCI runtime of RUN lines (Debian's runc; install-tools.sh installs it).
BUILD_RUNTIME = "/usr/bin/runc"
#: How long one item may take, at most (its blob downloads and its waits are cut there). A
#: large image (1 GB of layers) moves in a few minutes even at 10 MB/s; twenty minutes is
#: several times that, and four of them still fit a build's two hours many times over.
ITEM_DEADLINE_SECONDS = 20 * 60
NOT_STARTED_IN_TIME = "not started in time (the job ran out of its time); a later run copies it"
#: How often a job counts the jobs running beside it, to set its share of the PutImage rate.
SHARE_POLL_SECONDS = 1.0
#: Items of a copy job copied at once (each also fetches its blobs in parallel).
COPY_WORKERS = 8
#: The environment the template sets on the CodeBuild projects (besides HUBMIRROR_JOB).
UPSTREAM_SECRET_VARIABLE = "HUBMIRROR_UPSTREAM_SECRET"  # noqa: S105 - the variable holding the secret's name
#: The disk the job's copies of fetched blobs may take: CodeBuild's small and medium on-demand
#: Linux types have 64 and 128 GB of disk
#: (https://docs.aws.amazon.com/codebuild/latest/userguide/build-env-ref-compute-types.html),
#: shared with the build image, the tools and, in a build, buildah's storage.
SPOOL_LIMIT_VARIABLE = "HUBMIRROR_SPOOL_LIMIT_GIB"
#: ECR PutImage requests a second for the account (the template's ``PutImageRate``)
PUT_IMAGE_RATE_VARIABLE = "HUBMIRROR_PUT_IMAGE_RATE"
DEFAULT_SPOOL_LIMIT_GIB = 16


@dataclass(frozen=True)
class JobSettings:
    """Everything the job reads from its environment (the CodeBuild project's), read once."""

    #: the Secrets Manager secret with upstream credentials, if any
    upstream_secret: str | None
    #: bytes of fetched blobs the job keeps on disk for other repositories (least recently used
    #: dropped first)
    spool_limit: int = DEFAULT_SPOOL_LIMIT_GIB * 2**30
    #: ECR PutImage requests a second, shared by the jobs running at once
    put_image_rate: float = PUT_IMAGE_RATE

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JobSettings:
        """The job's settings; a malformed spool size or rate falls back to the default.

        >>> JobSettings.from_env({"HUBMIRROR_SPOOL_LIMIT_GIB": "2"}).spool_limit
        2147483648
        >>> JobSettings.from_env({"HUBMIRROR_SPOOL_LIMIT_GIB": "²"}).spool_limit == DEFAULT_SPOOL_LIMIT_GIB * 2**30
        True
        >>> JobSettings.from_env({"HUBMIRROR_PUT_IMAGE_RATE": "50"}).put_image_rate
        50.0
        >>> JobSettings.from_env({"HUBMIRROR_PUT_IMAGE_RATE": "fast"}).put_image_rate == PUT_IMAGE_RATE
        True
        """
        return cls(
            upstream_secret=env.get(UPSTREAM_SECRET_VARIABLE),
            spool_limit=_positive_int(env, SPOOL_LIMIT_VARIABLE, DEFAULT_SPOOL_LIMIT_GIB) * 2**30,
            put_image_rate=float(_positive_int(env, PUT_IMAGE_RATE_VARIABLE, int(PUT_IMAGE_RATE))),
        )


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    """The variable's whole number above zero, or ``default`` when it is unset or anything else."""
    raw = env.get(name, "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and int(raw) > 0 else default


class JobError(RuntimeError):
    """An item could not be copied or built; the message is the report's reason."""


@dataclass
class Toolbox:
    """The environment buildah runs in: an auth file for upstream pulls, private storage."""

    workdir: Path
    env: dict[str, str]
    authfile: Path

    @classmethod
    def create(cls, workdir: Path, logins: Mapping[str, Credentials]) -> Toolbox:
        auths = {
            host: {"auth": base64.b64encode(f"{c.username}:{c.password}".encode()).decode()}
            for host, c in logins.items()
        }
        authfile = workdir / "auth.json"
        authfile.touch(mode=0o600)
        authfile.write_text(json.dumps({"auths": auths}))
        storage_conf = workdir / "storage.conf"
        storage_conf.write_text(
            f'[storage]\ndriver = "vfs"\nrunroot = "{workdir}/run"\ngraphroot = "{workdir}/storage"\n'
        )
        # buildah gets only what it needs: the job's own environment holds the role's
        # credentials (or the container credentials endpoint), which no tool is handed.
        env = {name: os.environ[name] for name in TOOL_ENVIRONMENT if name in os.environ}
        env |= {
            "REGISTRY_AUTH_FILE": str(authfile),
            "CONTAINERS_STORAGE_CONF": str(storage_conf),
            "STORAGE_DRIVER": "vfs",
            # RUN lines run in their own namespaces (network, PID, mount, IPC, UTS) under
            # runc: chroot isolation shares the job's network and process table.
            "BUILDAH_ISOLATION": "oci",
            "BUILDAH_RUNTIME": BUILD_RUNTIME,
            "TMPDIR": str(workdir / "tmp"),
        }
        (workdir / "tmp").mkdir(exist_ok=True)
        return cls(workdir=workdir, env=env, authfile=authfile)

    def run(self, args: list[str], *, deadline: float | None = None) -> str:
        """Run a tool, until ``deadline`` at most; its failure becomes a JobError with its last words."""
        print("+ " + " ".join(args), flush=True)
        started = time.monotonic()
        timeout = TOOL_TIMEOUT if deadline is None else max(1.0, min(TOOL_TIMEOUT, deadline - started))
        try:
            proc = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise JobError(f"{args[0]} {args[1]} still running after {timeout:.0f} s (the item's deadline)") from None
        if proc.stdout:
            sys.stdout.write(proc.stdout[-4000:])
        if proc.stderr:
            sys.stdout.write(proc.stderr[-4000:])
        print(f"  ({time.monotonic() - started:.1f}s, exit {proc.returncode})", flush=True)
        if proc.returncode != 0:
            raise JobError(f"{args[0]} {args[1]} failed: {_last_words(proc.stderr or proc.stdout)}")
        return proc.stdout


def _last_words(output: str) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    text = lines[-1] if lines else "no output"
    if 'msg="' in text:
        text = text.split('msg="', 1)[1].rsplit('"', 1)[0]
    return text[:600]


def _annotations(entry: JobEntry) -> dict[str, str]:
    return dockerfile.image_annotations(WorkItem.from_dict(entry), str(entry["upstream_digest"]), str(entry["recipe"]))


def _single_platform(client: RegistryClient, repository: str, manifest: Manifest) -> str | None:
    """The platform of a single image, from its config (a blob GET, not a pull)."""
    config = json.loads(client.get_blob(repository, manifest.document()["config"]["digest"]))
    return descriptor_platform({"platform": config})


def upstream_copy(
    item: WorkItem,
    digest: str,
    *,
    transfer: Transfer,
    upstream: RegistryClient,
    budget: PullBudget | None,
    repository: str,
    tag: str | None,
    rewrite: Callable[[Manifest, list[dict[str, Any]]], dict[str, Any] | None] | None = None,
    before_tag: Callable[[Manifest], None] | None = None,
    deadline: float | None = None,
) -> str:
    """Copy ``item``'s upstream ``digest`` into the target, its pulls reserved before they are made.

    A ``HEAD`` (free) tells this job's own budget; a single image costs one pull, an index
    one per platform manifest fetched, known once the index (itself free) is read and
    reserved before any of them is fetched. ``rewrite`` sees the index and the manifests
    it lists; it may select some (raise to refuse) and return the index to write instead.
    """
    head = upstream.head_manifest(item.upstream.repository, digest)
    if head.media_type not in INDEX_MEDIA_TYPES:
        reserve_pulls(budget, item, 1, head.ratelimit)

    def keep(top: Manifest) -> dict[str, Any] | None:
        if top.media_type not in INDEX_MEDIA_TYPES:
            return None
        children = list(top.document().get("manifests") or [])
        rewritten = rewrite(top, children) if rewrite else None
        listed = rewritten["manifests"] if rewritten is not None else children
        reserve_pulls(budget, item, len(listed), top.ratelimit or head.ratelimit)
        return rewritten

    return transfer.copy(
        upstream, item.upstream.repository, digest, repository, tag, keep=keep, before_tag=before_tag, deadline=deadline
    )


def copy_item(
    entry: JobEntry,
    *,
    transfer: Transfer,
    upstream: RegistryClient,
    budget: PullBudget | None = None,
    deadline: float | None = None,
    notes: list[str] | None = None,
    pending: list[str] | None = None,
) -> str:
    """Copy one item; returns the digest the target tag now holds. What the report should say
    besides (its signatures) is added to ``notes``; what could not be copied beside the image,
    to ``pending``. An entry with ``extras_only`` (its image already in place) copies only that."""
    notes = [] if notes is None else notes
    pending = [] if pending is None else pending
    item = WorkItem.from_dict(entry)
    digest = str(entry["upstream_digest"])
    repository = item.upstream.repository

    def rewrite(top: Manifest, children: list[dict[str, Any]]) -> dict[str, Any] | None:
        if item.platforms is None:
            return None
        document = top.document()
        kept, missing = select_platforms(document, item.platforms)
        if missing:
            have = ", ".join(index_platforms(document)) or "none"
            raise JobError(f"upstream {short(digest)} has no {', '.join(missing)} (it has {have})")
        return rewritten_index(document, kept, _annotations(entry))

    def single_platform_wanted(top: Manifest) -> None:
        """A single-platform upstream image must be one of the platforms the allowlist names."""
        if item.platforms is None or top.media_type in INDEX_MEDIA_TYPES:
            return
        # read upstream (a blob GET is not a pull): the target serves only blobs an image references
        platform = _single_platform(upstream, repository, top)
        if platform not in item.platforms:
            wanted = ", ".join(item.platforms)
            raise JobError(f"upstream {short(digest)} is a single {platform} image; the allowlist asks for {wanted}")

    def extras(top: Manifest | None) -> None:
        """The image's signatures, attestations, SBOM and referrers beside it, never at its cost."""
        media_type = top.media_type if top is not None else str(entry.get("upstream_media_type") or "")
        copy_extras(
            Extras(item, digest, media_type, top.document if top is not None else upstream_index),
            transfer=transfer,
            upstream=upstream,
            budget=budget,
            deadline=deadline,
            notes=notes,
            pending=pending,
        )

    def upstream_index() -> dict[str, Any]:
        reserve_pulls(budget, item, 1, None)  # the index again: its signatures are per platform
        return upstream.get_manifest(repository, digest).document()

    def before_tag(top: Manifest) -> None:
        """Before the tag moves: the platform wanted, and what goes beside the image."""
        single_platform_wanted(top)
        extras(top)

    if entry.get("extras_only"):  # the image is in place: only what did not arrive beside it
        extras(None)
        return str(entry.get("target_digest") or digest)
    landed = upstream_copy(
        item,
        digest,
        transfer=transfer,
        upstream=upstream,
        budget=budget,
        repository=item.target_repository,
        tag=item.target_tag,
        rewrite=rewrite,
        before_tag=before_tag,
        deadline=deadline,
    )
    if item.platforms is None and landed != digest:
        raise JobError(f"the target tag holds {landed} after the copy, not the upstream {digest}")
    return landed


def build_item(
    entry: JobEntry,
    *,
    tools: Toolbox,
    store: Store,
    transfer: Transfer,
    upstream: RegistryClient,
    target_registry: str,
    number: int,
    budget: PullBudget | None = None,
    deadline: float | None = None,
) -> str:
    """Build one item for its platforms and push it; returns the target tag's digest."""
    item = WorkItem.from_dict(entry)
    digest = str(entry["upstream_digest"])
    context = tools.workdir / f"context-{number}"
    context.mkdir()
    archive = context / "context.tar.gz"
    archive.write_bytes(store.get_bytes(str(entry["context"])))
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if not member.isfile() or member.name not in ("Dockerfile", "hubmirror.json"):
                raise JobError(f"unexpected entry {member.name!r} in the build context")
            data = tar.extractfile(member)
            assert data is not None
            (context / member.name).write_bytes(data.read())
    archive.unlink()
    metadata = json.loads((context / "hubmirror.json").read_text())
    # The base is staged, byte for byte and untagged, next to the image being built: its
    # blobs come from the target when it has them, so a base shared by many images is
    # fetched from upstream once. The Dockerfile stays pinned to upstream@digest; --from
    # points its FROM at the identical staged copy. Its platforms are read from that copy
    # too, so the build costs no pull beyond the copy's.
    staged = upstream_copy(
        item,
        digest,
        transfer=transfer,
        upstream=upstream,
        budget=budget,
        repository=item.target_repository,
        tag=None,
        deadline=deadline,
    )
    platforms = metadata.get("platforms") or _base_platforms(transfer.target, item.target_repository, staged)
    _require_emulation(platforms)
    wanted = metadata["annotations"]
    manifest_list = f"hubmirror-build-{number}"
    args = ["buildah", "build", "--layers=false", "--manifest", manifest_list, "--platform", ",".join(platforms)]
    # No network for RUN lines unless the entry asks for it (build_network: true).
    args.append(f"--network={'host' if metadata.get('network') == 'host' else 'none'}")
    args += ["--from", f"{target_registry}/{item.target_repository}@{staged}"]
    if is_loopback(target_registry):
        args.append("--tls-verify=false")
    for key, value in sorted(wanted.items()):
        args += ["--annotation", f"{key}={value}"]
    layout = tools.workdir / f"layout-{number}"
    try:
        try:
            tools.run([*args, "-f", str(context / "Dockerfile"), str(context)], deadline=deadline)
        except JobError as exc:
            fetching = [tool for line in item.build_commands if (tool := dockerfile.network_tool(line))]
            if item.build_network or not fetching:
                raise
            raise JobError(
                f"{exc}; build lines run without the network, and {fetching[0]!r} usually needs it: "
                "if the line does, set build_network: true on the entry"
            ) from None
        tools.run(["buildah", "manifest", "push", "--all", manifest_list, f"oci:{layout}:built"], deadline=deadline)
        index_digest = annotate_layout_index(layout, "built", wanted)
        landed = transfer.push_layout(layout, index_digest, item.target_repository, item.target_tag)
        if landed != index_digest:
            raise JobError(f"the target tag holds {landed} after the push, not the built {index_digest}")
    finally:  # buildah's storage (vfs: every layer unpacked) goes with each item, built or failed
        for cleanup in (["buildah", "manifest", "rm", manifest_list], ["buildah", "rmi", "--all", "--force"]):
            with contextlib.suppress(JobError):
                tools.run(cleanup)
        shutil.rmtree(layout, ignore_errors=True)
        shutil.rmtree(context, ignore_errors=True)
    return landed


_QEMU = {"arm64": "aarch64", "arm": "arm", "s390x": "s390x", "ppc64le": "ppc64le", "riscv64": "riscv64", "386": "i386"}
_NATIVE = {"x86_64": "amd64", "aarch64": "arm64"}


def _require_emulation(platforms: Sequence[str]) -> None:
    """A foreign platform runs RUN lines under qemu, which needs binfmt_misc (privileged builds)."""
    native = _NATIVE.get(os.uname().machine, os.uname().machine)
    for platform in platforms:
        arch = platform.split("/")[1]
        if arch == native or (native == "amd64" and arch == "386"):
            continue
        handler = Path("/proc/sys/fs/binfmt_misc") / f"qemu-{_QEMU.get(arch, arch)}"
        if not handler.exists():
            raise JobError(
                f"building {platform} on a {native} builder needs qemu registered in binfmt_misc "
                "(a privileged CodeBuild project); it is not"
            )


def _base_platforms(client: RegistryClient, repository: str, digest: str) -> list[str]:
    manifest = client.get_manifest(repository, digest)
    if manifest.media_type in INDEX_MEDIA_TYPES:
        platforms = index_platforms(manifest.document())
        if not platforms:
            raise JobError(f"upstream {short(digest)} is an index with no runnable platform")
        return platforms
    platform = _single_platform(client, repository, manifest)
    if platform is None:
        raise JobError(f"upstream {short(digest)} does not say its platform")
    return [platform]


def annotate_layout_index(layout: Path, ref: str, extra: Mapping[str, str]) -> str:
    """Add the ``extra`` annotations to the index stored under ``ref`` in an OCI layout; returns its digest."""
    index_path = layout / "index.json"
    top = json.loads(index_path.read_text())
    for descriptor in top["manifests"]:
        if (descriptor.get("annotations") or {}).get("org.opencontainers.image.ref.name") != ref:
            continue
        old = layout / "blobs" / "sha256" / descriptor["digest"].split(":", 1)[1]
        document = json.loads(old.read_bytes())
        document["mediaType"] = document.get("mediaType", OCI_INDEX)
        document["annotations"] = {**(document.get("annotations") or {}), **extra}
        body = json.dumps(document, separators=(",", ":")).encode()
        digest = sha256_digest(body)
        (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).write_bytes(body)
        descriptor.update(digest=digest, size=len(body), mediaType=document["mediaType"])
        index_path.write_text(json.dumps(top))
        return digest
    raise JobError(f"the OCI layout has no image named {ref!r}")


def _attempt(
    item: WorkItem,
    entry: JobEntry,
    *,
    job_kind: str,
    refuse: str | None,
    work: Callable[[], str],
    notes: Sequence[str] = (),
    refused: Callable[[str], None] | None = None,
) -> Outcome:
    """Do one item's work; any failure becomes that item's ``failed`` outcome with its reason.

    ``refused`` hears the reason when the target can never take the image as it is
    (:class:`hubmirror.copying.transfer.RefusedImageError`).
    """
    digest = entry.get("upstream_digest")
    try:
        if refuse:
            raise JobError(refuse)
        landed = work()
    except DeferredError as exc:
        return Outcome.for_item(
            item, OutcomeName.DEFERRED, str(exc), upstream_digest=digest, retry_after=exc.retry_after
        )
    except RegistryError as exc:
        reason = f"{job_kind} failed: {exc.reason}: {exc}"
        if isinstance(exc, RefusedImageError) and refused is not None:
            refused(reason)
        return Outcome.for_item(item, OutcomeName.FAILED, reason, upstream_digest=digest)
    except (JobError, OSError) as exc:
        return Outcome.for_item(item, OutcomeName.FAILED, f"{job_kind} failed: {exc}", upstream_digest=digest)
    except (ClientError, BotoCoreError) as exc:  # ECR refused a repository call: this item fails alone
        return Outcome.for_item(item, OutcomeName.FAILED, f"{job_kind} failed: AWS: {exc}", upstream_digest=digest)
    except Exception as exc:  # a defect: reported as this item's failure, with its trace in the build log
        traceback.print_exc()
        reason = f"{job_kind} failed: internal error: {type(exc).__name__}: {exc}"
        return Outcome.for_item(item, OutcomeName.FAILED, reason, upstream_digest=digest)
    verb = "built from" if job_kind == Kind.BUILD else "copied"
    if job_kind == Kind.BUILD and item.build_network:
        notes = [*notes, "its RUN lines had the network (build_network: true)"]
    return Outcome.for_item(
        item,
        OutcomeName.BUILT if job_kind == Kind.BUILD else OutcomeName.COPIED,
        "; ".join([f"{verb} {short(str(digest))}", *notes]),
        upstream_digest=digest,
        target_digest=landed,
    )


@dataclass
class _Job:
    """One job file being worked through: its clients, budget, deadlines and outcomes so far."""

    job: JobFile
    store: Any
    ecr: Ecr
    transfer: Transfer
    upstream_credentials: Mapping[str, Credentials]
    credentials_problem: str | None
    tools: Toolbox
    budget: PullBudget
    job_deadline: float
    item_seconds: float
    outcomes: list[OutcomeRecord] = field(default_factory=list)
    failed: int = 0
    _upstreams: dict[str, RegistryClient] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def kind(self) -> str:
        return str(self.job["kind"])

    def upstream(self, host: str) -> RegistryClient:
        with self._lock:
            return self._upstreams.setdefault(host, RegistryClient(host, for_host(self.upstream_credentials, host)))

    def process(self, number: int, entry: JobEntry) -> None:
        """Copy or build one item, then write every outcome so far (a job killed later loses none)."""
        item = WorkItem.from_dict(entry)
        upstream = self.upstream(item.upstream.api_host)
        target_registry = str(self.job["target_registry"])
        print(f"== {self.kind} {item.key} -> {target_registry}/{item.target}: {entry.get('reason', '')}", flush=True)
        deadline = min(time.monotonic() + self.item_seconds, self.job_deadline)
        notes: list[str] = []
        if item.verify:  # the check let the item through only after its signature verified
            notes.append("its cosign signature verified")
        if self.kind == Kind.BUILD and item.signatures:
            notes.append("unsigned: a build is not the image its publisher signed")
        pending: list[str] = []

        def work() -> str:
            if time.monotonic() > self.job_deadline:
                raise DeferredError(NOT_STARTED_IN_TIME, retry_after=None)
            if self.kind != Kind.BUILD:
                return copy_item(
                    entry,
                    transfer=self.transfer,
                    upstream=upstream,
                    budget=self.budget,
                    deadline=deadline,
                    notes=notes,
                    pending=pending,
                )
            return build_item(
                entry,
                tools=self.tools,
                store=self.store,
                transfer=self.transfer,
                upstream=upstream,
                target_registry=target_registry,
                number=number,
                budget=self.budget,
                deadline=deadline,
            )

        started = time.monotonic()
        outcome = _attempt(
            item,
            entry,
            job_kind=self.kind,
            refuse=self.credentials_problem,
            work=work,
            notes=notes,
            refused=partial(self.remember, entry),
        )
        if entry.get("extras_only") and outcome.outcome == OutcomeName.COPIED:
            said = "; ".join(notes) or "nothing beside it upstream now"
            outcome = replace(outcome, outcome=OutcomeName.UNCHANGED, reason=f"{entry.get('reason')}: {said}")
        if outcome.outcome in (OutcomeName.COPIED, OutcomeName.UNCHANGED):
            self.extras_pending(entry, pending)
        print(f"== {outcome.outcome} {item.target}: {outcome.reason} ({time.monotonic() - started:.1f}s)", flush=True)
        with self._lock:
            self.failed += outcome.outcome == OutcomeName.FAILED
            self.outcomes.append(outcome.to_dict())
            self.store.put_json(self.job["outcomes_key"], self.outcomes)

    def extras_pending(self, entry: JobEntry, pending: Sequence[str]) -> None:
        """Mark an image whose signatures or referrers did not all arrive, so the next run's
        check sends it back for them alone; clear the mark once they have. A failure to mark
        costs only the retry."""
        item = WorkItem.from_dict(entry)
        key = keys.extras(str(entry["upstream_digest"]), item.target_repository)
        try:
            if pending:
                mark = ExtrasMark(image=item.key, run=self.job["run"], missing=list(pending))
                self.store.put_json(key, mark)
            elif entry.get("extras_only"):
                self.store.delete(key)
        except Exception as exc:
            print(f"== could not record what is missing beside {item.key}: {exc}", flush=True)

    def remember(self, entry: JobEntry, reason: str) -> None:
        """Keep a refusal no run can change (the image as it is), so the next runs report it
        for one HEAD instead of pulling again; a failure to keep it costs only that."""
        item = WorkItem.from_dict(entry)
        key = keys.refusal(str(entry["upstream_digest"]), entry.get("recipe"), item.target_repository)
        try:
            self.store.put_json(key, RefusalRecord(reason=reason, run=self.job["run"], image=item.key))
        except Exception as exc:  # the outcome stands; the next run tries the image again
            print(f"== could not remember the refusal of {item.key}: {exc}", flush=True)

    def run(self) -> None:
        entries = list(enumerate(self.job["items"]))
        if self.kind == Kind.BUILD:  # one buildah storage: builds one after the other
            for number, entry in entries:
                self.process(number, entry)
        else:  # copies are I/O: several at once
            with ThreadPoolExecutor(max_workers=COPY_WORKERS) as pool:
                list(pool.map(lambda pair: self.process(*pair), entries))


class RunningJobs:
    """The copy jobs of one run writing to the target at once, counted in the bucket.

    Each copy job leaves a mark under ``runs/<run>/running/`` while it runs, and every
    :data:`SHARE_POLL_SECONDS` counts the marks there to set its share of the account's
    ``PutImage`` rate: as the others end, the jobs left take up what they leave. Until the
    first count it paces at the share the plan gave it (the rate over the jobs it starts at
    once). A build job writes a handful of manifests after minutes of building: it leaves no
    mark, so the copies do not slow down for it. A mark that could not be written or read
    costs only the share: a job not counted takes more than its part, and the 429s that
    follow slow every job down.
    """

    def __init__(self, store: Any, job: JobFile, pacer: Pacer, rate: float) -> None:
        self.store = store
        self.pacer = pacer
        self.rate = rate
        copies = job["kind"] == Kind.COPY
        self.mark = keys.running(str(job["run"]), str(job["batch"]), str(job["kind"])) if copies else None
        self.folder = keys.folder(str(job["run"]), "running")
        self._stop = threading.Event()
        self._poll = threading.Thread(target=self._count, name="running-jobs", daemon=True)

    def __enter__(self) -> RunningJobs:
        if self.mark is not None:
            with contextlib.suppress(Exception):
                self.store.put_json(self.mark, {"started": time.time()})
        self._poll.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._poll.join()
        if self.mark is not None:
            with contextlib.suppress(Exception):  # a mark left behind only lowers the shares of this run's jobs
                self.store.delete(self.mark)

    def _count(self) -> None:
        while not self._stop.wait(SHARE_POLL_SECONDS):
            with contextlib.suppress(Exception):
                self.pacer.reshare(self.rate / max(1, len(self.store.keys(self.folder))))


def run_job(
    uri: str,
    *,
    store_factory: Any = Store,
    ecr: Ecr | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run one job; returns the process exit code (0: every item done, 1: some failed)."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        print(f"hubmirror runner: expected s3://BUCKET/KEY, got {uri!r}", file=sys.stderr)
        return 2
    bucket, key = uri[5:].split("/", 1)
    store = store_factory(bucket)
    job: JobFile = store.get_json(key)
    target_registry = str(job["target_registry"])
    settings = JobSettings.from_env(os.environ if environ is None else environ)
    ecr = ecr or Ecr()
    target_credentials = ecr.credentials()
    rate = settings.put_image_rate
    pacer = Pacer(rate / max(1, int(job.get("jobs_at_once") or 1)))  # an older check's job: alone
    target = RegistryClient(target_registry, target_credentials, retry=TARGET_RETRY, side="target", pacer=pacer)
    try:
        upstream_credentials = load_credentials(settings.upstream_secret)
    except CredentialsError as exc:
        upstream_credentials = {}
        credentials_problem: str | None = str(exc)
    else:
        credentials_problem = None
    transfer = Transfer(target, S3BlobIndex(store), spool_limit=settings.spool_limit)
    workdir = Path(tempfile.mkdtemp(prefix="hubmirror-job-"))
    try:
        work = _Job(
            job=job,
            store=store,
            ecr=ecr,
            transfer=transfer,
            upstream_credentials=upstream_credentials,
            credentials_problem=credentials_problem,
            tools=Toolbox.create(workdir, {target_registry: target_credentials}),
            budget=PullBudget(int(job.get("ratelimit_floor") or 0)),
            job_deadline=time.monotonic() + float(job.get("job_deadline_seconds") or JOB_DEADLINE_SECONDS),
            item_seconds=float(job.get("item_deadline_seconds") or ITEM_DEADLINE_SECONDS),
        )
        with RunningJobs(store, job, pacer, rate):
            work.run()
    finally:
        transfer.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"hubmirror runner: {len(work.outcomes) - work.failed} done, {work.failed} failed; "
        f"blobs {transfer.stats.to_dict()}; PutImage pace {pacer.to_dict()}",
        flush=True,
    )
    return 1 if work.failed else 0

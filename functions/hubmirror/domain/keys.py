"""Every S3 key a run uses, in one place. Pure.

Layout (every key under the bucket)::

    runs/<run>/plan.json                       every item of the run, in order
    runs/<run>/batches.json                    the Distributed Map's item list: one entry per batch
    runs/<run>/batches/<batch>.json            the items of one batch
    runs/<run>/jobs/<batch>-<kind>.json        what one CodeBuild build copies or builds
    runs/<run>/running/<batch>-<kind>.json     there while that build runs: the builds sharing the target's rate
    runs/<run>/outcomes/<batch>-<phase>.json   outcomes written by the check and by builds
    runs/<run>/errors/<batch>-<phase>.json     a step that failed as a whole (the state machine's Catch)
    runs/<run>/notices/<batch>.json            what a check could not do besides its items (a pull policy)
    runs/<run>/report.json                     the report
    allowlist/allowlist.yaml                   the allowlist in force (versioned: its history)
    locks/run.json                             the run lock: which execution is syncing now
    locks/allowlist/<version>.json             the run a new allowlist version started (one per version)
    blobs/<algorithm>/<hex>.json               where a blob lives in the target (the blob index)
    blobs/<algorithm>/<hex>.claim              which copier is fetching it now
    contexts/<hex>.tar.gz                      rendered build contexts, content-addressed
    refusals/<hex>.json                        an image no run can mirror as it is (by digest, recipe, target, version)
    extras/<hex>.json                          an image whose signatures or referrers are missing (by digest, target)
    runner/<hex>.zip                           the copy/build script CodeBuild runs, content-addressed

The state machine writes the ``errors/`` keys itself (``States.Format`` in its Catch states);
a contract test holds those strings to :data:`ERRORS_FORMAT`. Keeping items and outcomes here
keeps every state payload small, whatever the run's size.
"""

from __future__ import annotations

import hashlib

from hubmirror import __version__

RUN_LOCK = "locks/run.json"
#: The allowlist in force: ``hubmirror push`` writes it, the plan reads it; the bucket's
#: versions of it are its history.
ALLOWLIST = "allowlist/allowlist.yaml"
#: The state machine's ``States.Format`` for a failed step's key: run, batch, then the phase.
ERRORS_FORMAT = "runs/{}/errors/{}-{}.json"
#: Where the refusals no run can change are remembered (:func:`refusal`); a check lists it once a batch.
REFUSALS_PREFIX = "refusals/"
#: Where a copy job marks an image whose extras did not all arrive (:func:`extras`); a check lists it once a batch.
EXTRAS_PREFIX = "extras/"


def run_key(run: str, *parts: str) -> str:
    """``run_key("r1", "batches", "00000.json")`` -> ``runs/r1/batches/00000.json``."""
    return "/".join(("runs", run, *parts))


def plan(run: str) -> str:
    return run_key(run, "plan.json")


def batches(run: str) -> str:
    return run_key(run, "batches.json")


def batch(run: str, batch_id: str) -> str:
    return run_key(run, "batches", f"{batch_id}.json")


def job(run: str, batch_id: str, kind: str) -> str:
    return run_key(run, "jobs", f"{batch_id}-{kind}.json")


def running(run: str, batch_id: str, kind: str) -> str:
    """``running("r1", "00000", "copy")`` -> ``runs/r1/running/00000-copy.json``."""
    return run_key(run, "running", f"{batch_id}-{kind}.json")


def outcomes(run: str, batch_id: str, phase: str) -> str:
    return run_key(run, "outcomes", f"{batch_id}-{phase}.json")


def errors(run: str, batch_id: str, phase: str) -> str:
    """``errors("r1", "00000", "copy")`` -> ``runs/r1/errors/00000-copy.json``."""
    return ERRORS_FORMAT.format(run, batch_id, phase)


def notices(run: str, batch_id: str) -> str:
    return run_key(run, "notices", f"{batch_id}.json")


def report(run: str) -> str:
    return run_key(run, "report.json")


def folder(run: str, name: str) -> str:
    """The prefix listing one kind of key of a run: ``folder("r1", "outcomes")`` -> ``runs/r1/outcomes/``."""
    return run_key(run, name) + "/"


def allowlist_run(version: str) -> str:
    """The marker of the run an allowlist version started: ``locks/allowlist/<version>.json``.

    >>> allowlist_run("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")
    'locks/allowlist/3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY.json'
    """
    return f"locks/allowlist/{version}.json"


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


def blob(digest: str, suffix: str = ".json") -> str:
    """``blob("sha256:ab")`` -> ``blobs/sha256/ab.json``; ``suffix=".claim"`` for its claim."""
    return "blobs/" + digest.replace(":", "/") + suffix


def refusal(upstream_digest: str, recipe: str | None, target_repository: str, version: str = __version__) -> str:
    """Where a refusal that depends only on the image is remembered: one key per upstream digest,
    recipe, target repository and hubmirror version, so a new digest, a changed entry or an
    upgrade (which may copy what this one refused) tries the image again.

    >>> refusal("sha256:ab", None, "mirror/app").startswith("refusals/")
    True
    >>> refusal("sha256:ab", "recipe", "mirror/app") == refusal("sha256:ab", None, "mirror/app")
    False
    >>> refusal("sha256:ab", None, "mirror/app", "9.9") == refusal("sha256:ab", None, "mirror/app", "1.0")
    False
    """
    hashed = hashlib.sha256(f"{upstream_digest}\n{recipe or ''}\n{target_repository}\n{version}".encode())
    return f"{REFUSALS_PREFIX}{hashed.hexdigest()}.json"


def extras(upstream_digest: str, target_repository: str) -> str:
    """Where a copy job marks an image whose signatures or referrers did not all arrive beside
    it (the image itself did): the next run's check sends it back for them alone.

    >>> extras("sha256:ab", "mirror/app").startswith("extras/")
    True
    """
    hashed = hashlib.sha256(f"{upstream_digest}\n{target_repository}".encode())
    return f"{EXTRAS_PREFIX}{hashed.hexdigest()}.json"


def context(digest: str) -> str:
    """``context("sha256:ab")`` -> ``contexts/ab.tar.gz``."""
    return f"contexts/{_hex(digest)}.tar.gz"


def runner_bundle(digest: str) -> str:
    """``runner_bundle("sha256:ab")`` -> ``runner/ab.zip``."""
    return f"runner/{_hex(digest)}.zip"

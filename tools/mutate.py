"""The mutation exercise: one-line bugs a careful reviewer would try, each of which a test must catch.

``make mutate`` (or ``.venv/bin/python tools/mutate.py``) applies each mutation of
:data:`MUTATIONS` in turn, runs only the tests named for it (``pytest -x -q``, with a time
limit), records whether they caught it (killed) or not (survived), and puts the file back. It
prints a table and exits 1 if any mutation survived (or could not be judged), 2 if it refused
to start. It is not part of ``make test``: it runs the named tests once per mutation, a few
minutes in all.

The mutations cover what a security or reliability review asks about first: the signature
gate (``steps/check.py``, ``steps/verify.py``, ``domain/signing.py``), the blob claims
(``copying/transfer.py``, ``copying/blobindex.py``), the run lock (``steps/runlock.py``), the
pull budget (``domain/ratelimit.py``, ``steps/check.py``), the redirect and download handling
(``adapters/registry/client.py``, ``errors.py``, ``stream.py``), the job's own deadline and the
signatures a copy carries (``runner/job.py``), the fence around build lines (``runner/job.py``,
``domain/dockerfile.py``), and the counts of the chat message
(``steps/chat.py``).

Where it edits: by default a scratch copy of the work tree (the files git tracks, and the
untracked ones it does not ignore; ``.cache`` is linked, not copied), so the tree itself is
never touched: someone running tests in it at the same time never meets a mutant, and an
interrupted run leaves none behind. ``--in-place`` edits the work tree itself, and refuses to
start unless ``git status --porcelain functions/`` is empty. Either way each file is restored
in a ``finally`` and compared byte for byte with what it was before the next mutation runs.

Before any mutation, the named tests are run once on the unmutated code (the baseline): a test
that fails already would make every verdict meaningless, so the exercise stops there.

Adding a mutation: the ``original`` text must occur exactly once in its file, on one line (the
exercise refuses a list that no longer matches the code, naming the entry); the tests named
must pass on the real code and at least one of them must fail on the mutant.

Equivalent mutants (no test can tell them from the code, so they are left out):

* ``copying/transfer.py``, in ``upload()``: dropping ``self.let_go([digest])`` after a failed
  upload. ``push`` releases the same claim when the failed copy ends; the only
  difference is how soon another copier may take that blob, which no test sees without racing
  two copiers.
* ``copying/transfer.py``, in ``_wait_for_claimer``: ``self.index.released(digest) and
  self.index.claim(digest)`` as ``self.index.claim(digest)``: ``claim`` looks at ``released``
  itself.
* ``copying/transfer.py``, in ``_keep_claims``: ``if digest in self._held`` as ``if True``. The
  beat reads a snapshot of ``_held`` taken just before; the check only matters when a release
  lands between the two, a race no test can pin without hooks in the code.
* ``steps/chat.py``: ``listed += min(room, len(group))`` as ``listed += len(group)``: once a
  group fills the list, ``room`` is 0 either way.
* ``adapters/registry/stream.py``, in ``_verify``: the size check as ``if False`` when the
  digest check follows: bytes of another length never hash to the digest (the size check is
  pinned where it matters, a download whose size is wrong but whose digest matches).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "functions/hubmirror"
#: Seconds one mutation's tests may take before the mutant is counted as caught (it hung).
DEFAULT_TIMEOUT = 180.0
#: Ignored folders the tests read from: linked into the scratch copy (seed binaries, not code).
LINKED = (".cache",)


@dataclass(frozen=True)
class Mutation:
    """A one-line bug: in ``path``, ``original`` becomes ``replacement``; ``tests`` must catch it."""

    name: str
    area: str
    path: str
    original: str
    replacement: str
    tests: tuple[str, ...]
    #: what the bug would do, in a few words
    effect: str


U = "tests/unit/"
F = "tests/functional/"
CLAIMS = U + "test_never_claim_a_live_blob.py::"
REPOSITORIES = F + "test_ecr_repositories.py::"
STRICT = F + "test_strict_handling.py::"
FOLLOW = U + "test_never_follow_blindly.py::"

MUTATIONS: tuple[Mutation, ...] = (
    # -- the fence around build lines (issue 20) ----------------------------------------------
    Mutation(
        "tools-get-the-job-environment",
        "fence",
        f"{PACKAGE}/runner/job.py",
        "env = {name: os.environ[name] for name in TOOL_ENVIRONMENT if name in os.environ}",
        "env = dict(os.environ)",
        (F + "test_runner.py::test_buildah_is_handed_none_of_the_job_s_credentials",),
        "buildah, and whatever it passes on, gets the role's credentials",
    ),
    Mutation(
        "build-lines-always-online",
        "fence",
        f"{PACKAGE}/domain/dockerfile.py",
        '"network": "host" if item.build_network else "none",',
        '"network": "host",',
        (U + "test_dockerfile.py::test_context_is_deterministic_and_carries_annotations",),
        "every RUN line gets the build's network, asked for or not",
    ),
    # -- the six behaviours of issue 22 -------------------------------------------------------
    Mutation(
        "gate-fails-open",
        "gate",
        f"{PACKAGE}/steps/check.py",
        'problem = f"{exc.reason}: {exc}"',
        "problem = None",
        (
            U + "test_never_gate_open.py::test_an_error_reading_the_signature_fails_the_item_naming_the_cause",
            U + "test_never_gate_open.py::test_an_item_whose_signature_could_not_be_read_gets_no_job",
            F + "test_never_gate_open.py",
        ),
        "a registry error while reading the signature lets the image through",
    ),
    Mutation(
        "claims-released-on-success-only",
        "claims",
        f"{PACKAGE}/copying/transfer.py",
        "            self.let_go(held)",
        '            self.let_go(held if __import__("sys").exc_info()[0] is None else [])',
        (F + "test_transfer_faults.py::test_one_broken_download_releases_every_other_claim_of_the_image_too",),
        "a failed copy keeps the claims of its blobs that did arrive: other copiers wait for them",
    ),
    Mutation(
        "claim-on-an-unnamed-blob-left-to-lapse",
        "claims",
        f"{PACKAGE}/copying/transfer.py",
        "        self.let_go(unnamed)",
        "        self._held.difference_update(unnamed)",
        (F + "test_transfer.py::test_a_claim_on_a_blob_the_index_may_not_name_is_released_once_the_image_is_written",),
        "a written image's claim on a blob the index does not name lapses: a waiting copier waits a minute",
    ),
    Mutation(
        "claim-stale-before-heartbeat",
        "claims",
        f"{PACKAGE}/copying/blobindex.py",
        "CLAIM_STALE_SECONDS = 60.0",
        "CLAIM_STALE_SECONDS = 5.0",
        (
            CLAIMS + "test_the_stale_time_outlasts_several_heartbeats",
            CLAIMS + "test_a_holder_that_keeps_beating_keeps_its_claim_against_a_second_copier",
            U + "test_never_claim_a_live_blob.py",
        ),
        "a live holder's claim is taken over between two beats: two copiers fetch one blob",
    ),
    Mutation(
        "chat-more-count-of-second-group",
        "chat",
        f"{PACKAGE}/steps/chat.py",
        "{len(group) - room} more",
        "{len(group) - listed} more",
        (U + "test_chat.py::test_each_group_past_the_list_limit_counts_what_it_leaves_out",),
        '"...and N more" of the second group over the limit is wrong',
    ),
    Mutation(
        "job-deadline-not-read",
        "deadline",
        f"{PACKAGE}/runner/job.py",
        'job.get("job_deadline_seconds")',
        'job.get("deadline_seconds")',
        (
            F + "test_never_late.py::test_items_not_started_by_the_job_s_deadline_end_deferred_and_cost_nothing",
            F + "test_never_late.py",
        ),
        "the job's deadline is ignored: items start until CodeBuild kills the build, with no outcome",
    ),
    Mutation(
        "selected-platforms-carry-every-signature",
        "signatures",
        f"{PACKAGE}/copying/extras.py",
        'listed = select_platforms(document, item.platforms)[0] if item.platforms else document["manifests"]',
        'listed = document["manifests"]',
        (F + "test_runner.py::test_selected_platforms_arrive_with_their_own_signatures_and_no_other",),
        "the signatures of platforms not mirrored are copied too",
    ),
    Mutation(
        "signature-of-another-digest-accepted",
        "gate",
        f"{PACKAGE}/domain/signing.py",
        "if signed != digest:",
        "if signed is None:",
        (
            U + "test_never_gate_open.py::test_a_good_signature_of_another_image_fails_the_item",
            F + "test_signature_gate.py::"
            "test_a_real_signature_under_another_digest_s_tag_is_refused_for_what_its_payload_signs",
        ),
        "a publisher's signature of another image, put under this digest's tag, verifies",
    ),
    # -- more of the same behaviours ----------------------------------------------------------
    Mutation(
        "heartbeat-slower-than-stale",
        "claims",
        f"{PACKAGE}/copying/transfer.py",
        "CLAIM_HEARTBEAT_SECONDS = 10.0",
        "CLAIM_HEARTBEAT_SECONDS = 90.0",
        (U + "test_never_claim_a_live_blob.py",),
        "a claim goes stale between two beats of a live holder",
    ),
    Mutation(
        "heartbeat-does-not-renew",
        "claims",
        f"{PACKAGE}/copying/transfer.py",
        "self.index.heartbeat(digest)",
        "self.index.released(digest)",
        (CLAIMS + "test_a_copier_s_heartbeat_keeps_its_claim_while_it_copies_and_lets_it_go_after",),
        "the heartbeat thread runs but never renews: a long copy loses its claim",
    ),
    Mutation(
        "chat-lists-a-full-page-per-group",
        "chat",
        f"{PACKAGE}/steps/chat.py",
        "room = max(0, LISTED - listed)",
        "room = LISTED",
        (U + "test_chat.py::test_each_group_past_the_list_limit_counts_what_it_leaves_out",),
        "each group lists up to the limit: the message lists more than it says",
    ),
    Mutation(
        "job-deadline-fails-instead-of-deferring",
        "deadline",
        f"{PACKAGE}/runner/job.py",
        "raise DeferredError(NOT_STARTED_IN_TIME, retry_after=None)",
        "raise JobError(NOT_STARTED_IN_TIME)",
        (F + "test_never_late.py::test_items_not_started_by_the_job_s_deadline_end_deferred_and_cost_nothing",),
        "items not started in time are reported failed, and the build with them",
    ),
    Mutation(
        "job-deadline-plus-an-item",
        "deadline",
        f"{PACKAGE}/runner/job.py",
        "if time.monotonic() > self.job_deadline:",
        "if time.monotonic() > self.job_deadline + self.item_seconds:",
        (F + "test_never_late.py",),
        "items start up to an item's time past the deadline: CodeBuild's timeout cuts them",
    ),
    Mutation(
        "selected-platforms-copy-the-index-signature",
        "signatures",
        f"{PACKAGE}/copying/extras.py",
        "own_index = item.platforms is not None and extras.media_type in INDEX_MEDIA_TYPES",
        "own_index = False",
        (F + "test_runner.py::test_selected_platforms_arrive_with_their_own_signatures_and_no_other",),
        "the upstream index's signature is copied beside an index it does not sign",
    ),
    Mutation(
        "platform-signatures-only-for-selected",
        "signatures",
        f"{PACKAGE}/copying/extras.py",
        "    if platform_digests:",
        "    if platform_digests and not index_copied:",
        (
            F + "test_runner.py::"
            "test_a_signed_image_arrives_with_its_signature_and_attestation_which_verify_against_the_target",
        ),
        "the platform manifests' own signatures (cosign sign --recursive) are dropped for a whole index",
    ),
    # -- the gate -----------------------------------------------------------------------------
    Mutation(
        "gate-catch-all-reads-as-unsigned",
        "gate",
        f"{PACKAGE}/steps/verify.py",
        "except NotFoundError:",
        "except Exception:",
        (U + "test_never_gate_open.py::test_an_error_reading_the_signature_fails_the_item_naming_the_cause",),
        'a 5xx or a 401 is reported as "no cosign signature": the cause is hidden',
    ),
    Mutation(
        "gate-empty-signature-manifest-passes",
        "gate",
        f"{PACKAGE}/steps/verify.py",
        'return f"{where} holds no simple-signing signature"',
        "return None",
        (U + "test_never_gate_open.py::test_a_signature_manifest_without_a_signature_in_it_fails_the_item",),
        "a .sig tag holding no signature lets the image through",
    ),
    Mutation(
        "gate-unreadable-signature-manifest-passes",
        "gate",
        f"{PACKAGE}/steps/verify.py",
        'return f"{where}:{tag} is not a JSON manifest"',
        "return None",
        (U + "test_never_gate_open.py::test_a_signature_manifest_that_is_not_json_fails_the_item",),
        "a .sig tag that is not a manifest lets the image through",
    ),
    Mutation(
        "gate-reads-the-first-signature-only",
        "gate",
        f"{PACKAGE}/steps/verify.py",
        "for payload_digest, parts in layers:",
        "for payload_digest, parts in layers[:1]:",
        (U + "test_never_gate_open.py::test_one_good_signature_among_others_is_enough_wherever_it_is",),
        "an image re-signed with a rotated key fails for its older signature",
    ),
    Mutation(
        "gate-bad-signature-verifies",
        "gate",
        f"{PACKAGE}/domain/signing.py",
        'return f"it does not verify with {key.name}"',
        "return None",
        (
            U + "test_never_gate_open.py::test_signatures_by_other_keys_only_fail_the_item_counting_each",
            U + "test_signing.py",
        ),
        "a signature by any key passes",
    ),
    Mutation(
        "gate-pull-not-reserved",
        "budget",
        f"{PACKAGE}/steps/check.py",
        "gate = 1 if item.verify is not None else 0",
        "gate = 0",
        (U + "test_never_over_budget.py::test_a_gated_item_reserves_its_signature_s_pull_too",),
        "the signature's pull is spent without being reserved: the floor is crossed",
    ),
    # -- the claims ---------------------------------------------------------------------------
    Mutation(
        "claim-stale-test-inverted",
        "claims",
        f"{PACKAGE}/copying/blobindex.py",
        "return bool(self.clock() - claimed_at > CLAIM_STALE_SECONDS)",
        "return bool(self.clock() - claimed_at < CLAIM_STALE_SECONDS)",
        (F + "test_transfer.py::test_a_stale_claim_does_not_block_a_fetch", U + "test_never_claim_a_live_blob.py"),
        "fresh claims look dead and dead ones alive",
    ),
    Mutation(
        "claim-taken-without-looking",
        "claims",
        f"{PACKAGE}/copying/blobindex.py",
        "if not own and not self._lapsed(held):",
        "if False:",
        (CLAIMS + "test_a_holder_that_keeps_beating_keeps_its_claim_against_a_second_copier",),
        "any copier takes over any claim: every copier fetches every blob",
    ),
    Mutation(
        "release-looks-like-a-beat",
        "claims",
        f"{PACKAGE}/copying/blobindex.py",
        "ClaimRecord(at=0, released=True)",
        "ClaimRecord(at=self.clock(), released=True)",
        (
            F + "test_transfer.py::test_a_released_claim_is_taken_at_once",
            CLAIMS + "test_a_copier_s_heartbeat_keeps_its_claim_while_it_copies_and_lets_it_go_after",
        ),
        "a released claim still blocks others for a stale time",
    ),
    Mutation(
        "claim-release-not-its-own",
        "claims",
        f"{PACKAGE}/copying/blobindex.py",
        "self._rewrite(digest, ClaimRecord(at=0, released=True))",
        'self.store.put_json(keys.blob(digest, ".claim"), ClaimRecord(at=0, released=True))',
        (CLAIMS + "test_a_holder_whose_claim_was_taken_over_neither_renews_nor_releases_the_new_holder_s",),
        "a stalled copier releases the claim a second one took over: a third fetches the blob too",
    ),
    Mutation(
        "blob-record-unconditional",
        "claims",
        f"{PACKAGE}/copying/blobindex.py",
        "self.store.create_json(key, value) if found is None else self.store.replace_json(key, value, found[1])",
        "self.store.put_json(key, value) or 'written'",
        (F + "test_races.py::test_two_copiers_recording_one_blob_in_two_repositories_keep_both",),
        "two copiers recording one blob at once: one repository is lost from the index",
    ),
    Mutation(
        "claim-takeover-unconditional",
        "claims",
        f"{PACKAGE}/copying/blobindex.py",
        "taken = self.store.replace_json(key, self._claim(), etag)",
        "taken = self.store.put_json(key, self._claim()) or 'taken'",
        (F + "test_races.py::test_two_copiers_taking_over_one_stale_claim_fetch_it_once",),
        "two copiers taking over one stale claim both fetch the blob",
    ),
    # -- the run lock -------------------------------------------------------------------------
    Mutation(
        "run-lock-shorter-than-a-job",
        "lock",
        f"{PACKAGE}/steps/runlock.py",
        "RUN_LOCK_SECONDS = 6 * 3600",
        "RUN_LOCK_SECONDS = 2 * 3600",
        (U + "test_never_two_runs.py::test_the_lock_outlasts_the_longest_state_a_run_waits_on",),
        "a second run starts while the first one's copy job still runs",
    ),
    Mutation(
        "run-lock-expiry-inverted",
        "lock",
        f"{PACKAGE}/steps/runlock.py",
        'float(held.get("expires") or 0) >= now:',
        'float(held.get("expires") or 0) < now:',
        (U + "test_never_two_runs.py::test_a_run_whose_copy_job_is_still_going_keeps_the_lock",),
        "a live lock is taken over, a dead one blocks",
    ),
    Mutation(
        "run-lock-unconditional-write",
        "lock",
        f"{PACKAGE}/steps/runlock.py",
        "if store.create_json(RUN_LOCK_KEY, lock) is not None:",
        "if store.put_json(RUN_LOCK_KEY, lock) or True:",
        (U + "test_never_two_runs.py::test_two_runs_starting_at_once_do_not_both_hold_the_lock",),
        "two runs starting at once both hold the lock",
    ),
    Mutation(
        "run-lock-never-released",
        "lock",
        f"{PACKAGE}/steps/runlock.py",
        "store.delete_if(RUN_LOCK_KEY, found[1])",
        "pass",
        (U + "test_reporting.py::test_one_run_holds_the_lock_until_it_lets_go_and_a_dead_ones_lapses",),
        "every run after the first is refused for six hours",
    ),
    Mutation(
        "run-lock-takeover-unconditional",
        "lock",
        f"{PACKAGE}/steps/runlock.py",
        "if store.replace_json(RUN_LOCK_KEY, lock, etag) is not None:",
        "if store.put_json(RUN_LOCK_KEY, lock) or True:",
        (F + "test_races.py::test_two_executions_taking_over_one_lapsed_lock_end_with_one_syncing",),
        "two executions taking over one lapsed lock both sync",
    ),
    Mutation(
        "conflict-taken-for-a-refusal",
        "lock",
        f"{PACKAGE}/adapters/s3.py",
        'if code != "ConditionalRequestConflict" or attempt == CONFLICT_RETRIES:',
        "if True:",
        (F + "test_races.py::test_a_conditional_write_s3_answers_409_is_retried_not_taken_for_a_refusal",),
        "a 409 from S3 fails the run instead of being retried",
    ),
    Mutation(
        "run-lock-damaged-blocks-for-ever",
        "lock",
        f"{PACKAGE}/steps/runlock.py",
        'if isinstance(held, dict) and float(held.get("expires")',
        'if float(held.get("expires")',
        (U + "test_never_two_runs.py::test_a_lock_that_cannot_be_read_blocks_no_run_for_ever",),
        "a lock that is not a JSON object makes every run fail",
    ),
    # -- the pull budget ----------------------------------------------------------------------
    Mutation(
        "budget-ignores-a-lower-count",
        "budget",
        f"{PACKAGE}/domain/ratelimit.py",
        "left = min(self._left.get(registry, limit.remaining), limit.remaining)",
        "left = self._left.get(registry, limit.remaining)",
        (U + "test_never_over_budget.py::test_a_lower_count_seen_later_wins_over_what_the_budget_remembers",),
        "pulls another job spent meanwhile are not seen: the floor is crossed",
    ),
    Mutation(
        "budget-forgets-its-reservations",
        "budget",
        f"{PACKAGE}/domain/ratelimit.py",
        "left = min(self._left.get(registry, limit.remaining), limit.remaining)",
        "left = limit.remaining",
        (U + "test_never_over_budget.py::test_reservations_add_up_until_the_floor",),
        "every item sees the whole budget: a batch spends it many times over",
    ),
    Mutation(
        "budget-floor-off-by-one",
        "budget",
        f"{PACKAGE}/domain/ratelimit.py",
        "if left - pulls < self.floor:",
        "if left - pulls < self.floor - 1:",
        (U + "test_never_over_budget.py::test_reservations_add_up_until_the_floor", U + "test_ratelimit.py"),
        "one pull below the floor",
    ),
    Mutation(
        "budget-refusal-spends",
        "budget",
        f"{PACKAGE}/domain/ratelimit.py",
        "                self._left[registry] = left",
        "                self._left[registry] = left - pulls",
        (U + "test_never_over_budget.py::test_a_refused_reservation_spends_nothing",),
        "a deferred item's pulls are taken from the others",
    ),
    Mutation(
        "budget-refusal-forgets-the-low-count",
        "budget",
        f"{PACKAGE}/domain/ratelimit.py",
        "                self._left[registry] = left",
        "                pass",
        (U + "test_never_over_budget.py::test_a_refused_reservation_remembers_the_low_count_it_saw",),
        "a stale, higher count seen later gives back pulls the registry no longer has",
    ),
    Mutation(
        "budget-one-pull-per-index",
        "budget",
        f"{PACKAGE}/steps/check.py",
        "return len(item.platforms) + gate",
        "return 1 + gate",
        (U + "test_never_over_budget.py::test_an_index_reserves_a_pull_per_platform_it_will_fetch",),
        "a multi-platform copy reserves one pull and spends one per platform",
    ),
    # -- image shapes -------------------------------------------------------------------------
    Mutation(
        "urls-layer-skipped",
        "shapes",
        f"{PACKAGE}/copying/transfer.py",
        'if "nondistributable" in media_type or "foreign" in media_type:',
        'if "nondistributable" in media_type or "foreign" in media_type or layer.get("urls"):',
        (F + "test_transfer.py::test_a_layer_that_lists_urls_is_copied_when_its_media_type_is_distributable",),
        "a layer that lists urls is left out: the mirrored tag cannot be pulled",
    ),
    Mutation(
        "schema1-not-refused-at-the-check",
        "shapes",
        f"{PACKAGE}/steps/check.py",
        "if head.media_type in SCHEMA1_MEDIA_TYPES:",
        "if False:",
        (F + "test_strict_handling.py::test_a_schema1_image_is_refused_at_the_check_for_one_head_and_no_pull",),
        "an old schema 1 image spends a pull every run and fails with words that read like corruption",
    ),
    # -- the organisation ---------------------------------------------------------------------
    Mutation(
        "pull-policy-in-someone-else-s-repository",
        "organisation",
        f"{PACKAGE}/adapters/ecr.py",
        "if not all(tag in tags for tag in TAGS):",
        "if False:",
        (REPOSITORIES + "test_a_repository_hubmirror_did_not_make_is_left_alone",),
        "hubmirror writes its statements into a repository it did not make",
    ),
    Mutation(
        "pull-policy-drops-the-owner-s-statements",
        "organisation",
        f"{PACKAGE}/domain/pullpolicy.py",
        'return json.dumps({"Version": "2012-10-17", **policy, "Statement": [*theirs, *own]}, separators=(",", ":"))',
        'return json.dumps({"Version": "2012-10-17", **policy, "Statement": [*own]}, separators=(",", ":"))',
        (REPOSITORIES + "test_an_older_hubmirror_repository_gains_the_statements_and_keeps_its_owner_s",),
        "the statements a repository's owner added are lost when hubmirror writes its own",
    ),
    Mutation(
        "pull-policy-rewritten-every-run",
        "organisation",
        f"{PACKAGE}/domain/pullpolicy.py",
        "if [_normal(s) for s in ours] == [_normal(s) for s in own]:",
        "if False:",
        (REPOSITORIES + "test_an_older_hubmirror_repository_gains_the_statements_and_keeps_its_owner_s",),
        "every run rewrites every repository's policy",
    ),
    Mutation(
        "refusal-not-remembered",
        "shapes",
        f"{PACKAGE}/runner/job.py",
        "if isinstance(exc, RefusedImageError) and refused is not None:",
        "if False:",
        (F + "test_runner.py::test_a_refusal_no_run_can_change_is_remembered_and_costs_the_next_run_one_head",),
        "an image no run can mirror spends its pulls again every run",
    ),
    Mutation(
        "remembered-refusal-not-read",
        "shapes",
        f"{PACKAGE}/steps/check.py",
        "elif not force and (refused := _refused(refusals, head.digest, decision.recipe, item)) is not None:",
        "elif False:",
        (F + "test_runner.py::test_a_refusal_no_run_can_change_is_remembered_and_costs_the_next_run_one_head",),
        "a remembered refusal is ignored: the image is pulled again every run",
    ),
    Mutation(
        "spool-unbounded",
        "shapes",
        f"{PACKAGE}/copying/transfer.py",
        "while self.spool_limit is not None and self._spool_bytes > self.spool_limit and self._spooled:",
        "while False:",
        (F + "test_transfer.py::test_the_local_copies_of_fetched_blobs_stay_under_their_bound",),
        "a batch of large images fills the job's disk with copies of every blob it fetched",
    ),
    Mutation(
        "refused-list-copied-piecemeal",
        "shapes",
        f"{PACKAGE}/copying/transfer.py",
        "if refused:  # its images would be written first and stay, untagged",
        "if False:",
        (STRICT + "test_a_verbatim_copy_the_target_would_refuse_fails_in_its_words_before_a_byte_moves",),
        "a Docker list ECR refuses leaves its images in the target, untagged, every run",
    ),
    # -- redirects and downloads --------------------------------------------------------------
    Mutation(
        "redirect-carries-credentials",
        "redirects",
        f"{PACKAGE}/adapters/registry/client.py",
        "if self._on_host(url):",
        "if True:",
        (FOLLOW + "test_every_redirect_status_is_followed_without_the_registry_s_credentials",),
        "the registry's Authorization goes to the CDN or S3",
    ),
    Mutation(
        "redirect-keeps-the-previous-header",
        "redirects",
        f"{PACKAGE}/adapters/registry/client.py",
        'headers.pop("Authorization", None)',
        "pass",
        (FOLLOW + "test_every_redirect_status_is_followed_without_the_registry_s_credentials",),
        "the header set for the registry stays on the request sent to the download host",
    ),
    Mutation(
        "redirect-308-not-followed",
        "redirects",
        f"{PACKAGE}/adapters/registry/client.py",
        "REDIRECTS = frozenset({301, 302, 303, 307, 308})",
        "REDIRECTS = frozenset({301, 302, 303, 307})",
        (FOLLOW + "test_every_redirect_status_is_followed_without_the_registry_s_credentials",),
        "a registry answering 308 cannot be read from",
    ),
    Mutation(
        "redirect-relative-location",
        "redirects",
        f"{PACKAGE}/adapters/registry/client.py",
        'url = urljoin(url, response.headers["Location"])',
        'url = response.headers["Location"]',
        (FOLLOW + "test_a_relative_location_is_followed_on_the_registry_s_own_host",),
        "a relative Location is requested as a bare path",
    ),
    Mutation(
        "redirect-host-challenge-answered",
        "redirects",
        f"{PACKAGE}/adapters/registry/client.py",
        "if status == 401 and not challenged and replayable and self._on_host(url):",
        "if status == 401 and not challenged and replayable:",
        (FOLLOW + "test_a_download_host_s_challenge_is_never_answered_with_credentials",),
        "a download host's 401 is taken for the registry's challenge",
    ),
    Mutation(
        "redirects-unbounded",
        "redirects",
        f"{PACKAGE}/adapters/registry/client.py",
        "if redirects > MAX_REDIRECTS:",
        "if redirects > MAX_REDIRECTS * 20:",
        (U + "test_registry_auth.py::test_redirects_are_followed_five_times_at_most",),
        "a redirect loop is followed a hundred times",
    ),
    Mutation(
        "redirect-errors-blame-credentials",
        "redirects",
        f"{PACKAGE}/domain/registry/errors.py",
        "if elsewhere != urlsplit(base_url).netloc:",
        "if False:",
        (FOLLOW + "test_a_download_host_s_refusal_is_named_as_the_download_s_not_the_registry_s",),
        'an expired download URL reads as "access denied with the configured credentials"',
    ),
    Mutation(
        "download-digest-unchecked",
        "redirects",
        f"{PACKAGE}/adapters/registry/client.py",
        "if sha256_digest(data) != digest:",
        "if False:",
        (FOLLOW + "test_bytes_a_download_host_sends_are_held_to_the_digest",),
        "a signature payload or config is taken as sent, whatever its digest",
    ),
    Mutation(
        "manifest-by-digest-unchecked",
        "redirects",
        f"{PACKAGE}/adapters/registry/client.py",
        'if reference.startswith("sha256:") and digest != reference:',
        "if False:",
        (FOLLOW + "test_a_manifest_fetched_by_digest_is_held_to_that_digest",),
        "a manifest asked for by digest is taken whatever its bytes",
    ),
    Mutation(
        "stream-size-unchecked",
        "redirects",
        f"{PACKAGE}/adapters/registry/stream.py",
        "if self.size is not None and self.received != self.size:",
        "if False:",
        (FOLLOW + "test_a_streamed_blob_shorter_than_its_size_is_refused_even_when_its_digest_matches",),
        "a blob of another size than its descriptor's is pushed",
    ),
    Mutation(
        "stream-unbounded",
        "redirects",
        f"{PACKAGE}/adapters/registry/stream.py",
        "if self.size is not None and self.received > self.size:",
        "if False:",
        (FOLLOW + "test_a_streamed_blob_longer_than_its_size_is_refused",),
        "a download host sending endless bytes is streamed on",
    ),
    Mutation(
        "stream-digest-unchecked",
        "redirects",
        f"{PACKAGE}/adapters/registry/stream.py",
        'if algorithm == "sha256" and self._hash.hexdigest() != expected:',
        "if False:",
        (FOLLOW + "test_a_streamed_blob_that_is_not_its_digest_is_refused",),
        "corrupt bytes from the CDN are uploaded",
    ),
    Mutation(
        "stream-past-deadline",
        "redirects",
        f"{PACKAGE}/adapters/registry/stream.py",
        "if timeout is not None and timeout <= 0:",
        "if False:",
        (FOLLOW + "test_a_download_past_its_deadline_is_given_up_before_a_byte_is_read",),
        "a download read after its deadline fails with a Python error, not the item's words",
    ),
)


@dataclass
class Verdict:
    mutation: Mutation
    line: int
    status: str  # killed, survived, error
    killed_by: str
    seconds: float


def locate(root: Path, mutation: Mutation) -> int:
    """The line (from 1) of the mutation's original text; raises ValueError when it is not exactly once there."""
    if "\n" in mutation.original or "\n" in mutation.replacement:
        raise ValueError(f"{mutation.name}: a mutation is one line")
    path = root / mutation.path
    if not path.is_file():
        raise ValueError(f"{mutation.name}: {mutation.path} does not exist")
    text = path.read_text()
    count = text.count(mutation.original)
    if count != 1:
        raise ValueError(f"{mutation.name}: {mutation.original!r} occurs {count} times in {mutation.path}, not once")
    return text[: text.index(mutation.original)].count("\n") + 1


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


@contextmanager
def scratch_copy(root: Path) -> Iterator[Path]:
    """A copy of the work tree as git sees it (tracked and untracked files, ignored ones left out)."""
    with tempfile.TemporaryDirectory(prefix="hubmirror-mutate-") as parent:
        tree = Path(parent) / "tree"
        listed = git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
        for name in filter(None, listed):
            source = root / name
            if not source.exists() and not source.is_symlink():
                continue  # deleted in the work tree, not yet in git
            target = tree / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
        for name in LINKED:
            if (root / name).exists():
                (tree / name).symlink_to(root / name)
        yield tree


def pytest_command(tests: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]


def run_tests(tree: Path, tests: Sequence[str], timeout: float) -> tuple[int | None, str]:
    """Run pytest on ``tests`` in ``tree``; (exit code, output), exit code None when it timed out.

    The tests run in a process group of their own, ended as a whole on a timeout (the local
    registries a functional test starts go with it).
    """
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # a mutant's bytecode is never cached
    env.pop("PYTEST_ADDOPTS", None)
    with subprocess.Popen(
        pytest_command(tests),
        cwd=tree,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    output, _ = process.communicate(timeout=10)
                    break
                except subprocess.TimeoutExpired:
                    continue
            return None, ""
    return process.returncode, output


def first_failure(output: str) -> str:
    """The node id of the first test that failed, from pytest's short summary."""
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" ", 1)[1].split(" - ", 1)[0].strip()
    return "?"


def judge(tree: Path, mutation: Mutation, timeout: float) -> Verdict:
    """Apply ``mutation`` in ``tree``, run its tests, put the file back (always)."""
    line = locate(tree, mutation)
    path = tree / mutation.path
    original = path.read_bytes()
    stat = path.stat()
    started = time.monotonic()
    try:
        path.write_bytes(original.replace(mutation.original.encode(), mutation.replacement.encode(), 1))
        code, output = run_tests(tree, mutation.tests, timeout)
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    if path.read_bytes() != original:
        raise RuntimeError(f"{mutation.path} was not restored after {mutation.name}")
    seconds = time.monotonic() - started
    if code is None:
        return Verdict(mutation, line, "killed", f"(timeout after {timeout:.0f} s)", seconds)
    if code == 1:
        return Verdict(mutation, line, "killed", first_failure(output), seconds)
    if code == 0:
        return Verdict(mutation, line, "survived", "", seconds)
    tail = "\n".join(output.strip().splitlines()[-15:])
    print(f"\n{mutation.name}: pytest exited {code}:\n{tail}", file=sys.stderr)
    return Verdict(mutation, line, "error", f"pytest exited {code}", seconds)


def table(verdicts: Sequence[Verdict], *, markdown: bool) -> str:
    rows = [
        (
            str(n),
            v.mutation.area,
            v.mutation.name,
            f"{v.mutation.path.removeprefix('functions/')}:{v.line}",
            v.status,
            v.killed_by,
            f"{v.seconds:.0f}",
        )
        for n, v in enumerate(verdicts, 1)
    ]
    header = ("#", "area", "mutation", "where", "result", "killed by", "s")
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--only", action="append", default=[], help="run the mutations whose name contains TEXT")
    parser.add_argument("--list", action="store_true", help="list the mutations and the tests named for each")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per mutation's tests")
    parser.add_argument("--in-place", action="store_true", help="edit the work tree itself (needs functions/ clean)")
    parser.add_argument("--markdown", action="store_true", help="print the table in markdown")
    args = parser.parse_args(argv)

    chosen = [m for m in MUTATIONS if not args.only or any(text in m.name for text in args.only)]
    names = [m.name for m in MUTATIONS]
    if len(set(names)) != len(names):
        print("mutate: two mutations share a name", file=sys.stderr)
        return 2
    try:
        lines = {m.name: locate(ROOT, m) for m in chosen}
    except ValueError as exc:
        print(f"mutate: the list no longer matches the code: {exc}", file=sys.stderr)
        return 2
    if args.list:
        for m in chosen:
            print(f"{m.name} ({m.path}:{lines[m.name]}): {m.effect}")
            print(f"    {m.original}\n -> {m.replacement}")
            for test in m.tests:
                print(f"    {test}")
        return 0
    if not chosen:
        print("mutate: no mutation matches", file=sys.stderr)
        return 2
    if args.in_place and git(ROOT, "status", "--porcelain", "functions/").strip():
        print(
            "mutate: functions/ has uncommitted changes; --in-place would mix them with mutants "
            "(commit or stash them, or run without --in-place, on a scratch copy)",
            file=sys.stderr,
        )
        return 2

    started = time.monotonic()
    with scratch_copy(ROOT) if not args.in_place else _here(ROOT) as tree:
        baseline = sorted({t for m in chosen for t in m.tests})
        print(f"mutate: baseline, {len(baseline)} test selections on the unmutated code ...", flush=True)
        code, output = run_tests(tree, baseline, args.timeout * 3)
        if code != 0:
            print(output[-4000:], file=sys.stderr)
            print("mutate: the named tests do not pass on the unmutated code; no verdict is possible", file=sys.stderr)
            return 2
        verdicts = []
        for n, mutation in enumerate(chosen, 1):
            verdict = judge(tree, mutation, args.timeout)
            verdicts.append(verdict)
            print(f"[{n}/{len(chosen)}] {mutation.name}: {verdict.status} ({verdict.seconds:.0f} s)", flush=True)
    print()
    print(table(verdicts, markdown=args.markdown))
    survived = [v for v in verdicts if v.status != "killed"]
    print(
        f"\n{len(verdicts) - len(survived)} of {len(verdicts)} mutations killed"
        f"{', ' + str(len(survived)) + ' not: ' + ', '.join(v.mutation.name for v in survived) if survived else ''}; "
        f"{time.monotonic() - started:.0f} s"
    )
    return 1 if survived else 0


@contextmanager
def _here(root: Path) -> Iterator[Path]:
    yield root


if __name__ == "__main__":
    sys.exit(main())

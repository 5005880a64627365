"""Why an item failed or waits, as one of a closed set of causes, and what a person does about it. Pure.

A reason says what happened (``not found upstream: not found: upstream docker.io/library/nginx:
...``); the person paged by a report also needs the remedy: a retry never heals a tag that does
not exist, and a wrong secret fails every run until someone fixes it. Every reason a report
gives belongs to exactly one :class:`Cause`; each cause has a next step in plain words and says
whether the next run retries the item by itself. :func:`remedy` reads the cause from the words
the producers of reasons put first (the check's ``not found upstream:``, a registry error's
``reason`` word, the job's ``build failed: buildah build failed``...); a reason no rule knows is
``hubmirror`` itself, so no reason is without a cause.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Cause(StrEnum):
    """The closed set of causes a report's failures and deferrals have."""

    ALLOWLIST = "allowlist"
    UPSTREAM_CREDENTIALS = "upstream-credentials"
    RATE_LIMIT = "rate-limit"
    UPSTREAM_UNAVAILABLE = "upstream-unavailable"
    TARGET = "target"
    SIGNATURE = "signature"
    BUILD_LINE = "build-line"
    HUBMIRROR = "hubmirror"


#: What each cause means, for people (the README's troubleshooting table has a row for each).
TITLES: dict[Cause, str] = {
    Cause.ALLOWLIST: "the allowlist is wrong",
    Cause.UPSTREAM_CREDENTIALS: "upstream credentials",
    Cause.RATE_LIMIT: "rate limit",
    Cause.UPSTREAM_UNAVAILABLE: "upstream unavailable",
    Cause.TARGET: "target permissions or quota",
    Cause.SIGNATURE: "signature",
    Cause.BUILD_LINE: "build line",
    Cause.HUBMIRROR: "hubmirror itself",
}
#: Whether the next run tries an item of this cause again by itself.
RETRIED: dict[Cause, bool] = {
    Cause.ALLOWLIST: False,
    Cause.UPSTREAM_CREDENTIALS: True,
    Cause.RATE_LIMIT: True,
    Cause.UPSTREAM_UNAVAILABLE: True,
    Cause.TARGET: True,
    Cause.SIGNATURE: True,
    Cause.BUILD_LINE: True,
    Cause.HUBMIRROR: True,
}
#: The next step of each cause when no rule below says something more precise.
NEXT_STEPS: dict[Cause, str] = {
    Cause.ALLOWLIST: "fix the entry in the allowlist (source, tags or pinned digest) and push it; "
    "a retry will not help",
    Cause.UPSTREAM_CREDENTIALS: "check the secret named in UpstreamCredentialsSecret (user name and token for this "
    "registry), or that the image is public",
    Cause.RATE_LIMIT: "nothing to do: a later run syncs it when the registry lets it pull again",
    Cause.UPSTREAM_UNAVAILABLE: "nothing to do unless it repeats: the next run retries it; if it fails again, "
    "check the registry's status page",
    Cause.TARGET: "check the copy job's role and the repository's policy, and the account's ECR quotas",
    Cause.SIGNATURE: "no signature over this digest verifies with the key verify: names: check with the publisher "
    "that the tag was not replaced, or that the key is current; the mirror keeps the image it had",
    Cause.BUILD_LINE: "fix the entry's build_commands (the build log shows the line's output); a line that downloads "
    "needs build_network: true",
    Cause.HUBMIRROR: "the next run retries it; if it fails again, the reason and the execution's log say where",
}


@dataclass(frozen=True)
class Remedy:
    """An item's cause, the next step for it, and whether the next run retries it."""

    cause: Cause
    next_step: str
    retried: bool

    @property
    def title(self) -> str:
        return TITLES[self.cause]


#: (words, where, cause, next step or None for the cause's own): ``where`` is "start" (the
#: reason starts with the words, after a job's ``copy failed: `` or ``build failed: ``) or
#: "in" (they appear in it). Tried in order; the first match decides.
RULES: tuple[tuple[str, str, Cause, str | None], ...] = (
    (
        "pinned digest",
        "start",
        Cause.ALLOWLIST,
        "the pinned digest is gone upstream: pin another digest of the tag in the allowlist",
    ),
    (
        "not found upstream",
        "start",
        Cause.ALLOWLIST,
        "upstream has no such image or tag: fix the entry's source or tags in the allowlist (a retry will not help)",
    ),
    # before "signature:": a signature the budget or a 429 put off is not a bad signature
    (
        "pull budget low",
        "in",
        Cause.RATE_LIMIT,
        "nothing to do: a later run syncs it when the pull budget refills (upstream credentials raise the limit)",
    ),
    ("rate limited", "in", Cause.RATE_LIMIT, None),
    ("signature:", "start", Cause.SIGNATURE, None),
    (
        "authentication: target",
        "start",
        Cause.TARGET,
        "ECR refused hubmirror's credentials: check the copy job's role and the repository's policy",
    ),
    ("authentication", "start", Cause.UPSTREAM_CREDENTIALS, None),
    (
        "tag list too long",
        "start",
        Cause.ALLOWLIST,
        "the repository has more tags than a selector reads: narrow it (include, semver) or list tags by name",
    ),
    (
        "TagListTooLongError",
        "in",
        Cause.ALLOWLIST,
        "the repository has more tags than a selector reads: narrow it (include, semver) or list tags by name",
    ),
    ("AuthenticationError", "in", Cause.UPSTREAM_CREDENTIALS, None),
    ("RateLimitedError", "in", Cause.RATE_LIMIT, None),
    ("RegistryUnavailableError", "in", Cause.UPSTREAM_UNAVAILABLE, None),
    ("NotFoundError", "in", Cause.ALLOWLIST, None),
    (
        "more than the",
        "in",
        Cause.ALLOWLIST,
        "the image is larger than a registry accepts: remove the entry; no run can mirror it",
    ),
    (
        "declares a size of",
        "in",
        Cause.ALLOWLIST,
        "the image is larger than a registry accepts: remove the entry; no run can mirror it",
    ),
    (
        "MANIFEST_INVALID",
        "in",
        Cause.ALLOWLIST,
        "ECR refuses the image's manifest as it is upstream (a field its schema lacks): name platforms: "
        "for the entry, so hubmirror writes an index of its own; a retry will not help",
    ),
    (
        "is a Docker schema 1 image",
        "in",
        Cause.ALLOWLIST,
        "upstream keeps this tag only in Docker's old schema 1 format: pick a newer tag the publisher "
        "rebuilt (schema 2 or OCI), or remove the entry; a retry will not help",
    ),
    (
        "nested indexes are not supported",
        "in",
        Cause.ALLOWLIST,
        "upstream's image is an index inside an index, which no run can mirror: remove the entry",
    ),
    ("buildah build failed", "start", Cause.BUILD_LINE, None),
    ("AWS:", "start", Cause.TARGET, None),
    ("internal error", "start", Cause.HUBMIRROR, None),
    ("not checked in time", "start", Cause.HUBMIRROR, "nothing to do: a later run checks it"),
    (
        "not started in time",
        "in",
        Cause.HUBMIRROR,
        "nothing to do: a later run syncs it (the job ran out of its own time on other images)",
    ),
    ("unavailable: target", "start", Cause.TARGET, None),
    ("download: target", "start", Cause.TARGET, None),
    ("unavailable", "start", Cause.UPSTREAM_UNAVAILABLE, None),
    ("download", "start", Cause.UPSTREAM_UNAVAILABLE, None),
    ("not found", "start", Cause.ALLOWLIST, None),
)
#: What a job puts before the reason of an item it could not do.
JOB_PREFIXES = ("copy failed: ", "build failed: ")


def remedy(reason: str) -> Remedy:
    """The cause of an item's reason, its next step, and whether the next run retries it.

    >>> remedy("not found upstream: not found: upstream docker.io/library/nginx: manifest unknown (404)").cause
    <Cause.ALLOWLIST: 'allowlist'>
    >>> remedy("build failed: buildah build failed: Error: building at STEP ...").retried
    True
    >>> remedy("something no rule knows").cause
    <Cause.HUBMIRROR: 'hubmirror'>
    """
    said = reason
    for prefix in JOB_PREFIXES:
        said = said.removeprefix(prefix)
    for words, where, cause, step in RULES:
        if said.startswith(words) if where == "start" else words in said:
            return Remedy(cause, step or NEXT_STEPS[cause], RETRIED[cause])
    return Remedy(Cause.HUBMIRROR, NEXT_STEPS[Cause.HUBMIRROR], RETRIED[Cause.HUBMIRROR])


def advice(reason: str) -> str:
    """What to do about an item, given its reason (its :func:`remedy`'s next step).

    >>> advice("unavailable: upstream ghcr.io/acme/app: server error 503")
    "nothing to do unless it repeats: the next run retries it; if it fails again, check the registry's status page"
    """
    return remedy(reason).next_step

"""What a person should do about an item that failed or waits, read from its reason. Pure.

A reason says what happened (``not found: upstream docker.io/library/nginx: ...``); the person
paged by a report also needs the remedy: a retry never heals a tag that does not exist, and a
wrong secret fails every run until someone fixes it. The rules are tried in order; the first
whose words start the reason (or appear in it) gives the advice.
"""

from __future__ import annotations

#: Retried by the next run: nothing to fix unless it repeats.
RETRIED = "the next run retries it; if it fails again, the reason and the execution's log say where"
#: (words, where, advice): ``where`` is "start" (the reason starts with them) or "in".
RULES: tuple[tuple[str, str, str], ...] = (
    ("pinned digest", "start", "the pinned digest is gone upstream: pin another digest of the tag in the allowlist"),
    (
        "not found upstream",
        "start",
        "upstream has no such image or tag: fix the entry's source or tags in the allowlist (a retry will not help)",
    ),
    (
        "signature:",
        "start",
        "no signature over this digest verifies with the key verify: names: check with the publisher that the "
        "tag was not replaced, or that the key is current; the mirror keeps the image it had",
    ),
    (
        "authentication: target",
        "start",
        "ECR refused hubmirror's credentials: check the copy job's role and the repository's policy",
    ),
    (
        "authentication",
        "start",
        "the upstream registry refused the credentials: check the secret named in UpstreamCredentialsSecret "
        "(user name and token for this registry), or that the image is public",
    ),
    (
        "tag list too long",
        "start",
        "the repository has more tags than a selector reads: narrow it (include, semver) or list tags by name",
    ),
    ("more than the", "in", "the image is larger than a registry accepts: remove the entry; no run can mirror it"),
    (
        "pull budget low",
        "in",
        "nothing to do: a later run syncs it when the pull budget refills (upstream credentials raise the limit)",
    ),
    ("rate limited", "in", "nothing to do: a later run syncs it when the registry lets it pull again"),
    ("not checked in time", "start", "nothing to do: a later run checks it"),
    (
        "not started in time",
        "in",
        "nothing to do: a later run syncs it (the job ran out of its own time on other images)",
    ),
)


def advice(reason: str) -> str:
    """What to do about an item, given its reason.

    >>> advice("not found upstream: not found: upstream docker.io/library/nginx: manifest unknown (404)")
    "upstream has no such image or tag: fix the entry's source or tags in the allowlist (a retry will not help)"
    >>> advice("unavailable: upstream ghcr.io/acme/app: server error 503")
    "the next run retries it; if it fails again, the reason and the execution's log say where"
    """
    for words, where, text in RULES:
        if reason.startswith(words) if where == "start" else words in reason:
            return text
    return RETRIED

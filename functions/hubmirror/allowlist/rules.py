"""The allowlist: the only way an image enters the mirror.

``parse_allowlist`` reads the YAML text, checks every rule and either returns an
:class:`Allowlist` or raises :class:`AllowlistError` carrying *every* problem of the file,
each with its line, its path and the rule it breaks::

    allowlist.yaml:12: images[3].tags[0]: '1.1' came from the number 1.10; quote it: "1.10"

The shape (keys, types, limits, enumerations) is declared once, in the constants below;
:mod:`hubmirror.allowlist.schema` turns the same constants into the published JSON Schema.

Pure: works on text; reading the file is the caller's business.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from hubmirror.allowlist import yamldoc
from hubmirror.allowlist.yamldoc import Path, format_path
from hubmirror.domain.dockerfile import build_command_problem, name_value_since, network_tool
from hubmirror.domain.oci import KNOWN_PLATFORMS, normalise_platform, platform_suggestion
from hubmirror.domain.references import (
    DIGEST_RE,
    DOCKER_HUB,
    DOCKER_HUB_WEB_HOSTS,
    ECR_REPOSITORY_MAX,
    ECR_REPOSITORY_RE,
    TAG_RE,
    TAG_RULE,
    ImageReference,
    InvalidReferenceError,
    docker_hub_page_source,
)
from hubmirror.domain.selectors import DEFAULT_MAX_TAGS, MAX_TAGS_LIMIT, TagSelector
from hubmirror.domain.signing import KEY_SOURCES, PublicKey, UnusableKeyError
from hubmirror.domain.versions import RangeError, VersionRange

MAX_BYTES = 1024 * 1024
MAX_ENTRIES = 10_000
MAX_TAGS_PER_ENTRY = 1_000
MAX_BUILD_COMMANDS = 100
MAX_PATTERNS = 50
MAX_PATTERN_LENGTH = 200
MAX_PLATFORMS = 16
TARGET_MAX = ECR_REPOSITORY_MAX - 64
VARIANT_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$"
#: ``signatures``: copy the image's cosign signatures, attestations and SBOM with it, or not.
#: What ``signatures:`` may say.
SignatureMode = Literal["copy", "skip"]
SIGNATURE_MODES: tuple[SignatureMode, ...] = get_args(SignatureMode)
#: ``verify``: where the cosign public key is. The check function may read secrets and
#: parameters under these names only (its role says so), and KMS keys of its own account.
VERIFY_PATTERNS = {
    "key": r"-----BEGIN PUBLIC KEY-----",
    "secret": r"^hubmirror/[A-Za-z0-9/_+=.@-]{1,500}$",
    "parameter": r"^/hubmirror/[A-Za-z0-9/_.-]{1,1000}$",
    "kms": r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/(mrk-[0-9a-f]{32}|[0-9a-f-]{36})$",
}
VERIFY_RULES = {
    "key": "the cosign public key itself, PEM text (-----BEGIN PUBLIC KEY----- ...), ECDSA P-256",
    "secret": "the name of a Secrets Manager secret under hubmirror/ holding the PEM key",
    "parameter": "the name of an SSM parameter under /hubmirror/ holding the PEM key",
    "kms": "the ARN of a KMS key (arn:aws:kms:<region>:<account>:key/<id>) whose public key verifies",
}
#: ``verify`` without a key: who must have signed, keyless (Sigstore's Fulcio and Rekor). One of
#: each pair is required, as cosign requires ``--certificate-identity[-regexp]`` and
#: ``--certificate-oidc-issuer[-regexp]``.
#: The GitHub workflow claims, as cosign's ``--certificate-github-workflow-*`` flags check them
#: (each exact, against the certificate's extension Fulcio writes for a GitHub Actions token).
GITHUB_CLAIM_KEYS = (
    "github_workflow_repository",
    "github_workflow_ref",
    "github_workflow_trigger",
    "github_workflow_sha",
    "github_workflow_name",
)
KEYLESS_KEYS = ("identity", "identity_regexp", "issuer", "issuer_regexp", *GITHUB_CLAIM_KEYS)
KEYLESS_RULES = {
    "identity": "the e-mail address or URI the signing certificate was issued for, exactly",
    "identity_regexp": "a regular expression the certificate's e-mail address or URI must match "
    "(anchor it with ^ and $)",
    "issuer": "the OIDC issuer that vouched for the identity, exactly, such as https://token.actions.githubusercontent.com",
    "issuer_regexp": "a regular expression the OIDC issuer must match",
    "github_workflow_repository": "the GitHub repository whose workflow signed, owner/name, such as acme/app",
    "github_workflow_ref": "the git ref the workflow ran for, such as refs/heads/main or refs/tags/v1.2.0",
    "github_workflow_trigger": "the event that started the workflow, such as push or release",
    "github_workflow_sha": "the commit the workflow ran at, its full hex digest",
    "github_workflow_name": "the workflow's name, as its name: says",
}
#: What a claim's value must look like (the others: any non-empty text).
KEYLESS_PATTERNS = {
    "github_workflow_repository": r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$",
    "github_workflow_ref": r"^refs/\S+$",
    "github_workflow_trigger": r"^[a-z_]+$",
    "github_workflow_sha": r"^([0-9a-f]{40}|[0-9a-f]{64})$",
}
#: The largest identity or issuer (a GitHub workflow URI with its ref is a few hundred characters).
KEYLESS_MAX = 1024
TOP_KEYS = ("images", "defaults")
DEFAULT_KEYS = ("platforms", "target_prefix", "build_commands", "build_network", "max_tags", "signatures", "verify")
ENTRY_KEYS = (
    "source",
    "tags",
    "select",
    "pinned",
    "target",
    "target_prefix",
    "platforms",
    "build_commands",
    "build_network",
    "max_tags",
    "signatures",
    "verify",
)
SELECT_EXAMPLE = "{semver: '>=1.26', latest: 3}"
SELECT_KEYS = ("include", "include_regex", "exclude", "exclude_regex", "variant", "semver", "latest", "prereleases")
#: What each key holds, for messages and for the JSON Schema.
KEY_HELP = {
    "images": "the list of allowed images",
    "defaults": "settings every entry inherits unless it sets its own",
    "source": "the upstream image without tag, such as 'nginx' or 'ghcr.io/org/app'",
    "tags": 'exact tags to mirror, quoted, such as ["1.27", "1.26.2"]',
    "select": "tags chosen from the upstream tag list at each run (globs, regexes, semver range, latest N)",
    "pinned": 'tags mirrored at an approved digest that never moves, such as {"1.27": "sha256:..."}',
    "target": "the repository name under the prefix (default: the source path)",
    "target_prefix": "a path put before the target name, such as 'dockerhub'",
    "platforms": "os/arch[/variant] platforms to mirror (default: every platform upstream has)",
    "build_commands": "Dockerfile lines added on top of FROM <source>@<digest>",
    "build_network": "true lets the RUN lines of build_commands reach the network (package managers, downloads); "
    "by default they run with none",
    "signatures": "copy (the default) or skip the image's cosign signatures, attestations and SBOM",
    "verify": "copy or build only when a cosign signature verifies with this key (one of "
    + ", ".join(KEY_SOURCES)
    + "), or was made keyless by this identity (identity or identity_regexp, and issuer or issuer_regexp); "
    "false turns a default off",
    "max_tags": f"the most tags one entry may expand to (default {DEFAULT_MAX_TAGS}, at most {MAX_TAGS_LIMIT})",
    "include": "glob patterns a tag must match, such as '1.27.*'",
    "include_regex": "regular expressions a whole tag must match",
    "exclude": "glob patterns of tags to leave out, such as '*-alpine'",
    "exclude_regex": "regular expressions of tags to leave out",
    "variant": "the flavour suffix of the versions to keep, such as 'alpine'",
    "semver": "a version range, such as '>=1.26 <1.28' or '^7.2'",
    "latest": "keep the N highest versions",
    "prereleases": "whether pre-releases (rc, beta, ...) count as versions (default false)",
}


@dataclass(frozen=True)
class Problem:
    """One broken rule: where (line, path) and why."""

    path: str
    line: int | None
    message: str
    #: lines of the file the message names: ``{0}``, ``{1}``... in it become ``FILE:LINE``
    see: tuple[int | None, ...] = ()
    #: the release that made this rule stricter (see the CHANGELOG), if it did: an allowlist
    #: stored before it may break the rule, and a run leaves the entry out instead of stopping
    since: str | None = None

    def format(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        message = self.message
        if self.see:
            message = message.format(*(f"{source}:{line}" if line else source for line in self.see))
        return f"{where}: {self.path}: {message}"


class AllowlistError(ValueError):
    """The allowlist breaks one or more rules; ``problems`` lists all of them.

    Examples
    --------
    >>> try:
    ...     parse_allowlist("images: []", source="a.yaml")
    ... except AllowlistError as exc:
    ...     print(exc)
    a.yaml:1: images: must not be empty; list at least one image
    """

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__("\n".join(p.format(source) for p in self.problems))

    def lines(self) -> list[str]:
        return [p.format(self.source) for p in self.problems]


@dataclass(frozen=True)
class ImageEntry:
    """One validated allowlist entry, with its defaults applied."""

    index: int
    line: int | None
    source: ImageReference
    tags: tuple[str, ...]
    target: str
    platforms: tuple[str, ...] | None
    build_commands: tuple[str, ...]
    selector: TagSelector | None = None
    pinned: tuple[tuple[str, str], ...] = ()
    #: copy the image's cosign signatures, attestations and SBOM with it
    signatures: bool = True
    #: the key a cosign signature over the upstream digest must verify with
    verify: tuple[str, str] | None = None
    #: the RUN lines of build_commands reach the network
    build_network: bool = False

    @property
    def name(self) -> str:
        """How messages name the entry: ``images[3] (nginx)``."""
        return f"images[{self.index}] ({self.source.familiar})"

    @property
    def name_at(self) -> str:
        """The entry, its full source and a ``{}`` for where it is: ``images[3] (docker.io/library/nginx, {})``."""
        return f"images[{self.index}] ({self.source.name}, {{}})"


@dataclass(frozen=True)
class Allowlist:
    """A validated allowlist, and the notes a reviewer should read (advice, not errors)."""

    entries: tuple[ImageEntry, ...]
    notes: tuple[Problem, ...] = ()
    #: entries left out because they break a rule a release made stricter (``stored=True`` only)
    left_out: tuple[Problem, ...] = ()


def parse_allowlist(text: str | bytes, *, source: str = "allowlist.yaml", stored: bool = False) -> Allowlist:
    """Parse and validate allowlist YAML text.

    Parameters
    ----------
    text
        The YAML document.
    source
        The file name used in messages.
    stored
        The allowlist a stack already runs with (the plan's reading). A rule made stricter
        by a later release must not stop such a mirror: when every problem is one of those
        and each belongs to an entry, those entries are left out (``left_out``) and the rest
        runs. Without it (``validate``, ``push``), every problem refuses the file.

    Raises
    ------
    AllowlistError
        With every problem of the document.

    Examples
    --------
    >>> allowlist = parse_allowlist('images:\\n  - source: nginx\\n    tags: ["1.27"]\\n')
    >>> entry = allowlist.entries[0]
    >>> str(entry.source), entry.tags, entry.target
    ('docker.io/library/nginx', ('1.27',), 'nginx')
    """
    size = len(text)
    if size > MAX_BYTES:
        raise AllowlistError(
            source, [Problem("(document)", None, f"the file is {size} bytes; the limit is {MAX_BYTES}")]
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AllowlistError(
                source, [Problem("(document)", None, f"the file is not UTF-8 text: {exc.reason}")]
            ) from exc
    document = yamldoc.load(text)
    problems = [Problem(format_path(p.path), p.line, p.message) for p in document.problems]
    checker = _Checker(document, problems)
    entries = checker.check_document()
    problems.sort(key=lambda p: (p.line or 0, p.path))
    if problems and stored and all(p.since for p in problems):
        refused = {_entry_index(p.path) for p in problems}
        kept = tuple(e for e in entries if e.index not in refused)
        if None not in refused and kept:
            return Allowlist(entries=kept, notes=tuple(checker.notes), left_out=tuple(problems))
    if problems:
        raise AllowlistError(source, problems)
    return Allowlist(entries=tuple(entries), notes=tuple(sorted(checker.notes, key=lambda p: (p.line or 0, p.path))))


@dataclass
class _Defaults:
    platforms: tuple[str, ...] | None = None
    target_prefix: str | None = None
    build_commands: tuple[str, ...] | None = None
    max_tags: int | None = None
    signatures: bool | None = None
    verify: tuple[str, str] | None = None
    build_network: bool | None = None


class _Checker:
    def __init__(self, document: yamldoc.Document, problems: list[Problem]) -> None:
        self.doc = document
        self.problems = problems
        self.notes: list[Problem] = []

    def fail(self, path: Path, message: str, *, see: tuple[int | None, ...] = (), since: str | None = None) -> None:
        self.problems.append(Problem(format_path(path), self.doc.line(path), message, see, since))

    # -- the document ------------------------------------------------------------------
    def check_document(self) -> list[ImageEntry]:
        value = self.doc.value
        if self.doc.problems and value is None:
            return []
        if not isinstance(value, Mapping):
            self.fail((), "the allowlist must be a mapping with an 'images' list")
            return []
        self._unknown_keys((), value, TOP_KEYS)
        defaults = self._defaults(value)
        images = value.get("images")
        if "images" not in value:
            self.fail((), "'images' is required: the list of allowed images")
            return []
        if not isinstance(images, list):
            self.fail(("images",), f"must be a list of images, not {_kind(images)}")
            return []
        if not images:
            self.fail(("images",), "must not be empty; list at least one image")
            return []
        if len(images) > MAX_ENTRIES:
            self.fail(("images",), f"has {len(images)} entries; the limit is {MAX_ENTRIES}")
            return []
        entries = [e for n, raw in enumerate(images) if (e := self._entry(n, raw, defaults)) is not None]
        shared = self._shared_repositories(entries)
        self._duplicates([e for e in entries if e.index not in shared])
        return entries

    def _defaults(self, value: Mapping[str, Any]) -> _Defaults:
        if "defaults" not in value:
            return _Defaults()
        raw = value["defaults"]
        path: Path = ("defaults",)
        if not isinstance(raw, Mapping):
            self.fail(path, f"must be a mapping of {', '.join(DEFAULT_KEYS)}, not {_kind(raw)}")
            return _Defaults()
        self._unknown_keys(path, raw, DEFAULT_KEYS)
        defaults = _Defaults(
            platforms=self._platforms(path, raw),
            target_prefix=self._target_prefix(path, raw),
            build_commands=self._build_commands(path, raw, allow_empty=False),
            max_tags=self._max_tags(path, raw),
            signatures=self._signatures(path, raw),
            verify=self._verify(path, raw),
            build_network=self._build_network(path, raw),
        )
        if not defaults.build_network:
            self._network_notes(path, defaults.build_commands or ())
        return defaults

    def _shown(self, path: Path, value: Any) -> str:
        """A value as a message quotes it: ``5000``, ``'three'``, ``true``, or its kind for lists and mappings."""
        if isinstance(value, str):
            return repr(value)
        if isinstance(value, bool | int | float):
            return self.doc.raw.get(path, str(value).lower() if isinstance(value, bool) else str(value))
        return _kind(value)

    def _unknown_keys(self, path: Path, mapping: Mapping[Any, Any], allowed: tuple[str, ...]) -> None:
        for key in mapping:
            if key not in allowed:
                hint = _closest(str(key), allowed)
                advice = f"did you mean {hint!r}?" if hint else f"allowed keys: {', '.join(allowed)}"
                self.fail((*path, self.doc.key(path, key)), f"unknown key {str(key)!r}; {advice}")

    # -- one entry ---------------------------------------------------------------------
    def _entry(self, n: int, raw: Any, defaults: _Defaults) -> ImageEntry | None:
        path: Path = ("images", n)
        if not isinstance(raw, Mapping):
            self.fail(path, f"each image must be a mapping with 'source' and 'tags', not {_kind(raw)}")
            return None
        before = len(self.problems)
        self._unknown_keys(path, raw, ENTRY_KEYS)
        source = self._source(path, raw)
        tags = self._tags(path, raw) if "tags" in raw else []
        max_tags = self._max_tags(path, raw) or defaults.max_tags or DEFAULT_MAX_TAGS
        selector = self._selector(path, raw, max_tags) if "select" in raw else None
        pinned = self._pinned(path, raw, tags or []) if "pinned" in raw else ()
        if not any(key in raw for key in ("tags", "select", "pinned")):
            self.fail(
                path,
                "say which tags to mirror: 'tags' (exact), 'select' (chosen at each run) or 'pinned' (at a digest)",
            )
        prefix = self._target_prefix(path, raw) if "target_prefix" in raw else defaults.target_prefix
        target = self._target(path, raw, source, prefix)
        platforms = self._platforms(path, raw) if "platforms" in raw else defaults.platforms
        if "build_commands" in raw:
            commands = self._build_commands(path, raw, allow_empty=defaults.build_commands is not None)
        else:
            commands = defaults.build_commands
        signatures = self._signatures(path, raw)
        verify = self._verify(path, raw) if "verify" in raw else defaults.verify
        network = self._build_network(path, raw) if "build_network" in raw else defaults.build_network
        if raw.get("build_network") is True and not commands:
            self.fail(
                (*path, "build_network"),
                "only build_commands use the network, and this entry has none: remove build_network",
            )
        if not network and "build_commands" in raw:
            self._network_notes(path, commands or ())
        if len(self.problems) > before or source is None or target is None or tags is None:
            return None
        return ImageEntry(
            index=n,
            line=self.doc.line(path),
            source=source,
            tags=tuple(tags),
            target=target,
            platforms=platforms,
            build_commands=commands or (),
            selector=selector,
            pinned=pinned,
            signatures=signatures if signatures is not None else defaults.signatures is not False,
            verify=verify,
            build_network=bool(network and commands),
        )

    def _string(self, path: Path, value: Any, what: str) -> str | None:
        if isinstance(value, str):
            return value
        if isinstance(value, bool) or value is None:
            self.fail(path, f"{what} must be a string, not {_kind(value)}")
        elif isinstance(value, int | float):
            raw = self.doc.raw.get(path, str(value))
            self.fail(path, f'{str(value)!r} came from the number {raw}; quote it: "{raw}"')
        else:
            self.fail(path, f"{what} must be a string, not {_kind(value)}")
        return None

    def _source(self, path: Path, raw: Mapping[str, Any]) -> ImageReference | None:
        if "source" not in raw:
            self.fail(path, f"'source' is required: {KEY_HELP['source']}")
            return None
        text = self._string((*path, "source"), raw["source"], "source")
        if text is None:
            return None
        meant = docker_hub_page_source(text)
        if meant is not None:
            self.fail(
                (*path, "source"),
                f"{text!r} is the address of a Docker Hub web page, not an image name; write source: {meant}",
                since="0.2.0",
            )
            return None
        try:
            ref = ImageReference.parse(text)
        except InvalidReferenceError as exc:
            self.fail((*path, "source"), f"{text!r} is not a valid image name: {exc}")
            return None
        if ref.registry in DOCKER_HUB_WEB_HOSTS:
            self.fail(
                (*path, "source"),
                f"{text!r} names Docker Hub's web site, not a registry; "
                "write the image as 'docker pull' takes it, such as 'bitnami/redis' or 'nginx'",
                since="0.2.0",
            )
            return None
        if ref.tag or ref.digest:
            self.fail(
                (*path, "source"),
                f"{text!r} carries a tag or digest; write the image name alone and list tags under 'tags' or 'pinned'",
            )
            return None
        return ref

    def _list(
        self, path: Path, raw: Mapping[str, Any], key: str, limit: int, *, allow_empty: bool = False
    ) -> list[Any] | None:
        value = raw[key]
        if not isinstance(value, list):
            self.fail((*path, key), f"must be a list, not {_kind(value)}")
            return None
        if not value and not allow_empty:
            self.fail((*path, key), "must not be empty; leave the key out instead")
            return None
        if len(value) > limit:
            self.fail((*path, key), f"has {len(value)} items; the limit is {limit}")
            return None
        return value

    def _tag(self, path: Path, value: Any) -> str | None:
        tag = self._string(path, value, "a tag")
        if tag is not None and not TAG_RE.match(tag):
            self.fail(path, f"{tag!r} is not a valid tag: {TAG_RULE}")
            return None
        return tag

    def _tags(self, path: Path, raw: Mapping[str, Any]) -> list[str] | None:
        values = self._list(path, raw, "tags", MAX_TAGS_PER_ENTRY)
        if values is None:
            return None
        tags: list[str] = []
        for n, value in enumerate(values):
            tag = self._tag((*path, "tags", n), value)
            if tag is None:
                continue
            if tag in tags:
                self.fail((*path, "tags", n), f"tag {tag!r} is listed twice")
            else:
                tags.append(tag)
        return tags

    def _pinned(self, path: Path, raw: Mapping[str, Any], tags: list[str]) -> tuple[tuple[str, str], ...]:
        here = (*path, "pinned")
        value = raw["pinned"]
        if not isinstance(value, Mapping) or not value:
            self.fail(
                here,
                f'must be a non-empty mapping of tag to digest, such as {{"1.27": "sha256:..."}}, not {_kind(value)}',
            )
            return ()
        pins: list[tuple[str, str]] = []
        for key, digest in value.items():
            written = self.doc.key(here, key)
            key_path = (*here, written)
            if not isinstance(key, str):
                self.fail(key_path, f'the tag {written} came from a number; quote it: "{written}"')
                continue
            if not TAG_RE.match(key):
                self.fail(key_path, f"{key!r} is not a valid tag: {TAG_RULE}")
                continue
            if key in tags:
                self.fail(key_path, f"tag {key!r} is both in 'tags' and 'pinned'; a tag is either followed or pinned")
                continue
            if not isinstance(digest, str) or not DIGEST_RE.match(digest):
                self.fail(key_path, "a pin is 'sha256:' followed by 64 lower-case hex digits")
                continue
            pins.append((key, digest))
        return tuple(pins)

    def _selector(self, path: Path, raw: Mapping[str, Any], max_tags: int) -> TagSelector | None:
        here = (*path, "select")
        value = raw["select"]
        if isinstance(value, Mapping) and not value:
            self.fail(here, f"must not be empty; give it some of {', '.join(SELECT_KEYS)}, such as {SELECT_EXAMPLE}")
            return None
        if not isinstance(value, Mapping):
            self.fail(
                here,
                f"must be a mapping with some of {', '.join(SELECT_KEYS)}, such as {SELECT_EXAMPLE}; "
                f"not {self._shown(here, value)}",
            )
            return None
        before = len(self.problems)
        self._unknown_keys(here, value, SELECT_KEYS)
        globs = {k: self._patterns(here, value, k, regex=False) for k in ("include", "exclude")}
        regexes = {k: self._patterns(here, value, k, regex=True) for k in ("include_regex", "exclude_regex")}
        variant = None
        if "variant" in value:
            variant = self._string((*here, "variant"), value["variant"], "variant")
            if variant is not None and not re.match(VARIANT_PATTERN, variant):
                self.fail((*here, "variant"), f"{variant!r} is not a tag suffix such as 'alpine' or 'bookworm'")
        semver = None
        if "semver" in value:
            semver = self._string((*here, "semver"), value["semver"], "semver")
            if semver is not None:
                try:
                    VersionRange.parse(semver)
                except RangeError as exc:
                    self.fail((*here, "semver"), f"{semver!r} is not a version range: {exc}")
        latest = None
        if "latest" in value:
            latest = value["latest"]
            if not isinstance(latest, int) or isinstance(latest, bool) or not 1 <= latest <= MAX_TAGS_LIMIT:
                self.fail(
                    (*here, "latest"),
                    f"must be a whole number from 1 to {MAX_TAGS_LIMIT}, not {self._shown((*here, 'latest'), latest)}",
                )
        prereleases = value.get("prereleases", False)
        if not isinstance(prereleases, bool):
            shown = self._shown((*here, "prereleases"), prereleases)
            self.fail((*here, "prereleases"), f"must be true or false, not {shown}")
        if len(self.problems) > before:
            return None
        return TagSelector(
            include=globs["include"],
            include_regex=regexes["include_regex"],
            exclude=globs["exclude"],
            exclude_regex=regexes["exclude_regex"],
            variant=variant,
            semver=semver,
            latest=latest,
            prereleases=bool(prereleases),
            max_tags=max_tags,
        )

    def _patterns(self, path: Path, raw: Mapping[str, Any], key: str, *, regex: bool) -> tuple[str, ...]:
        if key not in raw:
            return ()
        values = self._list(path, raw, key, MAX_PATTERNS)
        if values is None:
            return ()
        patterns: list[str] = []
        for n, value in enumerate(values):
            item_path = (*path, key, n)
            text = self._string(item_path, value, "a pattern")
            if text is None:
                continue
            if not text or len(text) > MAX_PATTERN_LENGTH:
                self.fail(item_path, f"a pattern is 1 to {MAX_PATTERN_LENGTH} characters")
                continue
            if regex:
                try:
                    re.compile(text)
                except re.error as exc:
                    self.fail(item_path, f"{text!r} is not a valid regular expression: {exc}")
                    continue
            patterns.append(text)
        return tuple(patterns)

    def _max_tags(self, path: Path, raw: Mapping[str, Any]) -> int | None:
        if "max_tags" not in raw:
            return None
        value = raw["max_tags"]
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_TAGS_LIMIT:
            shown = self._shown((*path, "max_tags"), value)
            self.fail((*path, "max_tags"), f"must be a whole number from 1 to {MAX_TAGS_LIMIT}, not {shown}")
            return None
        return value

    def _signatures(self, path: Path, raw: Mapping[str, Any]) -> bool | None:
        if "signatures" not in raw:
            return None
        value = raw["signatures"]
        if value not in SIGNATURE_MODES:
            shown = repr(value) if isinstance(value, str) else _kind(value)
            self.fail((*path, "signatures"), f"must be {' or '.join(SIGNATURE_MODES)}, not {shown}")
            return None
        return bool(value == "copy")

    def _verify(self, path: Path, raw: Mapping[str, Any]) -> tuple[str, str] | None:
        """The key source of ``verify``; None when absent, false or broken (broken is a problem)."""
        if "verify" not in raw or raw["verify"] is False:
            return None
        here = (*path, "verify")
        value = raw["verify"]
        if not isinstance(value, Mapping):
            self.fail(
                here,
                f"must be a mapping with one of {', '.join(KEY_SOURCES)} naming the cosign public key, "
                f"such as {{secret: hubmirror/cosign}}, or false to turn a default off; not {self._shown(here, value)}",
            )
            return None
        if any(k in KEYLESS_KEYS for k in value):
            return self._keyless(here, value)
        if len(value) != 1:
            named = ", ".join(str(k) for k in value) or "none"
            self.fail(
                here,
                f"names one key, by one of {', '.join(KEY_SOURCES)}, or a keyless signer by identity and "
                f"issuer; it names {named}",
            )
            return None
        ((source, text),) = value.items()
        if source not in KEY_SOURCES:
            self._unknown_keys(here, value, KEY_SOURCES)
            return None
        key_path = (*here, source)
        text = self._string(key_path, text, source)
        if text is None:
            return None
        if source == "key":
            try:
                PublicKey.from_pem(text, name="the key")
            except UnusableKeyError as exc:
                self.fail(key_path, str(exc))
                return None
            return (source, text.strip() + "\n")
        if not re.match(VERIFY_PATTERNS[source], text):
            self.fail(key_path, f"{text!r} is not {VERIFY_RULES[source]}")
            return None
        return (source, text)

    def _keyless(self, here: Path, value: Mapping[str, Any]) -> tuple[str, str] | None:
        """A keyless policy: ``("keyless", its canonical JSON)``; None when broken (a problem)."""
        if set(value) - set(KEYLESS_KEYS):
            self._unknown_keys(here, value, KEYLESS_KEYS)
            return None
        policy: dict[str, str] = {}
        for key in KEYLESS_KEYS:
            if key not in value:
                continue
            text = self._string((*here, key), value[key], key)
            if text is None:
                return None
            if not text.strip() or len(text) > KEYLESS_MAX:
                self.fail((*here, key), f"must be {KEYLESS_RULES[key]}, at most {KEYLESS_MAX} characters")
                return None
            if key in KEYLESS_PATTERNS and not re.match(KEYLESS_PATTERNS[key], text):
                self.fail((*here, key), f"{text!r} is not {KEYLESS_RULES[key]}")
                return None
            if key.endswith("_regexp"):
                try:
                    re.compile(text)
                except re.error as exc:
                    self.fail((*here, key), f"{text!r} is not a regular expression: {exc}")
                    return None
            policy[key] = text
        for pair in (("identity", "identity_regexp"), ("issuer", "issuer_regexp")):
            named = [k for k in pair if k in policy]
            if len(named) != 1:
                said = "names both" if named else "names neither"
                self.fail(
                    here,
                    f"a keyless signer needs exactly one of {pair[0]} ({KEYLESS_RULES[pair[0]]}) or {pair[1]}; "
                    f"it {said}",
                )
                return None
        return ("keyless", json.dumps(policy, sort_keys=True, separators=(",", ":")))

    def _target_prefix(self, path: Path, raw: Mapping[str, Any]) -> str | None:
        if "target_prefix" not in raw:
            return None
        prefix = self._string((*path, "target_prefix"), raw["target_prefix"], "target_prefix")
        if prefix is not None and not ECR_REPOSITORY_RE.match(prefix):
            self.fail((*path, "target_prefix"), f"{prefix!r} is not a valid ECR repository path: {_ECR_RULE}")
            return None
        return prefix

    def _target(
        self, path: Path, raw: Mapping[str, Any], source: ImageReference | None, prefix: str | None
    ) -> str | None:
        if "target" in raw:
            name = self._string((*path, "target"), raw["target"], "target")
            if name is None:
                return None
        elif source is not None:
            name = source.repository.removeprefix("library/") if source.registry == DOCKER_HUB else source.repository
        else:
            return None
        target = f"{prefix}/{name}" if prefix else name
        if not ECR_REPOSITORY_RE.match(name):
            self.fail((*path, "target"), f"{name!r} is not a valid ECR repository name: {_ECR_RULE}")
            return None
        if len(target) > TARGET_MAX:
            self.fail(
                (*path, "target"), f"{target!r} is too long; at most {TARGET_MAX} characters leave room for the prefix"
            )
            return None
        return target

    def _platforms(self, path: Path, raw: Mapping[str, Any]) -> tuple[str, ...] | None:
        if "platforms" not in raw:
            return None
        values = self._list(path, raw, "platforms", MAX_PLATFORMS)
        if values is None:
            return None
        platforms: list[str] = []
        for n, value in enumerate(values):
            item_path = (*path, "platforms", n)
            text = self._string(item_path, value, "a platform")
            if text is None:
                continue
            if text not in KNOWN_PLATFORMS:
                hint = platform_suggestion(text) or _closest(text, sorted(KNOWN_PLATFORMS))
                suffix = f"; did you mean {hint!r}?" if hint else ""
                self.fail(item_path, f"{text!r} is not a known platform (os/arch[/variant]){suffix}")
                continue
            normal = normalise_platform(text)
            if normal in platforms:
                self.fail(item_path, f"platform {text!r} is listed twice")
                continue
            platforms.append(normal)
        return tuple(platforms)

    def _build_commands(self, path: Path, raw: Mapping[str, Any], *, allow_empty: bool) -> tuple[str, ...] | None:
        if "build_commands" not in raw:
            return None
        values = self._list(path, raw, "build_commands", MAX_BUILD_COMMANDS, allow_empty=allow_empty)
        if values is None:
            return None
        commands: list[str] = []
        for n, value in enumerate(values):
            item_path = (*path, "build_commands", n)
            text = self._string(item_path, value, "a build command")
            if text is None:
                continue
            problem = build_command_problem(text)
            if problem:
                self.fail(item_path, problem, since=name_value_since(text))
            else:
                commands.append(text.strip())
        return tuple(commands)

    def _build_network(self, path: Path, raw: Mapping[str, Any]) -> bool | None:
        if "build_network" not in raw:
            return None
        value = raw["build_network"]
        if not isinstance(value, bool):
            here = (*path, "build_network")
            self.fail(here, f"must be true or false, not {self._shown(here, value)}")
            return None
        return value

    def _network_notes(self, path: Path, commands: tuple[str, ...]) -> None:
        """Note the lines that look as if they need the network, in a list that has none."""
        for n, line in enumerate(commands):
            tool = network_tool(line)
            if tool:
                item_path = (*path, "build_commands", n)
                self.notes.append(
                    Problem(
                        format_path(item_path),
                        self.doc.line(item_path),
                        f"note: {tool!r} usually needs the network, and build lines run without one; "
                        "if this line does, set build_network: true on the entry",
                    )
                )

    def _shared_repositories(self, entries: list[ImageEntry]) -> set[int]:
        """Refuse two different sources writing one target repository; the indexes of the refused entries.

        Both would push to the same repository and overwrite each other's tags at every run.
        ``entry.target`` is the one name the expansion puts the stack's prefix before
        (:func:`hubmirror.domain.items.target_repository`), so equal targets are equal
        repositories and different ones differ.
        """
        owners: dict[str, ImageEntry] = {}
        refused: set[int] = set()
        for entry in entries:
            owner = owners.setdefault(entry.target, entry)
            if owner.source.name == entry.source.name:
                continue
            refused.add(entry.index)
            path = _entry_path(entry)
            field = "target" if (*path, "target") in self.doc.lines else "source"
            self.fail(
                (*path, field),
                f"{entry.name_at} and {owner.name_at} both write the target repository {entry.target}; "
                "two different sources must not share a repository, or each run overwrites the other's tags; "
                "give one of them another target:",
                see=(entry.line, owner.line),
                since="0.2.0",
            )
        return refused

    def _duplicates(self, entries: list[ImageEntry]) -> None:
        seen: dict[tuple[str, str], int] = {}
        for entry in entries:
            named = [((*_entry_path(entry), "tags", n), tag) for n, tag in enumerate(entry.tags)]
            named += [((*_entry_path(entry), "pinned", tag), tag) for tag, _ in entry.pinned]
            for path, tag in named:
                key = (entry.target, tag)
                if key in seen:
                    self.fail(
                        path,
                        f"target {entry.target}:{tag} is already produced by images[{seen[key]}]; "
                        "two entries may not write the same repository and tag",
                    )
                else:
                    seen[key] = entry.index


def _entry_path(entry: ImageEntry) -> Path:
    return ("images", entry.index)


def _entry_index(path: str) -> int | None:
    """The entry a problem's path is in: ``images[3].tags[0]`` -> 3; None outside ``images``."""
    found = re.match(r"images\[(\d+)\]", path)
    return int(found.group(1)) if found else None


_ECR_RULE = "lower-case letters and digits, separated by '.', '_' or '-', in '/'-separated parts"


def _kind(value: Any) -> str:
    """What kind of value a message names: ``a number``, ``a mapping``..."""
    if value is None:
        return "nothing (null)"
    names = {bool: "true/false", int: "a number", float: "a number", str: "a string", list: "a list", dict: "a mapping"}
    return names.get(type(value), type(value).__name__)


def _closest(word: str, options: tuple[str, ...] | list[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return matches[0] if matches else None

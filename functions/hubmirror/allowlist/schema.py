"""The allowlist's JSON Schema, made from the same constants the validator enforces.

Editors (yaml-language-server, via the ``# yaml-language-server: $schema=...`` line at the
top of ``allowlist.yaml``) validate and complete the file with it. The schema covers the
shape (keys, types, limits, enumerations, patterns); the validator adds what a schema
cannot say well: the image reference grammar, numbers that should have been quoted,
duplicate targets, two sources sharing a target repository, and the rules of each build line.

``python -m hubmirror.allowlist.schema`` prints it; a test keeps the published file in step.
"""

from __future__ import annotations

import json
from typing import Any

from hubmirror.allowlist import rules
from hubmirror.domain import dockerfile, references
from hubmirror.domain.oci import KNOWN_PLATFORMS
from hubmirror.domain.references import DIGEST_RE, TAG_RE
from hubmirror.domain.selectors import MAX_TAGS_LIMIT

#: A name without tag or digest (the validator applies the full reference grammar).
SOURCE_PATTERN = r"^[^:@\s]+(?::[0-9]+)?(?:/[^:@\s]+)*$"
#: A Docker Hub web page's address, which is not an image name (``hub.docker.com/r/bitnami/redis``).
DOCKER_HUB_WEB_PATTERN = r"^(?:www\.)?hub\.docker\.com/"


def _any_case(word: str) -> str:
    """``RUN`` -> ``[Rr][Uu][Nn]``: JSON Schema patterns (ECMA-262) have no inline flags."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


def _described(key: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": rules.KEY_HELP[key], **schema}


def _string_list(key: str, item: dict[str, Any], limit: int) -> dict[str, Any]:
    return _described(key, {"type": "array", "items": item, "minItems": 1, "maxItems": limit, "uniqueItems": True})


def allowlist_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``allowlist.yaml``."""
    tag = {"type": "string", "pattern": TAG_RE.pattern, "maxLength": 128}
    platforms = _string_list("platforms", {"enum": sorted(KNOWN_PLATFORMS)}, rules.MAX_PLATFORMS)
    instruction = "|".join(_any_case(word) for word in dockerfile.ALLOWED_INSTRUCTIONS)
    build_commands = _described(
        "build_commands",
        {
            "type": "array",
            "maxItems": rules.MAX_BUILD_COMMANDS,
            "items": {
                "type": "string",
                "maxLength": dockerfile.MAX_BUILD_COMMAND_LENGTH,
                "pattern": rf"^\s*(?:{instruction})\s+[^\n\r\x00]*$",
            },
        },
    )
    repository = {"type": "string", "pattern": references.ECR_REPOSITORY_PATTERN, "maxLength": rules.TARGET_MAX}
    max_tags = _described("max_tags", {"type": "integer", "minimum": 1, "maximum": MAX_TAGS_LIMIT})
    pattern = {"type": "string", "minLength": 1, "maxLength": rules.MAX_PATTERN_LENGTH}
    select = _described(
        "select",
        {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {
                "include": _string_list("include", pattern, rules.MAX_PATTERNS),
                "include_regex": _string_list("include_regex", pattern, rules.MAX_PATTERNS),
                "exclude": _string_list("exclude", pattern, rules.MAX_PATTERNS),
                "exclude_regex": _string_list("exclude_regex", pattern, rules.MAX_PATTERNS),
                "variant": _described("variant", {"type": "string", "pattern": rules.VARIANT_PATTERN}),
                "semver": _described("semver", {"type": "string", "minLength": 1}),
                "latest": _described("latest", {"type": "integer", "minimum": 1, "maximum": MAX_TAGS_LIMIT}),
                "prereleases": _described("prereleases", {"type": "boolean"}),
            },
        },
    )
    entry_properties = {
        "source": _described(
            "source",
            {
                "type": "string",
                "minLength": 1,
                "maxLength": 255,
                "pattern": r"^[^:@\s]+(?::[0-9]+)?(?:/[^:@\s]+)*$",
                "not": {"pattern": DOCKER_HUB_WEB_PATTERN},
            },
        ),
        "tags": _string_list("tags", tag, rules.MAX_TAGS_PER_ENTRY),
        "select": select,
        "pinned": _described(
            "pinned",
            {
                "type": "object",
                "minProperties": 1,
                "propertyNames": tag,
                "additionalProperties": {"type": "string", "pattern": DIGEST_RE.pattern},
            },
        ),
        "target": _described("target", repository),
        "target_prefix": _described("target_prefix", repository),
        "platforms": platforms,
        "build_commands": build_commands,
        "build_network": _described("build_network", {"type": "boolean"}),
        "max_tags": max_tags,
        "signatures": _described("signatures", {"enum": list(rules.SIGNATURE_MODES)}),
        "verify": _described(
            "verify",
            {
                "oneOf": [
                    {"const": False},
                    *(
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "required": [source],
                            "properties": {
                                source: {
                                    "type": "string",
                                    "pattern": rules.VERIFY_PATTERNS[source],
                                    "description": rules.VERIFY_RULES[source],
                                }
                            },
                        }
                        for source in rules.VERIFY_RULES
                    ),
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            key: {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": rules.KEYLESS_MAX,
                                **({"pattern": rules.KEYLESS_PATTERNS[key]} if key in rules.KEYLESS_PATTERNS else {}),
                                "description": rule,
                            }
                            for key, rule in rules.KEYLESS_RULES.items()
                        },
                        "allOf": [
                            {"oneOf": [{"required": [exact]}, {"required": [pattern]}]}
                            for exact, pattern in (("identity", "identity_regexp"), ("issuer", "issuer_regexp"))
                        ],
                    },
                ]
            },
        ),
    }
    assert tuple(entry_properties) == rules.ENTRY_KEYS
    defaults_properties = {key: entry_properties[key] for key in rules.DEFAULT_KEYS}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "hubmirror allowlist",
        "description": "The images hubmirror mirrors into the target registry; nothing else enters it.",
        "type": "object",
        "additionalProperties": False,
        "required": ["images"],
        "properties": {
            "defaults": _described(
                "defaults", {"type": "object", "additionalProperties": False, "properties": defaults_properties}
            ),
            "images": _described(
                "images",
                {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": rules.MAX_ENTRIES,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["source"],
                        "anyOf": [{"required": ["tags"]}, {"required": ["select"]}, {"required": ["pinned"]}],
                        "properties": entry_properties,
                    },
                },
            ),
        },
    }


def render() -> str:
    """The schema as the published file holds it."""
    return json.dumps(allowlist_schema(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")

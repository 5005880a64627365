"""The allowlist: what it accepts, and how it refuses the rest (line, path, rule)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubmirror.allowlist.expansion import expand
from hubmirror.allowlist.rules import AllowlistError, build_command_problem, parse_allowlist

ROOT = Path(__file__).resolve().parents[2]


def problems(text: str) -> list[str]:
    with pytest.raises(AllowlistError) as raised:
        parse_allowlist(text, source="a.yaml")
    return raised.value.lines()


def test_the_shipped_allowlist_is_valid() -> None:
    allowlist = parse_allowlist((ROOT / "allowlist.yaml").read_bytes())
    vault = next(e for e in allowlist.entries if e.target == "vault")
    assert str(vault.source) == "docker.io/hashicorp/vault"
    assert vault.platforms == ("linux/amd64", "linux/arm64")
    assert vault.build_commands[-1] == 'VOLUME ["/etc/vault"]'


def test_default_target_is_the_source_path() -> None:
    allowlist = parse_allowlist(
        'images:\n  - source: nginx\n    tags: ["1"]\n  - source: ghcr.io/org/app\n    tags: ["2"]\n'
    )
    assert [e.target for e in allowlist.entries] == ["nginx", "org/app"]


def test_a_number_tag_is_refused_with_the_text_to_quote() -> None:
    assert problems("images:\n  - source: nginx\n    tags: [1.10]\n") == [
        "a.yaml:3: images[0].tags[0]: '1.1' came from the number 1.10; quote it: \"1.10\""
    ]


def test_every_problem_of_a_file_is_reported_in_one_pass() -> None:
    found = problems(
        "images:\n"
        "  - source: Nginx\n"
        "    tags: []\n"
        "  - source: redis\n"
        "    tags: ['7']\n"
        "    platforms: [linux/amd46]\n"
        "    colour: blue\n"
    )
    assert found == [
        "a.yaml:2: images[0].source: 'Nginx' is not a valid image name: repository names must be lower case",
        "a.yaml:3: images[0].tags: must not be empty; leave the key out instead",
        "a.yaml:6: images[1].platforms[0]: 'linux/amd46' is not a known platform (os/arch[/variant]); did you mean 'linux/amd64'?",
        "a.yaml:7: images[1].colour: unknown key 'colour'; "
        "allowed keys: source, tags, select, pinned, target, target_prefix, platforms, build_commands, build_network, "
        "max_tags, signatures, verify",
    ]


def test_duplicate_keys_and_duplicate_targets_are_errors() -> None:
    assert problems("images:\n  - source: nginx\n    source: redis\n    tags: ['1']\n") == [
        "a.yaml:3: images[0].source: duplicate key 'source': a key may appear once"
    ]
    found = problems(
        "images:\n  - source: nginx\n    tags: ['1']\n  - source: docker.io/library/nginx\n    tags: ['1']\n"
    )
    assert found == [
        "a.yaml:5: images[1].tags[0]: target nginx:1 is already produced by images[0]; "
        "two entries may not write the same repository and tag"
    ]
    found = problems(
        "images:\n  - source: nginx\n    tags: ['1']\n  - source: ghcr.io/x/nginx\n    target: nginx\n    tags: ['1']\n"
    )
    assert found == [
        "a.yaml:5: images[1].target: images[1] (ghcr.io/x/nginx, a.yaml:4) and images[0] (docker.io/library/nginx, "
        "a.yaml:2) both write the target repository nginx; two different sources must not share a repository, "
        "or each run overwrites the other's tags; give one of them another target:"
    ]


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ("FROM alpine", "FROM is not allowed"),
        ("COPY . /", "COPY is not allowed"),
        ("add https://x/y /y", "ADD is not allowed"),
        ("ONBUILD RUN rm -rf /", "ONBUILD is not allowed"),
        ("RUN true\nRUN false", "one line"),
        ("RUN true\rFROM x", "one line"),
        ("RUN a\x00b", "NUL"),
        ("RUN echo \\", "line continuation"),
        ("# comment", "comment"),
        ("RUN", "needs arguments"),
        ("EXEC foo", "not an allowed instruction"),
        ("RUN <<EOF", "heredocs"),
        ("RUN " + "x" * 5000, "at most"),
    ],
)
def test_build_commands_are_checked_line_by_line(line: str, rule: str) -> None:
    problem = build_command_problem(line)
    assert problem is not None
    assert rule in problem


@pytest.mark.parametrize(
    "line", ["RUN mkdir /etc/vault", 'VOLUME ["/etc/vault"]', "ENV A=1 B=2", "USER 1000:1000", "run apk add curl"]
)
def test_ordinary_build_commands_are_accepted(line: str) -> None:
    assert build_command_problem(line) is None


def test_yaml_alias_expansion_is_refused_without_exhausting_memory() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for n in range(1, 9):
        bomb += f"{chr(97 + n)}: &{chr(97 + n)} [" + ", ".join([f"*{chr(96 + n)}"] * 10) + "]\n"
    found = problems(bomb)
    assert any("expands to more than" in line for line in found)


def test_invalid_yaml_names_the_line() -> None:
    assert problems('images:\n  - source: nginx\n    tags: ["1"\n')[0].startswith(
        "a.yaml:4: (document): not valid YAML"
    )


def test_a_realistic_forty_entry_allowlist_is_accepted() -> None:
    allowlist = parse_allowlist((ROOT / "tests/unit/data/allowlist-40.yaml").read_bytes())
    assert len(allowlist.entries) == 40
    base = allowlist.entries[-1]
    assert base.target == "internal/platform/base"
    assert str(base.source) == "registry.example.com:8443/platform/base"
    minio = next(e for e in allowlist.entries if e.target == "minio")
    assert minio.pinned == (("RELEASE.2024-08-29T01-40-52Z", "sha256:" + "0" * 64),)
    redis = next(e for e in allowlist.entries if e.target == "redis")
    assert redis.selector is not None
    assert (redis.selector.semver, redis.selector.latest, redis.selector.max_tags) == (">=7.2 <8", 3, 20)


def test_entries_inherit_defaults_and_may_override_them() -> None:
    allowlist = parse_allowlist(
        "defaults:\n"
        "  platforms: [linux/amd64, linux/arm64]\n"
        "  target_prefix: hub\n"
        "  build_commands: ['LABEL org.example.mirrored=true']\n"
        "images:\n"
        "  - source: nginx\n"
        "    tags: ['1']\n"
        "  - source: redis\n"
        "    tags: ['7']\n"
        "    platforms: [linux/amd64]\n"
        "    target_prefix: cache\n"
        "    build_commands: []\n"
    )
    nginx, redis = allowlist.entries
    assert (nginx.target, nginx.platforms, nginx.build_commands) == (
        "hub/nginx",
        ("linux/amd64", "linux/arm64"),
        ("LABEL org.example.mirrored=true",),
    )
    assert (redis.target, redis.platforms, redis.build_commands) == ("cache/redis", ("linux/amd64",), ())


def test_only_an_entry_with_build_lines_that_asks_gets_the_network() -> None:
    allowlist = parse_allowlist(
        "defaults:\n"
        "  build_network: true\n"
        "images:\n"
        "  - {source: nginx, tags: ['1'], build_commands: ['RUN apk add curl']}\n"
        "  - {source: redis, tags: ['7']}\n"
        "  - {source: vault, tags: ['1.14'], build_commands: ['RUN mkdir /x'], build_network: false}\n"
        "  - {source: alpine, tags: ['3.20'], build_commands: ['RUN apk add jq'], build_network: true}\n"
    )
    assert [(e.target, e.build_network) for e in allowlist.entries] == [
        ("nginx", True),
        ("redis", False),  # no lines: nothing would use the network
        ("vault", False),
        ("alpine", True),
    ]
    items = expand(allowlist, prefix="mirror").items
    assert [(i.target_repository, i.build_network) for i in items] == [
        ("mirror/nginx", True),
        ("mirror/redis", False),
        ("mirror/vault", False),
        ("mirror/alpine", True),
    ]
    assert (
        not parse_allowlist("images:\n  - {source: nginx, tags: ['1'], build_commands: ['RUN id']}\n")
        .entries[0]
        .build_network
    )


def test_lines_that_look_like_they_need_the_network_get_notes_where_it_is_off() -> None:
    allowlist = parse_allowlist(
        "defaults:\n"
        "  build_commands: ['RUN pip install awscli']\n"
        "images:\n"
        "  - {source: nginx, tags: ['1']}\n"
        "  - {source: redis, tags: ['7'], build_commands: ['RUN mkdir /data', 'RUN curl -fsSLo /x https://x.example']}\n"
        "  - {source: vault, tags: ['1.14'], build_commands: ['RUN apk add jq'], build_network: true}\n"
    )
    assert [n.format("a.yaml") for n in allowlist.notes] == [
        "a.yaml:2: defaults.build_commands[0]: note: 'pip install' usually needs the network, and build lines run "
        "without one; if this line does, set build_network: true on the entry",
        "a.yaml:5: images[1].build_commands[1]: note: 'curl' usually needs the network, and build lines run "
        "without one; if this line does, set build_network: true on the entry",
    ]


def test_signatures_are_copied_unless_an_entry_or_the_defaults_skip_them() -> None:
    allowlist = parse_allowlist(
        "defaults:\n  signatures: skip\nimages:\n"
        '  - source: nginx\n    tags: ["1"]\n'
        '  - source: redis\n    tags: ["7"]\n    signatures: copy\n'
    )
    assert [(e.target, e.signatures) for e in allowlist.entries] == [("nginx", False), ("redis", True)]
    assert parse_allowlist('images:\n  - source: nginx\n    tags: ["1"]\n').entries[0].signatures is True


def test_a_signatures_value_other_than_copy_or_skip_is_refused_naming_the_entry() -> None:
    assert problems('images:\n  - source: nginx\n    tags: ["1"]\n    signatures: verify\n') == [
        "a.yaml:4: images[0].signatures: must be copy or skip, not 'verify'"
    ]
    assert problems('defaults:\n  signatures: true\nimages:\n  - source: nginx\n    tags: ["1"]\n') == [
        "a.yaml:2: defaults.signatures: must be copy or skip, not true/false"
    ]


# -- the checker catches what people get wrong, and says what to do ----------------------------
def test_two_sources_writing_one_repository_are_refused_naming_both_entries() -> None:
    found = problems(
        "images:\n"
        "  - source: ghcr.io/acme/app\n"
        "    tags: ['1.0']\n"
        "  - source: acme/app\n"
        "    select: {semver: '>=1.0', latest: 3}\n"
        "    target: acme/app\n"
    )
    assert found == [
        "a.yaml:6: images[1].target: images[1] (docker.io/acme/app, a.yaml:4) and images[0] (ghcr.io/acme/app, "
        "a.yaml:2) both write the target repository acme/app; two different sources must not share a repository, "
        "or each run overwrites the other's tags; give one of them another target:"
    ]


def test_a_derived_target_collides_too_after_the_prefix_and_normalising() -> None:
    found = problems(
        "defaults:\n"
        "  target_prefix: hub\n"
        "images:\n"
        "  - source: nginx\n"
        "    tags: ['1']\n"
        "  - source: registry.example.com/nginx\n"
        "    tags: ['2']\n"
    )
    assert found == [
        "a.yaml:6: images[1].source: images[1] (registry.example.com/nginx, a.yaml:6) and images[0] "
        "(docker.io/library/nginx, a.yaml:4) both write the target repository hub/nginx; two different sources "
        "must not share a repository, or each run overwrites the other's tags; give one of them another target:"
    ]


def test_one_source_in_several_entries_may_share_its_repository() -> None:
    allowlist = parse_allowlist(
        "images:\n"
        "  - source: nginx\n"
        "    tags: ['1.27']\n"
        "  - source: docker.io/library/nginx\n"
        "    tags: ['1.26']\n"
        "    build_commands: ['RUN id']\n"
        "  - source: ghcr.io/acme/nginx\n"
        "    target: acme-nginx\n"
        "    tags: ['1.27']\n"
    )
    assert [e.target for e in allowlist.entries] == ["nginx", "nginx", "acme-nginx"]


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("hub.docker.com/r/bitnami/redis", "bitnami/redis"),
        ("hub.docker.com/_/nginx", "nginx"),
        ("https://hub.docker.com/r/bitnami/redis/tags", "bitnami/redis"),
        ("https://hub.docker.com/_/nginx", "nginx"),
    ],
)
def test_a_docker_hub_web_address_is_refused_with_the_source_to_write(written: str, meant: str) -> None:
    assert problems(f"images:\n  - source: {written}\n    tags: ['1']\n") == [
        f"a.yaml:2: images[0].source: {written!r} is the address of a Docker Hub web page, "
        f"not an image name; write source: {meant}"
    ]


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ("ENV FOO", "ENV needs a value: write ENV FOO=value"),
        ("env FOO", "ENV needs a value: write ENV FOO=value"),
        ("ENV A=1 B", "ENV takes KEY=VALUE pairs; 'B' has no '='"),
        ("ENV =1", "ENV needs a name before '='"),
        ("LABEL team", "LABEL needs a value: write LABEL team=value"),
        ('ENV A="unterminated', "has an unclosed quote"),
    ],
)
def test_dockerfile_lines_that_cannot_build_are_refused(line: str, rule: str) -> None:
    assert build_command_problem(line) == rule or rule in (build_command_problem(line) or "")


@pytest.mark.parametrize(
    "line", ["ENV A 1", "ENV A=1", 'ENV A="hello world" B=2', "ENV A=", 'LABEL a=b c="d e"', "ARG VERSION"]
)
def test_dockerfile_env_and_label_forms_that_build_are_accepted(line: str) -> None:
    assert build_command_problem(line) is None


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("linux/x86_64", "linux/amd64"),
        ("linux/aarch64", "linux/arm64"),
        ("x86_64", "linux/amd64"),
        ("amd64", "linux/amd64"),
        ("arm64/v8", "linux/arm64"),
        ("linux/armhf", "linux/arm/v7"),
    ],
)
def test_common_platform_spellings_suggest_the_index_name(written: str, meant: str) -> None:
    assert problems(f"images:\n  - source: nginx\n    tags: ['1']\n    platforms: [{written}]\n") == [
        f"a.yaml:4: images[0].platforms[0]: {written!r} is not a known platform (os/arch[/variant]); "
        f"did you mean {meant!r}?"
    ]


def test_range_and_type_refusals_show_the_value_and_the_rule() -> None:
    assert problems("images:\n  - source: nginx\n    select: {latest: 3}\n    max_tags: 5000\n") == [
        "a.yaml:4: images[0].max_tags: must be a whole number from 1 to 1000, not 5000"
    ]
    assert problems("images:\n  - source: nginx\n    select:\n      latest: three\n") == [
        "a.yaml:4: images[0].select.latest: must be a whole number from 1 to 1000, not 'three'"
    ]
    assert problems("images:\n  - source: nginx\n    select: {}\n") == [
        "a.yaml:3: images[0].select: must not be empty; give it some of include, include_regex, exclude, "
        "exclude_regex, variant, semver, latest, prereleases, such as {semver: '>=1.26', latest: 3}"
    ]
    assert problems("images:\n  - source: nginx\n    tags: ['1']\n    verify: true\n") == [
        "a.yaml:4: images[0].verify: must be a mapping with one of key, secret, parameter, kms naming the cosign "
        "public key, such as {secret: hubmirror/cosign}, or false to turn a default off; not true"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "images:\n\t- source: nginx\n",
            [
                "a.yaml:2: (document): not valid YAML at column 1: found character '\\t' that cannot start any "
                "token; indent with spaces, not tabs",
                "    \\t- source: nginx",
                "    ^",
            ],
        ),
        (
            "images:\n  - source: nginx\n   tags: ['1']\n",
            [
                "a.yaml:3: (document): not valid YAML at column 4: expected <block end>, but found "
                "'<block mapping start>'; check the indentation: the keys of one mapping and the items of one list "
                "start in the same column (this block starts at line 2)",
                "       tags: ['1']",
                "       ^",
            ],
        ),
        (
            "images:\n  - source: nginx\n      tags: ['1']\n",
            [
                "a.yaml:3: (document): not valid YAML at column 11: mapping values are not allowed here; "
                "check the indentation of this line, or quote a value that holds ': '",
                "          tags: ['1']",
                "              ^",
            ],
        ),
    ],
)
def test_a_yaml_syntax_error_shows_line_column_caret_and_hint(text: str, expected: list[str]) -> None:
    assert "\n".join(problems(text)).splitlines() == expected


def test_a_stored_allowlist_leaves_out_only_entries_that_break_a_stricter_rule() -> None:
    text = (
        "images:\n"
        "  - {source: hub.docker.com/r/bitnami/redis, tags: ['7']}\n"
        "  - {source: nginx, tags: ['1'], build_commands: ['ENV FOO']}\n"
        "  - {source: busybox, tags: ['1.36']}\n"
    )
    with pytest.raises(AllowlistError):  # validate and push stay strict
        parse_allowlist(text)
    stored = parse_allowlist(text, stored=True)
    assert [e.target for e in stored.entries] == ["busybox"]
    assert [(p.path, p.since) for p in stored.left_out] == [
        ("images[0].source", "0.2.0"),
        ("images[1].build_commands[0]", "0.2.0"),
    ]


def test_a_stored_allowlist_is_refused_whole_when_nothing_would_be_left() -> None:
    with pytest.raises(AllowlistError, match="Docker Hub"):
        parse_allowlist("images:\n  - {source: hub.docker.com/_/nginx, tags: ['1']}\n", stored=True)

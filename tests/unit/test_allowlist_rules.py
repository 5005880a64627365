"""Every allowlist rule, refused with its line, its path and its reason.

Each case is a whole (small) allowlist; the expected problem names the line, the path and
a fragment of the rule. The same documents go through ``hubmirror validate`` (no
traceback, exit 1) and through the published JSON Schema where the rule is about shape.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from hubmirror.allowlist.rules import AllowlistError, parse_allowlist
from hubmirror.allowlist.schema import allowlist_schema

D = "sha256:" + "ab" * 32
ROOT = Path(__file__).resolve().parents[2]

# (id, document, line, path, fragment of the message, the schema also refuses it)
# fmt: off
CASES: list[tuple[str, str, int | None, str, str, bool]] = [
    # -- the document ---------------------------------------------------------------
    ("empty-file", "", None, "(document)", "must be a mapping", True),
    ("not-a-mapping", "- nginx\n", 1, "(document)", "must be a mapping", True),
    ("scalar-document", "nginx\n", 1, "(document)", "must be a mapping", True),
    ("no-images", "defaults: {max_tags: 3}\n", 1, "(document)", "'images' is required", True),
    ("images-not-list", "images: nginx\n", 1, "images", "must be a list of images", True),
    ("images-empty", "images: []\n", 1, "images", "must not be empty", True),
    ("top-unknown-key", "images:\n  - {source: nginx, tags: ['1']}\nimage: x\n", 3, "image", "did you mean 'images'?", True),
    ("syntax-error", "images:\n  - source: nginx\n    tags: ['1'\n", 4, "(document)", "not valid YAML at column 1", False),
    ("tab-indent", "images:\n\t- source: nginx\n", 2, "(document)", "indent with spaces, not tabs\n    \\t- source: nginx\n    ^", False),
    ("bad-indent", "images:\n  - source: nginx\n   tags: ['1']\n", 3, "(document)", "at column 4: expected <block end>", False),
    ("duplicate-top-key", "images: []\nimages:\n  - {source: nginx, tags: ['1']}\n", 2, "images", "duplicate key 'images'", False),
    ("merge-key", "x: &x {tags: ['1']}\nimages:\n  - source: nginx\n    <<: *x\n", 4, "images[0]", "merge keys", True),
    ("complex-key", "images:\n  - ? [a, b]\n    : 1\n", 2, "images[0]", "plain strings", False),
    ("alias-bomb", "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
     + "".join(f"{c}: &{c} [" + ", ".join([f"*{p}"] * 10) + "]\n" for p, c in zip("abcdefg", "bcdefgh", strict=True)),
     None, "(document)", "expands to more than", False),
    # -- entries ----------------------------------------------------------------------
    ("entry-not-mapping", "images:\n  - nginx\n", 2, "images[0]", "must be a mapping", True),
    ("entry-unknown-key", "images:\n  - source: nginx\n    tags: ['1']\n    tag: ['2']\n", 4, "images[0].tag", "did you mean 'tags'?", True),
    ("entry-no-source", "images:\n  - tags: ['1']\n", 2, "images[0]", "'source' is required", True),
    ("entry-no-tags", "images:\n  - source: nginx\n", 2, "images[0]", "say which tags to mirror", True),
    ("duplicate-entry-key", "images:\n  - source: nginx\n    tags: ['1']\n    tags: ['2']\n", 4, "images[0].tags", "duplicate key 'tags'", False),
    # -- source -----------------------------------------------------------------------
    ("source-number", "images:\n  - source: 42\n    tags: ['1']\n", 2, "images[0].source", "came from the number 42", True),
    ("source-null", "images:\n  - source:\n    tags: ['1']\n", 2, "images[0].source", "must be a string, not nothing", True),
    ("source-upper", "images:\n  - source: Nginx\n    tags: ['1']\n", 2, "images[0].source", "lower case", False),
    ("source-with-tag", "images:\n  - source: nginx:1.27\n    tags: ['1']\n", 2, "images[0].source", "carries a tag or digest", True),
    ("source-with-digest", f"images:\n  - source: nginx@{D}\n    tags: ['1']\n", 2, "images[0].source", "carries a tag or digest", True),
    ("source-url", "images:\n  - source: https://ghcr.io/org/app\n    tags: ['1']\n", 2, "images[0].source", "URL scheme", True),
    ("source-space", "images:\n  - source: 'ghcr.io/org/my app'\n    tags: ['1']\n", 2, "images[0].source", "whitespace", True),
    ("source-empty-component", "images:\n  - source: team//app\n    tags: ['1']\n", 2, "images[0].source", "must not be empty", False),
    ("source-bad-host", "images:\n  - source: registry.example.com:port/app\n    tags: ['1']\n", 2, "images[0].source", "not a valid registry host", True),
    ("source-docker-hub-page", "images:\n  - source: hub.docker.com/r/bitnami/redis\n    tags: ['7']\n", 2, "images[0].source", "Docker Hub web page, not an image name; write source: bitnami/redis", True),
    ("source-docker-hub-official-page", "images:\n  - source: hub.docker.com/_/nginx\n    tags: ['1']\n", 2, "images[0].source", "write source: nginx", True),
    ("source-docker-hub-site", "images:\n  - source: hub.docker.com/bitnami\n    tags: ['1']\n", 2, "images[0].source", "Docker Hub's web site, not a registry", True),
    ("source-too-long", f"images:\n  - source: {'a' * 256}\n    tags: ['1']\n", 2, "images[0].source", "longer than 255", True),
    # -- tags -------------------------------------------------------------------------
    ("tag-float", "images:\n  - source: nginx\n    tags: [1.10]\n", 3, "images[0].tags[0]", "'1.1' came from the number 1.10; quote it: \"1.10\"", True),
    ("tag-int", "images:\n  - source: redis\n    tags: [7]\n", 3, "images[0].tags[0]", "came from the number 7", True),
    ("tag-bool", "images:\n  - source: redis\n    tags: [yes]\n", 3, "images[0].tags[0]", "must be a string, not true/false", True),
    ("tags-not-list", "images:\n  - source: nginx\n    tags: '1.27'\n", 3, "images[0].tags", "must be a list", True),
    ("tags-empty", "images:\n  - source: nginx\n    tags: []\n", 3, "images[0].tags", "must not be empty", True),
    ("tag-invalid-chars", "images:\n  - source: nginx\n    tags: ['1.27/alpine']\n", 3, "images[0].tags[0]", "not a valid tag", True),
    ("tag-leading-dash", "images:\n  - source: nginx\n    tags: ['-1']\n", 3, "images[0].tags[0]", "not a valid tag", True),
    ("tag-too-long", f"images:\n  - source: nginx\n    tags: ['{'t' * 129}']\n", 3, "images[0].tags[0]", "not a valid tag", True),
    ("tag-twice", "images:\n  - source: nginx\n    tags: ['1', '1']\n", 3, "images[0].tags[1]", "listed twice", True),
    ("tag-mapping", "images:\n  - source: nginx\n    tags: [{a: 1}]\n", 3, "images[0].tags[0]", "must be a string, not a mapping", True),
    # -- target -----------------------------------------------------------------------
    ("target-upper", "images:\n  - source: nginx\n    tags: ['1']\n    target: Nginx\n", 4, "images[0].target", "not a valid ECR repository name", True),
    ("target-trailing-slash", "images:\n  - source: nginx\n    tags: ['1']\n    target: web/\n", 4, "images[0].target", "not a valid ECR repository name", True),
    ("target-double-dot", "images:\n  - source: nginx\n    tags: ['1']\n    target: a..b\n", 4, "images[0].target", "not a valid ECR repository name", True),
    ("target-too-long", f"images:\n  - source: nginx\n    tags: ['1']\n    target: {'a' * 200}\n", 4, "images[0].target", "too long", True),
    ("target-number", "images:\n  - source: nginx\n    tags: ['1']\n    target: 12\n", 4, "images[0].target", "came from the number 12", True),
    ("target-prefix-bad", "images:\n  - source: nginx\n    tags: ['1']\n    target_prefix: Hub\n", 4, "images[0].target_prefix", "not a valid ECR repository path", True),
    ("same-target-and-tag", "images:\n  - source: nginx\n    tags: ['1']\n  - source: ghcr.io/x/nginx\n    target: nginx\n    tags: ['1']\n", 5, "images[1].target", "both write the target repository nginx", False),
    ("two-sources-one-repository", "images:\n  - source: ghcr.io/acme/app\n    tags: ['1.0']\n  - source: acme/app\n    target: acme/app\n    select: {latest: 3}\n", 5, "images[1].target", "two different sources must not share a repository", False),
    ("two-sources-one-derived-repository", "defaults:\n  target_prefix: hub\nimages:\n  - source: nginx\n    tags: ['1']\n  - source: quay.io/nginx\n    target_prefix: hub\n    tags: ['2']\n", 6, "images[1].source", "both write the target repository hub/nginx", False),
    ("same-target-via-default-path", "images:\n  - source: nginx\n    tags: ['1']\n  - source: docker.io/library/nginx\n    tags: ['1']\n", 5, "images[1].tags[0]", "already produced by images[0]", False),
    # -- platforms --------------------------------------------------------------------
    ("platform-typo", "images:\n  - source: nginx\n    tags: ['1']\n    platforms: [linux/amd46]\n", 4, "images[0].platforms[0]", "did you mean 'linux/amd64'?", True),
    ("platform-x86-64", "images:\n  - source: nginx\n    tags: ['1']\n    platforms: [linux/x86_64]\n", 4, "images[0].platforms[0]", "did you mean 'linux/amd64'?", True),
    ("platform-aarch64", "images:\n  - source: nginx\n    tags: ['1']\n    platforms: [linux/aarch64]\n", 4, "images[0].platforms[0]", "did you mean 'linux/arm64'?", True),
    ("platform-unknown", "images:\n  - source: nginx\n    tags: ['1']\n    platforms: [plan9/386]\n", 4, "images[0].platforms[0]", "not a known platform", True),
    ("platform-twice", "images:\n  - source: nginx\n    tags: ['1']\n    platforms: [linux/arm64, linux/arm64/v8]\n", 4, "images[0].platforms[1]", "listed twice", False),
    ("platforms-empty", "images:\n  - source: nginx\n    tags: ['1']\n    platforms: []\n", 4, "images[0].platforms", "must not be empty", True),
    ("platforms-string", "images:\n  - source: nginx\n    tags: ['1']\n    platforms: linux/amd64\n", 4, "images[0].platforms", "must be a list", True),
    # -- build commands ---------------------------------------------------------------
    ("build-from", "images:\n  - source: nginx\n    tags: ['1']\n    build_commands: ['FROM alpine']\n", 4, "images[0].build_commands[0]", "FROM is not allowed", True),
    ("build-copy", "images:\n  - source: nginx\n    tags: ['1']\n    build_commands: ['COPY . /app']\n", 4, "images[0].build_commands[0]", "COPY is not allowed", True),
    ("build-add", "images:\n  - source: nginx\n    tags: ['1']\n    build_commands: ['ADD https://x.example/y /y']\n", 4, "images[0].build_commands[0]", "ADD is not allowed", True),
    ("build-onbuild", "images:\n  - source: nginx\n    tags: ['1']\n    build_commands: ['ONBUILD RUN id']\n", 4, "images[0].build_commands[0]", "ONBUILD is not allowed", True),
    ("build-maintainer", "images:\n  - source: nginx\n    tags: ['1']\n    build_commands: ['MAINTAINER me']\n", 4, "images[0].build_commands[0]", "MAINTAINER is not allowed", True),
    ("build-newline", "images:\n  - source: nginx\n    tags: ['1']\n    build_commands: [\"RUN id\\nFROM evil\"]\n", 4, "images[0].build_commands[0]", "one line", True),
    ("build-carriage-return", "images:\n  - source: nginx\n    tags: ['1']\n    build_commands: [\"RUN id\\rFROM evil\"]\n", 4, "images[0].build_commands[0]", "one line", True),
    ("build-nul", "images:\n  - source: nginx\n    tags: ['1']\n    build_commands: [\"RUN a\\0b\"]\n", 4, "images[0].build_commands[0]", "NUL", True),
    ("build-control", "images:\n  - source: nginx\n    tags: ['1']\n    build_commands: [\"RUN a\\x1bb\"]\n", 4, "images[0].build_commands[0]", "control characters", False),
    ("build-continuation", "images:\n  - source: nginx\n    tags: ['1']\n    build_commands: ['RUN apk add \\']\n", 4, "images[0].build_commands[0]", "line continuation", False),
    ("build-heredoc", "images:\n  - source: nginx\n    tags: ['1']\n    build_commands: ['RUN <<EOF']\n", 4, "images[0].build_commands[0]", "heredocs", False),
    ("build-comment", "images:\n  - source: nginx\n    tags: ['1']\n    build_commands: ['# hello']\n", 4, "images[0].build_commands[0]", "comment is not an instruction", True),
    ("build-unknown-instruction", "images:\n  - source: nginx\n    tags: ['1']\n    build_commands: ['INSTALL curl']\n", 4, "images[0].build_commands[0]", "not an allowed instruction", True),
    ("build-no-arguments", "images:\n  - source: nginx\n    tags: ['1']\n    build_commands: ['RUN']\n", 4, "images[0].build_commands[0]", "needs arguments", True),
    ("build-env-no-value", "images:\n  - source: nginx\n    tags: ['1']\n    build_commands: ['ENV FOO']\n", 4, "images[0].build_commands[0]", "ENV needs a value: write ENV FOO=value", False),
    ("build-env-pair-without-value", "images:\n  - source: nginx\n    tags: ['1']\n    build_commands: ['ENV A=1 B']\n", 4, "images[0].build_commands[0]", "'B' has no '='", False),
    ("build-label-no-value", "images:\n  - source: nginx\n    tags: ['1']\n    build_commands: ['LABEL team']\n", 4, "images[0].build_commands[0]", "LABEL needs a value", False),
    ("build-too-long", "images:\n  - source: nginx\n    tags: ['1']\n    build_commands: ['RUN " + "x" * 4100 + "']\n", 4, "images[0].build_commands[0]", "at most 4096", True),
    ("build-empty-list", "images:\n  - source: nginx\n    tags: ['1']\n    build_commands: []\n", 4, "images[0].build_commands", "must not be empty", False),
    ("build-number", "images:\n  - source: nginx\n    tags: ['1']\n    build_commands: [1]\n", 4, "images[0].build_commands[0]", "came from the number 1", True),
    ("build-empty-line", "images:\n  - source: nginx\n    tags: ['1']\n    build_commands: ['  ']\n", 4, "images[0].build_commands[0]", "must not be empty", True),
    # -- select -----------------------------------------------------------------------
    ("select-not-mapping", "images:\n  - source: nginx\n    select: latest\n", 3, "images[0].select", "must be a mapping", True),
    ("select-empty", "images:\n  - source: nginx\n    select: {}\n", 3, "images[0].select", "must not be empty; give it some of include", True),
    ("select-unknown-key", "images:\n  - source: nginx\n    select:\n      newest: 3\n", 4, "images[0].select.newest", "unknown key 'newest'", True),
    ("select-bad-regex", "images:\n  - source: nginx\n    select:\n      include_regex: ['1.(27']\n", 4, "images[0].select.include_regex[0]", "not a valid regular expression", False),
    ("select-bad-semver", "images:\n  - source: nginx\n    select:\n      semver: '>=1.x'\n", 4, "images[0].select.semver", "not a version range", False),
    ("select-latest-zero", "images:\n  - source: nginx\n    select:\n      latest: 0\n", 4, "images[0].select.latest", "whole number from 1", True),
    ("select-latest-string", "images:\n  - source: nginx\n    select:\n      latest: three\n", 4, "images[0].select.latest", "whole number from 1", True),
    ("select-prereleases-string", "images:\n  - source: nginx\n    select:\n      semver: '>=1'\n      prereleases: sometimes\n", 5, "images[0].select.prereleases", "true or false", True),
    ("select-include-string", "images:\n  - source: nginx\n    select:\n      include: '1.*'\n", 4, "images[0].select.include", "must be a list", True),
    ("select-variant-bad", "images:\n  - source: nginx\n    select:\n      variant: '-alpine'\n", 4, "images[0].select.variant", "not a tag suffix", True),
    ("select-pattern-too-long", "images:\n  - source: nginx\n    select:\n      exclude: ['" + "x" * 201 + "']\n", 4, "images[0].select.exclude[0]", "1 to 200 characters", True),
    # -- pinned -----------------------------------------------------------------------
    ("pinned-not-mapping", f"images:\n  - source: nginx\n    pinned: ['{D}']\n", 3, "images[0].pinned", "non-empty mapping", True),
    ("pinned-bad-digest", "images:\n  - source: nginx\n    pinned:\n      '1.27': sha256:abc\n", 4, "images[0].pinned.1.27", "64 lower-case hex", True),
    ("pinned-number-tag", f"images:\n  - source: nginx\n    pinned:\n      1.10: {D}\n", 4, "images[0].pinned.1.10", "came from a number; quote it: \"1.10\"", False),
    ("pinned-and-followed", f"images:\n  - source: nginx\n    tags: ['1.27']\n    pinned:\n      '1.27': {D}\n", 5, "images[0].pinned.1.27", "both in 'tags' and 'pinned'", False),
    ("pinned-duplicate-target", f"images:\n  - source: nginx\n    tags: ['1.27']\n  - source: docker.io/library/nginx\n    pinned:\n      '1.27': {D}\n", 6, "images[1].pinned.1.27", "already produced by images[0]", False),
    # -- defaults and limits --------------------------------------------------------------
    ("defaults-not-mapping", "defaults: [linux/amd64]\nimages:\n  - {source: nginx, tags: ['1']}\n", 1, "defaults", "must be a mapping", True),
    ("defaults-unknown-key", "defaults:\n  tags: ['1']\nimages:\n  - {source: nginx, tags: ['1']}\n", 2, "defaults.tags", "unknown key 'tags'", True),
    ("defaults-bad-platform", "defaults:\n  platforms: [linux/sparc]\nimages:\n  - {source: nginx, tags: ['1']}\n", 2, "defaults.platforms[0]", "not a known platform", True),
    ("defaults-bad-line", "defaults:\n  build_commands: ['COPY . /']\nimages:\n  - {source: nginx, tags: ['1']}\n", 2, "defaults.build_commands[0]", "COPY is not allowed", True),
    ("defaults-empty-lines", "defaults:\n  build_commands: []\nimages:\n  - {source: nginx, tags: ['1']}\n", 2, "defaults.build_commands", "must not be empty", False),
    ("max-tags-too-big", "images:\n  - source: nginx\n    select: {latest: 3}\n    max_tags: 5000\n", 4, "images[0].max_tags", "from 1 to 1000, not 5000", True),
    ("max-tags-float", "defaults:\n  max_tags: 2.5\nimages:\n  - {source: nginx, tags: ['1']}\n", 2, "defaults.max_tags", "whole number from 1 to 1000, not 2.5", True),
    ("too-many-tags", "images:\n  - source: nginx\n    tags: [" + ", ".join(f"'t{n}'" for n in range(1001)) + "]\n", 3, "images[0].tags", "the limit is 1000", True),
    # -- verify ---------------------------------------------------------------------------
    ("verify-not-mapping", "images:\n  - source: nginx\n    tags: ['1']\n    verify: cosign.pub\n", 4, "images[0].verify", "must be a mapping with one of key, secret, parameter, kms", True),
    ("verify-two-keys", "images:\n  - source: nginx\n    tags: ['1']\n    verify: {secret: hubmirror/a, parameter: /hubmirror/a}\n", 4, "images[0].verify", "names one key", True),
    ("verify-unknown-source", "images:\n  - source: nginx\n    tags: ['1']\n    verify: {file: cosign.pub}\n", 4, "images[0].verify.file", "unknown key 'file'", True),
    ("verify-not-pem", "images:\n  - source: nginx\n    tags: ['1']\n    verify: {key: MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE}\n", 4, "images[0].verify.key", "not a PEM public key", True),
    ("verify-secret-elsewhere", "images:\n  - source: nginx\n    tags: ['1']\n    verify: {secret: prod/cosign}\n", 4, "images[0].verify.secret", "under hubmirror/", True),
    ("verify-parameter-relative", "images:\n  - source: nginx\n    tags: ['1']\n    verify: {parameter: hubmirror/cosign}\n", 4, "images[0].verify.parameter", "under /hubmirror/", True),
    ("verify-kms-alias", "images:\n  - source: nginx\n    tags: ['1']\n    verify: {kms: 'arn:aws:kms:eu-west-1:123456789012:alias/cosign'}\n", 4, "images[0].verify.kms", "the ARN of a KMS key", True),
    ("verify-true", "images:\n  - source: nginx\n    tags: ['1']\n    verify: true\n", 4, "images[0].verify", "naming the cosign public key, such as {secret: hubmirror/cosign}, or false to turn a default off; not true", True),
    ("defaults-verify-number", "defaults:\n  verify: 1\nimages:\n  - {source: nginx, tags: ['1']}\n", 2, "defaults.verify", "must be a mapping", True),
    # -- build_network ----------------------------------------------------------------
    ("build-network-yes", "images:\n  - source: nginx\n    tags: ['1']\n    build_commands: ['RUN apk add curl']\n    build_network: 'yes'\n", 5, "images[0].build_network", "must be true or false, not 'yes'", True),
    ("build-network-number", "images:\n  - source: nginx\n    tags: ['1']\n    build_commands: ['RUN id']\n    build_network: 1\n", 5, "images[0].build_network", "must be true or false, not 1", True),
    ("build-network-no-lines", "images:\n  - source: nginx\n    tags: ['1']\n    build_network: true\n", 4, "images[0].build_network", "this entry has none: remove build_network", False),
    ("defaults-build-network-null", "defaults:\n  build_network:\nimages:\n  - {source: nginx, tags: ['1']}\n", 2, "defaults.build_network", "must be true or false, not nothing", True),
]
# fmt: on


@pytest.mark.parametrize(("text", "line", "path", "fragment"), [c[1:5] for c in CASES], ids=[c[0] for c in CASES])
def test_each_rule_is_refused_with_line_path_and_reason(text: str, line: int | None, path: str, fragment: str) -> None:
    with pytest.raises(AllowlistError) as raised:
        parse_allowlist(text, source="a.yaml")
    problems = raised.value.problems
    assert any(p.path == path and p.line == line and fragment in p.message for p in problems), raised.value.lines()


def test_there_are_at_least_sixty_refused_allowlists() -> None:
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("text", [c[1] for c in CASES if c[5]], ids=[c[0] for c in CASES if c[5]])
def test_the_published_schema_refuses_the_shape_errors_too(text: str) -> None:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return
    errors = list(jsonschema.Draft202012Validator(allowlist_schema()).iter_errors(document))
    assert errors


def test_the_cli_never_prints_a_traceback(tmp_path: Path) -> None:
    hubmirror = Path(sys.executable).parent / "hubmirror"
    paths = []
    for n, case in enumerate(CASES):
        path = tmp_path / f"{n:02d}-{case[0]}.yaml"
        path.write_text(case[1])
        paths.append(str(path))
    result = subprocess.run([str(hubmirror), "validate", *paths], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    # each problem's first line names the file; a YAML syntax error adds the line and a caret, indented
    reported = {line.split(":", 1)[0] for line in result.stdout.splitlines() if not line.startswith(" ")}
    assert reported == set(paths)


def test_the_published_schema_file_is_up_to_date() -> None:
    published = json.loads((ROOT / "functions" / "hubmirror" / "allowlist" / "allowlist.schema.json").read_text())
    assert published == allowlist_schema(), (
        "run: .venv/bin/python -m hubmirror.allowlist.schema > functions/hubmirror/allowlist/allowlist.schema.json"
    )
    jsonschema.Draft202012Validator.check_schema(published)
    assert (
        "$schema=./functions/hubmirror/allowlist/allowlist.schema.json"
        in (ROOT / "allowlist.yaml").read_text().splitlines()[0]
    )

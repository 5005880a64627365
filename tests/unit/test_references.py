"""Image references: the distribution grammar's own examples, and Docker's normalisation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubmirror.domain.references import ImageReference, InvalidReferenceError, is_loopback, split_domain

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", None, None),
        ("nginx:1.27", "docker.io", "library/nginx", "1.27", None),
        ("hashicorp/vault:1.14", "docker.io", "hashicorp/vault", "1.14", None),
        ("docker.io/nginx", "docker.io", "library/nginx", None, None),
        ("index.docker.io/library/nginx", "docker.io", "library/nginx", None, None),
        ("registry-1.docker.io/bitnami/redis", "docker.io", "bitnami/redis", None, None),
        ("localhost/app", "localhost", "app", None, None),
        ("localhost:5000/x", "localhost:5000", "x", None, None),
        ("registry.example.com:8443/team/app:v2", "registry.example.com:8443", "team/app", "v2", None),
        ("ghcr.io/org/tool", "ghcr.io", "org/tool", None, None),
        ("quay.io/prometheus/node-exporter:v1.8.2", "quay.io", "prometheus/node-exporter", "v1.8.2", None),
        ("public.ecr.aws/docker/library/redis:7.4", "public.ecr.aws", "docker/library/redis", "7.4", None),
        (f"nginx@{DIGEST}", "docker.io", "library/nginx", None, DIGEST),
        (f"nginx:1.27@{DIGEST}", "docker.io", "library/nginx", "1.27", DIGEST),
        ("127.0.0.1:5000/a/b__c.d-e", "127.0.0.1:5000", "a/b__c.d-e", None, None),
        ("[::1]:5000/app", "[::1]:5000", "app", None, None),
        ("a" * 10 + "/b:" + "t" * 128, "docker.io", "aaaaaaaaaa/b", "t" * 128, None),
    ],
)
def test_valid_references_parse_and_normalise(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = ImageReference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("", "non-empty"),
        ("Nginx", "lower case"),
        ("nginx:", "valid"),
        ("nginx:-1", "not a valid tag"),
        ("nginx:" + "t" * 129, "not a valid tag"),
        ("nginx@sha256:abc", "digest"),
        ("nginx@sha256:" + "A" * 64, "digest"),
        ("team//app", "empty"),
        ("/app", "empty"),
        ("app/", "empty"),
        ("https://ghcr.io/org/app", "URL scheme"),
        ("ghcr.io/org/app name", "whitespace"),
        (" nginx", "whitespace"),
        ("a-/b", "separated"),
        ("a__-b", "separated"),
        ("registry.example.com:port/app", "not a valid registry host"),
        ("0_0.0/app", "not a valid registry host"),
        ("-registry.example.com/app", "not a valid registry host"),
        ("x" * 256, "longer than 255"),
    ],
)
def test_invalid_references_are_refused_with_the_rule(text: str, rule: str) -> None:
    with pytest.raises(InvalidReferenceError) as raised:
        ImageReference.parse(text)
    assert rule in str(raised.value)


def test_docker_hub_api_host_and_familiar_name() -> None:
    ref = ImageReference.parse("nginx:1.27")
    assert ref.api_host == "registry-1.docker.io"
    assert ref.familiar == "nginx:1.27"
    assert ImageReference.parse("ghcr.io/org/app").api_host == "ghcr.io"


def test_split_domain_treats_first_component_as_host_only_when_it_looks_like_one() -> None:
    assert split_domain("team/app") == ("docker.io", "team/app")
    assert split_domain("my.registry/app") == ("my.registry", "app")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1:5000", True), ("localhost", True), ("[::1]:5000", True), ("ghcr.io", False), ("10.0.0.1:5000", False)],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


_component = st.from_regex(r"\A[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+){0,2}\Z")
# Docker reads a first component with a '.' as a registry host, so without a host it has none
_first = st.from_regex(r"\A[a-z0-9]+(?:(?:_|__|-+)[a-z0-9]+){0,2}\Z").filter(lambda c: c != "localhost")
_tag = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}\Z")
_host = st.sampled_from(["ghcr.io", "quay.io", "registry.example.com:8443", "localhost:5000", "127.0.0.1:5000"])


@given(host=st.none() | _host, first=_first, rest=st.lists(_component, max_size=2), tag=st.none() | _tag)
def test_parse_format_round_trip(host: str | None, first: str, rest: list[str], tag: str | None) -> None:
    text = "/".join([*([host] if host else []), first, *rest]) + (f":{tag}" if tag else "")
    ref = ImageReference.parse(text)
    assert ImageReference.parse(str(ref)) == ref
    assert ref.tag == tag


_bad_char = st.sampled_from(list("!#$%&*()+=[]{}|\\;'\",<>?`~ \t\n"))


@st.composite
def invalid_references(draw: st.DrawFn) -> str:
    """A valid reference broken in one way the grammar forbids."""
    host = draw(st.none() | _host)
    path = [draw(_first), *draw(st.lists(_component, max_size=2))]
    tag = draw(st.none() | _tag)
    breakage = draw(
        st.sampled_from(["upper", "char", "empty", "tag-start", "tag-long", "digest", "trailing", "leading"])
    )
    if breakage == "upper":
        n = draw(st.integers(0, len(path) - 1))
        path[n] = path[n][:1].upper() + path[n][1:] if path[n][:1].isalpha() else "A" + path[n]
    elif breakage == "char":
        n = draw(st.integers(0, len(path) - 1))
        at = draw(st.integers(0, len(path[n])))
        path[n] = path[n][:at] + draw(_bad_char) + path[n][at:]
    elif breakage == "empty":
        path.insert(draw(st.integers(1, len(path))), "")
    elif breakage == "tag-start":
        tag = draw(st.sampled_from([".", "-"])) + (tag or "x")
    elif breakage == "tag-long":
        tag = "t" * draw(st.integers(129, 200))
    elif breakage == "digest":
        bad = draw(
            st.sampled_from(
                ["sha256:" + "g" * 64, "sha256:" + "a" * 63, "sha256:" + "A" * 64, "md5:" + "a" * 32, "sha256:"]
            )
        )
        return "/".join([*([host] if host else []), *path]) + f"@{bad}"
    text = "/".join([*([host] if host else []), *path]) + (f":{tag}" if tag is not None else "")
    if breakage == "trailing":
        text += "/"
    elif breakage == "leading":
        text = "/" + text
    return text


@given(text=invalid_references())
def test_every_generated_invalid_reference_is_refused(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        ImageReference.parse(text)

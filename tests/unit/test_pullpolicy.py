"""The statements hubmirror owns in a repository policy: written once, then left alone."""

from __future__ import annotations

import json

import pytest

from hubmirror.domain.pullpolicy import Pullers, PullersError, merged, statements

ORGANIZATION = "o-a1b2c3d4e5"
OWN = statements(Pullers(ORGANIZATION, account_ids=("111122223333", "444455556666")))


def test_a_policy_ecr_gives_back_in_another_form_is_not_written_again() -> None:
    """ECR hands back what was set, and people edit policies by hand: the same grant written
    with single values, root ARNs, ``{"AWS": "*"}`` or reordered lists is not rewritten every run."""
    organization, accounts = OWN
    other_forms = [
        {
            **organization,
            "Principal": {"AWS": "*"},
            "Action": list(reversed(organization["Action"])),
            "Condition": {"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": f"{ORGANIZATION}/*"}},
        },
        {
            **accounts,
            "Principal": {"AWS": ["arn:aws:iam::444455556666:root", "111122223333"]},
        },
    ]
    theirs = {"Sid": "Team", "Effect": "Allow", "Principal": {"AWS": "999988887777"}, "Action": "ecr:*"}
    stored = json.dumps({"Version": "2012-10-17", "Statement": [theirs, *other_forms]})
    assert merged(stored, OWN) is None


def test_a_changed_grant_is_written_and_keeps_every_other_statement() -> None:
    theirs = {"Sid": "Team", "Effect": "Allow", "Principal": {"AWS": "999988887777"}, "Action": "ecr:*"}
    stale = {**OWN[1], "Principal": {"AWS": ["111122223333"]}}
    written = merged(json.dumps({"Version": "2012-10-17", "Statement": [theirs, stale]}), OWN)
    assert written is not None
    assert json.loads(written) == {"Version": "2012-10-17", "Statement": [theirs, *OWN]}


@pytest.mark.parametrize("stored", ['{"Statement": null}', '{"Statement": []}', "{}", ""])
def test_an_empty_or_versionless_policy_gets_a_version_and_the_statements(stored: str) -> None:
    written = merged(stored or None, OWN)
    assert written is not None
    assert json.loads(written) == {"Version": "2012-10-17", "Statement": OWN}


@pytest.mark.parametrize(
    "path",
    [f"{ORGANIZATION}/r-ab12/ou-ab12-11111111", f"{ORGANIZATION}/r-ab12/ou-ab12-11111111*", f"{ORGANIZATION}/r-ab12"],
)
def test_a_unit_path_without_its_trailing_slash_is_refused_because_it_would_match_nobody(path: str) -> None:
    with pytest.raises(PullersError, match="organisational unit path"):
        Pullers.parse("", path, "")


@pytest.mark.parametrize("path", [f"{ORGANIZATION}/r-ab12/ou-ab12-11111111/", f"{ORGANIZATION}/r-ab12/*"])
def test_a_unit_path_ending_in_a_slash_or_a_star_is_taken(path: str) -> None:
    assert Pullers.parse("", path, "").unit_paths == (path,)

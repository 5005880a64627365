"""Who may pull from the mirror's repositories: the statements hubmirror owns in their policies. Pure.

A stack names an organisation, organisational unit paths and account ids (template parameters
``PullOrganizationId``, ``PullOrganizationalUnitPaths``, ``PullAccountIds``). They become at
most two ``Allow`` statements for the three actions a pull needs
(https://docs.aws.amazon.com/AmazonECR/latest/userguide/repository-policy-examples.html):

* ``HubmirrorPullOrganization``: any principal whose organisation path matches
  (``aws:PrincipalOrgPaths``; the organisation id ``o-x`` as ``o-x/*``, each unit path as given);
* ``HubmirrorPullAccounts``: the accounts named (an account id as principal means the account's
  root: any principal the account's own IAM allows).

The repository creation template writes them into every new repository; the check writes them
into the repositories hubmirror made before (tagged ``managed-by=hubmirror``), replacing only
statements whose ``Sid`` starts with :data:`SID_PREFIX` and keeping every other one.
A puller also needs ``ecr:GetAuthorizationToken`` from its own account's IAM.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SID_PREFIX = "HubmirrorPull"
PULL_ACTIONS = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]

_ORGANIZATION = re.compile(r"^o-[a-z0-9]{10,32}$")
#: A unit path ends in ``/`` (that unit) or ``/*`` (and those under it): a principal's
#: ``aws:PrincipalOrgPaths`` always ends in ``/``, so a path without either matches nobody.
_UNIT_PATH = re.compile(r"^o-[a-z0-9]{10,32}/r-[0-9a-z]{4,32}(/ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})*/\*?$")
_ACCOUNT = re.compile(r"^[0-9]{12}$")


class PullersError(ValueError):
    """A puller in the stack's settings is malformed."""


@dataclass(frozen=True)
class Pullers:
    organization_id: str = ""
    unit_paths: tuple[str, ...] = ()
    account_ids: tuple[str, ...] = ()

    @classmethod
    def parse(cls, organization: str, unit_paths: str, account_ids: str) -> Pullers:
        """The pullers the template's parameters name (comma-separated lists); refuses a
        malformed one, naming it.

        >>> Pullers.parse("", "", "111122223333, 444455556666").account_ids
        ('111122223333', '444455556666')
        """
        organization = organization.strip()
        units = tuple(p.strip() for p in unit_paths.split(",") if p.strip())
        accounts = tuple(a.strip() for a in account_ids.split(",") if a.strip())
        if organization and not _ORGANIZATION.match(organization):
            raise PullersError(f"{organization!r} is not an organisation id (o-...)")
        for path in units:
            if not _UNIT_PATH.match(path):
                raise PullersError(f"{path!r} is not an organisational unit path such as o-.../r-.../ou-.../*")
        for account in accounts:
            if not _ACCOUNT.match(account):
                raise PullersError(f"{account!r} is not a 12-digit account id")
        return cls(organization, units, accounts)


def statements(pullers: Pullers) -> list[dict[str, Any]]:
    """hubmirror's statements for ``pullers`` (none when nobody is named).

    >>> [s["Sid"] for s in statements(Pullers("o-a1b2c3d4e5", account_ids=("111122223333",)))]
    ['HubmirrorPullOrganization', 'HubmirrorPullAccounts']
    """
    found: list[dict[str, Any]] = []
    paths = ([f"{pullers.organization_id}/*"] if pullers.organization_id else []) + list(pullers.unit_paths)
    if paths:
        found.append(
            {
                "Sid": f"{SID_PREFIX}Organization",
                "Effect": "Allow",
                "Principal": "*",
                "Action": PULL_ACTIONS,
                "Condition": {"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": paths}},
            }
        )
    if pullers.account_ids:
        principal = {"AWS": list(pullers.account_ids)}
        found.append(
            {"Sid": f"{SID_PREFIX}Accounts", "Effect": "Allow", "Principal": principal, "Action": PULL_ACTIONS}
        )
    return found


def merged(policy_text: str | None, own: list[dict[str, Any]]) -> str | None:
    """The repository policy with hubmirror's statements set to ``own`` and every other kept,
    or None when it already says that (nothing to write). A policy left without statements
    (``"Statement": []``) is one to delete: ECR takes no empty policy.

    >>> merged(None, []) is None
    True
    >>> json.loads(merged('{"Version":"2012-10-17","Statement":[{"Sid":"Team","Effect":"Allow"}]}',
    ...     [{"Sid": "HubmirrorPullAccounts"}]))["Statement"]
    [{'Sid': 'Team', 'Effect': 'Allow'}, {'Sid': 'HubmirrorPullAccounts'}]
    """
    policy: dict[str, Any] = json.loads(policy_text) if policy_text else {}
    existing = policy.get("Statement") or []
    existing = [s for s in (existing if isinstance(existing, list) else [existing]) if isinstance(s, Mapping)]
    theirs = [s for s in existing if not str(s.get("Sid", "")).startswith(SID_PREFIX)]
    ours = [s for s in existing if str(s.get("Sid", "")).startswith(SID_PREFIX)]
    if [_normal(s) for s in ours] == [_normal(s) for s in own]:
        return None
    return json.dumps({"Version": "2012-10-17", **policy, "Statement": [*theirs, *own]}, separators=(",", ":"))


_ROOT = re.compile(r"^arn:aws[a-z-]*:iam::([0-9]{12}):root$")


def _values(value: Any) -> list[str]:
    """A policy value as a sorted list: IAM reads a single value as a list of one."""
    return sorted(str(v) for v in (value if isinstance(value, list) else [value]))


def _normal(statement: Mapping[str, Any]) -> dict[str, Any]:
    """A statement as IAM means it, so that a policy ECR gives back in another form (a single
    value for a list of one, an account's root ARN for its id, ``{"AWS": "*"}`` for ``"*"``)
    reads as the same and is not written again every run.

    >>> _normal({"Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "ecr:BatchGetImage"})
    {'Principal': {'AWS': ['111122223333']}, 'Action': ['ecr:BatchGetImage']}
    >>> _normal({"Principal": {"AWS": ["*"]}}) == _normal({"Principal": "*"})
    True
    """
    found = dict(statement)
    principal = found.get("Principal")
    if isinstance(principal, Mapping) and "AWS" in principal:
        named = [_ROOT.sub(r"\1", p) for p in _values(principal["AWS"])]
        found["Principal"] = "*" if named == ["*"] and len(principal) == 1 else {**principal, "AWS": sorted(named)}
    if "Action" in found:
        found["Action"] = _values(found["Action"])
    condition = found.get("Condition")
    if isinstance(condition, Mapping):
        found["Condition"] = {
            operator: {key: _values(value) for key, value in tests.items()} if isinstance(tests, Mapping) else tests
            for operator, tests in condition.items()
        }
    return found

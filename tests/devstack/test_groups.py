"""devstack's groups, and what each may import: read from the source, as the package's layout is.

The stand-ins are grouped by the service each plays (``registries/``, ``aws/``, ``content/``);
the modules at the top put them together (``stack``, ``demo``) or serve every group (``procs``,
``faults``). A registry stand-in never imports an AWS one: where the ECR front needs AWS's
judgement (a repository's policy, evaluated by the IAM stand-in; moto's repositories), the code
that builds it injects it.
"""

from __future__ import annotations

import re

import pytest

from tests.imports import DEVSTACK, DEVSTACK_MODULES, PACKAGE, imports

#: What each group may import from devstack (packages or modules, with what is below them).
ALLOWED: dict[str, tuple[str, ...]] = {
    # Docker Hub, ECR's registry API and the CDN: no AWS stand-in, no content
    "registries": ("devstack.registries", "devstack.procs", "devstack.faults"),
    # moto and its extensions: no registry stand-in, no content
    "aws": ("devstack.aws", "devstack.procs", "devstack.faults"),
    # what is pushed, through the registry API whichever registry plays the part
    "content": ("devstack.content",),
    # what every group uses
    "procs": (),
    "faults": (),
}
#: The modules that put the groups together: they may import any of them.
ORCHESTRATION = ("stack", "demo")


def group(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in prefixes)


def test_every_module_is_in_a_group_or_puts_them_together() -> None:
    """A new module or folder gets its row in the table before it can import anything."""
    groups = {group(m) for m in DEVSTACK_MODULES} - {""}
    assert groups <= set(ALLOWED) | set(ORCHESTRATION), sorted(groups - set(ALLOWED) - set(ORCHESTRATION))


@pytest.mark.parametrize("module", sorted(m for m in DEVSTACK_MODULES if group(m) in ALLOWED))
def test_each_group_imports_only_what_it_may(module: str) -> None:
    allowed = ALLOWED[group(module)]
    ours = {i for i in imports(module) if i.split(".")[0] == "devstack" and i != "devstack"}
    wrong = {i for i in ours if not within(i, allowed)}
    assert not wrong, f"{module} imports {sorted(wrong)}; devstack/{group(module)} may import only {allowed}"


def test_the_checks_see_the_groups() -> None:
    """The walk finds the modules it polices (a glob gone wrong would pass everything)."""
    assert {"devstack.registries.ecrfront", "devstack.aws.iam", "devstack.content.images"} <= set(DEVSTACK_MODULES)
    assert "devstack.faults" in imports("devstack.aws.iam")
    assert "devstack.aws.iam" in imports("devstack.stack")
    assert "devstack.content.images" in imports("devstack.content.cosign")


def test_the_contributors_guide_names_every_group() -> None:
    text = (PACKAGE.parents[1] / "CONTRIBUTING.md").read_text()
    layout = text[text.index("## Layout\n") : text.index("\n## ", text.index("## Layout\n") + 1)]
    entry = re.search(r"^devstack/ .*?(?=^\S)", layout, re.M | re.S)
    assert entry, "the layout section of CONTRIBUTING.md has no line for devstack/"
    folders = sorted(p.name for p in DEVSTACK.iterdir() if (p / "__init__.py").exists())
    named = set(re.findall(r"\b(\w+)/", entry.group()))
    assert set(folders) <= named, (
        f"the layout of CONTRIBUTING.md does not name devstack's {sorted(set(folders) - named)}"
    )

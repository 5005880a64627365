"""The package's folders are its architecture: what each may import is checked here.

Read from the source (the AST), not by importing it, so an import inside a function counts
as much as one at the top; imports under ``if TYPE_CHECKING:`` are for the type checker only.
"""

from __future__ import annotations

import re

import pytest

from tests.imports import MODULES, PACKAGE, closure, imports, reads_environment

#: Libraries that talk to the network or to AWS: none may be reached from the pure folders.
IO_LIBRARIES = ("boto3", "botocore", "urllib3", "requests", "aws_lambda_powertools", "mypy_boto3_s3")
#: What each folder may import from the package (prefixes of module names).
ALLOWED = {
    "domain": ("hubmirror.domain",),
    "allowlist": ("hubmirror.domain", "hubmirror.allowlist"),
    "steps": ("hubmirror.domain", "hubmirror.allowlist", "hubmirror.steps"),
    "copying": ("hubmirror.domain", "hubmirror.copying", "hubmirror.adapters.registry"),
    "adapters": ("hubmirror.domain", "hubmirror.adapters", "hubmirror.settings"),
    # the copy and build script CodeBuild runs: no Lambda step, no Powertools
    "runner": ("hubmirror.domain", "hubmirror.copying", "hubmirror.adapters", "hubmirror.runner"),
    # the Lambda entry points: the steps, wired to the adapters
    "handlers": (
        "hubmirror.domain",
        "hubmirror.allowlist",
        "hubmirror.steps",
        "hubmirror.adapters",
        "hubmirror.handlers",
        "hubmirror.observability",
        "hubmirror.settings",
    ),
    # the operator's command: the same steps as the Lambdas, no handler
    "cli": ("hubmirror.domain", "hubmirror.allowlist", "hubmirror.steps", "hubmirror.adapters", "hubmirror.cli"),
}
PURE = ("domain", "allowlist", "steps")


def folder(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else ""


@pytest.mark.parametrize("module", [m for m in MODULES if folder(m) in PURE])
def test_pure_folders_reach_no_io_library_and_no_environment(module: str) -> None:
    for reached in closure(module):
        libraries = {i.split(".")[0] for i in imports(reached)}
        assert not libraries & set(IO_LIBRARIES), (
            f"{module} reaches {reached}, which imports {libraries & set(IO_LIBRARIES)}"
        )
        assert not reads_environment(reached), f"{module} reaches {reached}, which reads the environment"


@pytest.mark.parametrize("module", [m for m in MODULES if folder(m) in ALLOWED])
def test_each_folder_imports_only_what_it_may(module: str) -> None:
    allowed = ALLOWED[folder(module)]
    ours = {i for i in imports(module) if i.split(".")[0] == "hubmirror" and i != "hubmirror"}
    wrong = {i for i in ours if not i.startswith(allowed)}
    assert not wrong, f"{module} imports {sorted(wrong)}; {folder(module)}/ may import only {allowed}"


def test_the_package_never_imports_the_local_stack() -> None:
    """devstack plays the services for the tests; what ships (one CodeUri, the wheel) has none of it."""
    wrong = {m: sorted(i for i in imports(m) if i.split(".")[0] == "devstack") for m in MODULES}
    offenders = {m: i for m, i in wrong.items() if i}
    assert not offenders, f"hubmirror must not import devstack: {offenders}"


def test_no_import_cycle() -> None:
    graph = {m: {i for i in imports(m) if i in MODULES and i != m} for m in MODULES}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_at_most_eight_modules_at_the_top() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 8, top


def test_the_checks_see_the_folders() -> None:
    """The walk finds the modules it polices (a glob gone wrong would pass everything)."""
    assert {"hubmirror.domain.keys", "hubmirror.steps.check", "hubmirror.adapters.registry.client"} <= set(MODULES)
    assert "hubmirror.domain.registry.errors" in imports("hubmirror.steps.check")
    assert "urllib3" in imports("hubmirror.adapters.registry.client")
    assert reads_environment("hubmirror.settings")
    assert "hubmirror.adapters.registry.client" in closure("hubmirror.copying.transfer")


#: The contributors' guide holds the layout (the README is for the people who use hubmirror).
README = PACKAGE.parents[1] / "CONTRIBUTING.md"


def test_the_readme_describes_every_folder_and_every_module_it_names_exists() -> None:
    text = README.read_text()
    layout = text[text.index("## Layout\n") : text.index("\n## ", text.index("## Layout\n") + 1)]
    folders = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    for name in folders:
        assert f"**`{name}/`**" in layout, f"the layout section of CONTRIBUTING.md does not describe {name}/"
    described = re.findall(r"\*\*`(\w+)/`\*\*", layout)
    assert sorted(described) == folders
    for folder, paragraph in re.findall(r"\*\*`(\w+)/`\*\*:(.*?)(?=\n- |\Z)", layout, re.S):
        for module in re.findall(r"`(\w+)`", paragraph):
            candidates = [
                PACKAGE / folder / f"{module}.py",
                PACKAGE / folder / module,
                PACKAGE / f"{module}.py",
                *PACKAGE.glob(f"{folder}/*/{module}.py"),
            ]
            assert any(c.exists() for c in candidates) or module in ("Protocol", "JobSettings"), (folder, module)


def test_the_readme_names_every_module_of_every_folder() -> None:
    text = README.read_text()
    layout = text[text.index("## Layout\n") : text.index("\n## ", text.index("## Layout\n") + 1)]
    paragraphs = dict(re.findall(r"\*\*`(\w+)/`\*\*:(.*?)(?=\n- |\Z)", layout, re.S))
    for folder, paragraph in paragraphs.items():
        named = set(re.findall(r"`(\w+)`", paragraph))
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            if path.stem.startswith("__"):
                continue
            assert path.stem in named, (
                f"the paragraph of CONTRIBUTING.md on {folder}/ does not name {path.relative_to(PACKAGE)}"
            )


def test_the_command_line_reaches_no_lambda_only_library() -> None:
    """``pipx install .`` gives the command PyYAML, boto3 and cryptography, not Powertools."""
    for reached in closure("hubmirror.cli"):
        libraries = {i.split(".")[0] for i in imports(reached)}
        assert "aws_lambda_powertools" not in libraries, f"hubmirror.cli reaches {reached}, which imports Powertools"

"""The mutation exercise (``make mutate``) stays runnable as the code moves: each one-line
bug it lists still names a line of its file exactly once, and each test it names exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.mutate import MUTATIONS, Mutation, locate

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.name for m in MUTATIONS])
def test_each_mutation_still_names_one_line_of_its_file_and_tests_that_exist(mutation: Mutation) -> None:
    assert locate(ROOT, mutation) >= 1
    for test in mutation.tests:
        path, _, name = test.partition("::")
        assert (ROOT / path).is_file(), test
        assert not name or f"def {name.split('[')[0]}(" in (ROOT / path).read_text(), test

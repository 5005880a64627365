"""What ``hubmirror plan`` says of an allowlist change: entries matched by source and target."""

from __future__ import annotations

from hubmirror.allowlist.rules import parse_allowlist
from hubmirror.cli.output import plan_markdown
from hubmirror.steps.preview import EntryChange, ItemPreview, Preview, entry_changes

DEPLOYED = """images:
  - source: nginx
    tags: ["1.27"]
  - source: hashicorp/vault
    tags: ["1.14"]
    build_commands: ["RUN mkdir /etc/vault"]
  - source: busybox
    tags: ["1.36"]
"""
PROPOSED = """images:
  - source: docker.io/library/nginx
    tags: ["1.27"]
  - source: hashicorp/vault
    tags: ["1.14"]
    build_commands: ["RUN mkdir /etc/vault", "VOLUME /etc/vault"]
  - source: ghcr.io/acme/app
    tags: ["2.0"]
"""


def test_entries_are_matched_by_normalised_source_and_target() -> None:
    changes = entry_changes(parse_allowlist(PROPOSED), parse_allowlist(DEPLOYED))
    assert changes == [
        EntryChange("nginx -> nginx", "unchanged"),  # docker.io/library/nginx is nginx
        EntryChange("hashicorp/vault -> hashicorp/vault", "changed", "build_commands"),
        EntryChange("ghcr.io/acme/app -> acme/app", "added"),
        EntryChange("busybox -> busybox", "removed", "stays in the target: a sync deletes nothing"),
    ]


def test_without_a_deployed_allowlist_every_entry_is_added() -> None:
    assert {c.change for c in entry_changes(parse_allowlist(PROPOSED), None)} == {"added"}


def test_the_markdown_comment_escapes_table_cells_and_gives_the_verdict() -> None:
    preview = Preview(
        entries=[EntryChange("nginx -> nginx", "changed", "tags")],
        items=[ItemPreview("docker.io/library/nginx:1.28", "mirror/nginx:1.28", "fails", "not found upstream | 404")],
    )
    lines = plan_markdown(preview, title="plan").splitlines()
    assert lines[2] == ":x: some items would fail: **1 fails; 0 upstream pull(s)**"
    assert "| fails | `docker.io/library/nginx:1.28` | `mirror/nginx:1.28` | 0 | not found upstream \\| 404 |" in lines


def test_granting_the_network_to_build_lines_is_a_change_the_reviewer_sees() -> None:
    granted = DEPLOYED.replace(
        '    build_commands: ["RUN mkdir /etc/vault"]\n',
        '    build_commands: ["RUN mkdir /etc/vault"]\n    build_network: true\n',
    )
    changes = entry_changes(parse_allowlist(granted), parse_allowlist(DEPLOYED))
    assert EntryChange("hashicorp/vault -> hashicorp/vault", "changed", "build_network") in changes

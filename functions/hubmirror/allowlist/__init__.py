"""The allowlist: its rules, its YAML loader, its JSON Schema, and its expansion into work items."""

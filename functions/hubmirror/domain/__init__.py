"""The rules of the trade, pure: references, OCI, versions and selectors, work items, decisions, keys."""

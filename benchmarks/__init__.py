"""The benchmarks (run by hand, results in docs/BENCHMARKS.md), and what more than one of them needs."""

from __future__ import annotations

import json


def parse_set(items: list[str]) -> dict:
    """`--set NAME=VALUE ...` as search settings: dashes in names become underscores, values are read as JSON
    (numbers, booleans, null) or else kept as text."""
    settings = {}
    for item in items:
        name, _, text = item.partition("=")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        settings[name.replace("-", "_")] = value
    return settings

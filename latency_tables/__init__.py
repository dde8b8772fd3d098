"""latency_tables: the measured latency tables shipped with edgenas (JSON files in this folder).

The schema is described in README.md beside this file; loading and prediction live in `edgenas.latency`.
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).parent


def shipped() -> list[Path]:
    """The tables that ship with the package, by file name."""
    return sorted(FOLDER.glob("*.json"))

"""edgenas.latency_tables: the measured latency tables shipped with edgenas (JSON files in this folder).

Installed as `edgenas.latency_tables` (pyproject.toml maps this top-level folder there), never as a top-level
`latency_tables`, which the ./latency_tables folder that `edgenas profile` writes would shadow. The schema is
described in README.md beside this file; finding, loading and prediction live in `edgenas.latency`.
"""

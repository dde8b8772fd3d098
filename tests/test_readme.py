"""The README and docs/ say what the command line does: the command reference is the CLI's own help, no flag is
missing from it, the README stays short, and every link between the pages lands on a file and a heading."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_generated_command_reference_and_list_are_current():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "docs_commands.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_every_flag_of_every_command_is_in_its_section_of_the_reference():
    import typer.main

    from edgenas.cli.app import app

    group = typer.main.get_command(app)
    ctx = group.make_context("edgenas", [], resilient_parsing=True)
    sections = re.split(r"^## ", (ROOT / "docs" / "COMMANDS.md").read_text(encoding="utf-8"), flags=re.M)
    by_name = {section.split("\n", 1)[0].strip(): section for section in sections}
    missing = []
    for name in group.list_commands(ctx):
        section = by_name.get(f"edgenas {name}", "")
        for param in group.get_command(ctx, name).params:
            for flag in [*param.opts, *param.secondary_opts]:
                row = rf"^\| `[^`|]*(?<![\w-]){re.escape(flag)}(?![\w-])[^`|]*` \|"  # the option cell of its row
                if flag.startswith("-") and not re.search(row, section, flags=re.M):
                    missing.append(f"edgenas {name} {flag}")
    assert not missing, f"missing from docs/COMMANDS.md: {missing}"


def test_the_readme_reads_in_ten_minutes():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 250, f"README.md has {lines} lines, more than 250: move the detail to docs/"


def _anchors(page: Path) -> set[str]:
    """The heading anchors GitHub gives a markdown page: lower case, punctuation dropped, spaces to hyphens."""
    seen: dict[str, int] = {}
    anchors = set()
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    for heading in re.findall(r"^#{1,6} +(.+?) *$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_every_link_between_the_pages_lands_on_a_file_and_a_heading():
    broken = []
    for page in PAGES:
        text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in _anchors(linked)):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_anchors_follow_githubs_rule():
    page = ROOT / "docs" / "BENCHMARKS.md"
    assert "time-estimates-of-edgenas-search-benchmarksestimate_accuracypy" in _anchors(page)
    assert "2026-12-03-evening-a-third-cpu-a-zen-4-amd-epyc-with-the-same-matrix-issue-16" in _anchors(page)

"""The README's "Every command" table is the command line's own: every command and option, as the CLI declares them."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_command_table_matches_the_cli():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "readme_commands.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_table_names_each_option_of_arch():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import readme_commands
    finally:
        sys.path.remove(str(ROOT / "tools"))
    row = next(line for line in readme_commands.table().splitlines() if line.startswith("| `edgenas arch "))
    for option in ("--space", "--resolution", "--width-mult", "--num-classes", "--seed", "--output"):
        assert option in row

"""Block choices: the strings that name what a searchable layer builds (`k5_e6_se`, `skip`), decoded.

Also MobileNetV2's channel rounding, which every width in a space goes through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgenas.errors import EdgeNASError

SKIP = "skip"
_CHOICE_RE = re.compile(r"^k(\d+)_e(\d+)(_se)?$")


@dataclass(frozen=True)
class BlockChoice:
    """A decoded choice string: `k5_e6_se` is kernel 5, expansion 6, squeeze-excite on."""

    kernel: int
    expansion: int
    se: bool

    @property
    def name(self) -> str:
        return f"k{self.kernel}_e{self.expansion}" + ("_se" if self.se else "")


def parse_choice(choice: str) -> BlockChoice | None:
    """`k3_e6` -> BlockChoice(3, 6, False); `skip` -> None. Raises on anything else."""
    if choice == SKIP:
        return None
    match = _CHOICE_RE.match(choice)
    if not match:
        raise EdgeNASError(f"bad block choice {choice!r}: expected 'skip' or k<kernel>_e<expansion>[_se], "
                           "such as k3_e6 or k7_e3_se")
    kernel, expansion = int(match.group(1)), int(match.group(2))
    if kernel % 2 == 0 or kernel < 1 or expansion < 1:
        raise EdgeNASError(f"bad block choice {choice!r}: the kernel must be odd and the expansion at least 1")
    return BlockChoice(kernel, expansion, bool(match.group(3)))


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of `divisor`, never more than 10% down (MobileNetV2's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded

"""Units: parse and format FLOPs budgets (`300M`, `1.5G`), latencies (`12ms`, `0.8s`, `1500us`) and sizes in bytes
(`512KB`, `1.5MB`, `1MiB`: KB = 1000 bytes, KiB = 1024)."""

from __future__ import annotations

import math
import re

from edgenas.errors import EdgeNASError

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_FLOPS_RE = re.compile(rf"^({_NUMBER})\s*([kKmMgGtT]?)$")
_TIME_RE = re.compile(rf"^({_NUMBER})\s*(ms|s|us|µs)$")
_BYTES_RE = re.compile(rf"^({_NUMBER})\s*([kKmMgG]i?)?[bB]?$")
_FLOPS_SCALE = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_TIME_SCALE_MS = {"ms": 1.0, "s": 1000.0, "us": 1e-3, "µs": 1e-3}


def parse_flops(text: str) -> int:
    """`300M` -> 300000000; accepts a plain count or a K/M/G/T suffix (one multiply-add = one FLOP)."""
    value = str(text).strip()
    match = _FLOPS_RE.match(value)
    if not match:
        raise EdgeNASError(f"bad FLOPs value {text!r}: expected a positive number with an optional K, M or G "
                           "suffix, such as 300M, 1.5G or 300000000")
    flops = float(match.group(1)) * _FLOPS_SCALE[match.group(3).lower()]
    if not math.isfinite(flops) or flops <= 0:
        raise EdgeNASError(f"bad FLOPs value {text!r}: expected a positive count, such as 300M")
    return round(flops)


def parse_latency_ms(text: str) -> float:
    """`12ms` -> 12.0, `0.8s` -> 800.0, `1500us` -> 1.5: a latency in milliseconds; the unit is required."""
    value = str(text).strip()
    match = _TIME_RE.match(value)
    if not match:
        raise EdgeNASError(f"bad latency value {text!r}: expected a positive number with a unit ms, s or us, "
                           "such as 12ms, 0.8s or 1500us")
    ms = float(match.group(1)) * _TIME_SCALE_MS[match.group(3)]
    if not math.isfinite(ms) or ms <= 0:
        raise EdgeNASError(f"bad latency value {text!r}: expected a positive time, such as 12ms")
    return ms


def parse_bytes(text: str, what: str = "size") -> int:
    """`512KB` -> 512000, `1.5MB` -> 1500000, `1MiB` -> 1048576, `300000` or `300000B` -> 300000: a size in bytes,
    decimal (KB, MB, GB) or binary (KiB, MiB, GiB) prefixes, the letters' case ignored."""
    value = str(text).strip()
    match = _BYTES_RE.match(value)
    if not match or (value[-1] in "iI"):  # `1Mi`: a binary prefix names bytes only with its B
        raise EdgeNASError(f"bad {what} {text!r}: expected a positive number of bytes with an optional unit B, KB, MB, "
                           "GB (powers of 1000) or KiB, MiB, GiB (powers of 1024), such as 512KB, 1.5MB or 1MiB")
    prefix = (match.group(3) or "").lower()
    scale = 1024 ** ("kmg".index(prefix[0]) + 1) if prefix.endswith("i") else _FLOPS_SCALE[prefix]
    size = float(match.group(1)) * scale
    if not math.isfinite(size) or round(size) <= 0:
        raise EdgeNASError(f"bad {what} {text!r}: expected a positive size, such as 512KB")
    return round(size)


def format_bytes(size: float) -> str:
    """262144 -> '262.1KB': one decimal with a KB, MB or GB suffix (powers of 1000)."""
    for suffix, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(size) >= scale:
            return f"{size / scale:.1f}{suffix}"
    return f"{size:.0f}B"


def format_flops(flops: float) -> str:
    """300836992 -> '300.8M': one decimal with a K/M/G suffix."""
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(flops) >= scale:
            return f"{flops / scale:.1f}{suffix}"
    return f"{flops:.0f}"


def format_params(count: int) -> str:
    """3504872 -> '3.50M'."""
    if count >= 1e6:
        return f"{count / 1e6:.2f}M"
    if count >= 1e3:
        return f"{count / 1e3:.1f}K"
    return str(count)

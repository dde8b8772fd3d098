"""The journal of a profile in progress (`OUT.partial`): every timing appended as soon as it is measured, so that a
profile killed or interrupted continues where it stopped when run again with the same settings.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgenas.errors import EdgeNASError
from edgenas.files import atomic_write_bytes


class Journal:
    """The timings of a profile in progress: a header line (what they were measured with), then one JSON line per
    (pass, piece) appended as soon as it is timed.

    An appended line reaches the file at once (a SIGKILL loses at most the piece being timed); a line cut short
    (a crash of the machine) and anything after it is dropped on reading. A journal whose header differs from this
    profile's settings is not reused.
    """

    def __init__(self, path: Path, done: dict[tuple[int, str], list[float]], resumed: int):
        self.path, self.done, self.resumed = path, done, resumed
        self._handle = None

    @classmethod
    def open(cls, path: Path, identity: dict, keys: list[str], passes: int, repeats: int, fresh: bool,
             log: Callable[[str], None]) -> Journal:
        import json

        header = {"partial_table": path.name.removesuffix(".partial"), "identity": identity}
        done: dict[tuple[int, str], list[float]] = {}
        if path.exists() and not fresh:
            done, reason = cls._read(path, header, set(keys), passes, repeats)
            if reason:
                log(f"not resuming from {path}: {reason}; measuring from the start")
            elif done:
                log(f"resuming the profile from {path}: {len(done)} of {len(keys) * passes} timings already "
                    "measured (--fresh measures everything again)")
        lines = [json.dumps(header)] + [json.dumps({"pass": p, "key": k, "times": t}) for (p, k), t in done.items()]
        try:
            atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())  # a clean file to append to
        except EdgeNASError as exc:
            table = path.with_name(header["partial_table"])
            raise EdgeNASError(f"{exc}: nothing was measured, and {table} is unchanged") from None
        journal = cls(path, done, len(done))
        try:
            journal._handle = path.open("a")
        except OSError as exc:
            raise EdgeNASError(f"cannot write {path}: {exc.strerror or exc}") from None
        return journal

    @staticmethod
    def _read(path: Path, header: dict, keys: set[str], passes: int, repeats: int):
        """(timings, "") from a journal of the same profile, or ({}, why it cannot be used)."""
        import json
        import math

        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            return {}, f"it cannot be read ({getattr(exc, 'strerror', None) or exc})"
        try:
            found = json.loads(lines[0]) if lines else None
        except json.JSONDecodeError:
            found = None
        if not isinstance(found, dict) or "identity" not in found:
            return {}, "it is not a profile journal"
        if found != header:
            ours, theirs = header["identity"], found.get("identity") or {}
            differ = [k for k in ours if ours[k] != (theirs.get(k) if isinstance(theirs, dict) else None)]
            return {}, f"it was measured with other settings ({', '.join(differ) or 'header'} differ)"
        done = {}
        for line in lines[1:]:
            try:
                record = json.loads(line)
                p, key, times = record["pass"], record["key"], record["times"]
                valid = (isinstance(p, int) and 0 <= p < passes and key in keys and isinstance(times, list)
                         and len(times) == repeats
                         and all(isinstance(t, float | int) and math.isfinite(t) and t >= 0 for t in times))
            except (json.JSONDecodeError, TypeError, KeyError):
                valid = False
            if not valid:
                break  # a torn last line, or damage: keep what came before
            done[(p, key)] = [float(t) for t in times]
        return done, ""

    def add(self, p: int, key: str, times: list[float]) -> None:
        import json

        self.done[(p, key)] = times
        try:
            self._handle.write(json.dumps({"pass": p, "key": key, "times": times}) + "\n")
            self._handle.flush()
        except OSError as exc:
            raise EdgeNASError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

"""`retrain_reseeded(source, out, retrain_seed)`: a finished run's network retrained once more from scratch under
another retraining seed, as a run of its own in `out` (`edgenas check --seeds`).

`out` gets the source's config.json with the setting `retrain_seed` set, the source's search (its history rows and
checkpoint: the architecture and the search's figures) and no retraining yet; `search --resume out` then retrains
it. Everything but the retraining's random draws (initial weights, dropout, batch order and augmentation:
retraining.py's `retrain_streams`) is the source's: data, split, recipe and epochs (those of the source's own
retraining, `edgenas train --epochs N`'s included). The folder appears whole (made as OUT.partial, then renamed), so
a stop while it is made leaves none to resume; once there, it is reused when finished and resumed when stopped.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from edgenas.errors import EdgeNASError
from edgenas.progress import silent
from edgenas.runs.checkpoint import Retraining, load_checkpoint, save_checkpoint
from edgenas.runs.folder import Run
from edgenas.searching.result import SearchResult, finished
from edgenas.searching.run import search
from edgenas.searching.staging import remove

COPIED = ("arch.json", "class_order.json", "candidates.json")  # the search's files, where the source has them


def retrain_reseeded(source: str | Path, out: str | Path, retrain_seed: int, progress: bool = False,
                     echo=None) -> SearchResult:
    """`source`'s network retrained under `retrain_seed` in `out`: reused when finished, resumed when stopped,
    else made from `source` and retrained."""
    out = Path(out)
    if (out / "summary.json").is_file():
        return finished(Run.open(out))
    if not (out / "config.json").is_file():
        _make(Run.open(source), out, retrain_seed)
    return search(resume=out, progress=progress, log=silent, echo=echo)


def _make(source: Run, out: Path, retrain_seed: int) -> None:
    """`out` as `source` was when its search ended, with `retrain_seed` in its settings."""
    base = load_checkpoint(source)
    if base is None or not base.searched:
        raise EdgeNASError(f"run {source.path} has no derived architecture to retrain again; finish it with "
                           f"`edgenas search --resume {source.path}`")
    config = source.config()
    config["settings"] = {**config["settings"], "retrain_seed": retrain_seed}
    partial = out.with_name(out.name + ".partial")
    remove(partial)  # a stop while it was made
    made = Run.create(partial, config)
    history = [row for row in source.history()[: base.history_rows] if row.get("phase") != "retrain"]
    made.set_history(history)  # before the checkpoint that counts its rows
    epochs = base.retraining.epochs if base.retraining.done else None  # `edgenas train --epochs N`'s N
    save_checkpoint(made, dataclasses.replace(base, history_rows=len(history),
                                              retrain=None if epochs is None else Retraining(total=epochs)))
    for name in COPIED:
        if source.has(name):
            shutil.copyfile(source.file(name), made.file(name))
    try:
        os.replace(partial, out)
    except OSError as exc:
        raise EdgeNASError(f"cannot move {partial} to {out}: {exc.strerror or exc}") from None

"""How a finished `macro` supernet ranks the architectures the final choice picks among (issue 38), offline.

The acceptance of issue 38 is lost or won in the budget's band [0.95B, B], where every candidate costs about the
same and a rule that needs no training (fewest skip layers) already reaches the top 4%. For each run folder of
`benchmarks/search_quality.py` (its final `supernet.pt`), this evaluates with inherited weights (batch norm
recalibrated, as search_quality's tau; `--score loss`: minus the validation cross-entropy, a score with less
sampling noise) a uniform sample of the band and all of the rule's ties, then reports Kendall's tau within the band
and within the ties, and what three choices would have derived from that supernet, scored on NAS-Bench-Macro:
- `eval` over N uniform draws of the band: the most accurate of N with inherited weights, averaged over 400 draws
  of N from the sample (what `--choice eval --choice-pool uniform --choice-candidates N` does, without the
  knapsack's own candidate);
- the rule's ties ordered by the supernet: its best tie;
- an additive surrogate: ridge regression of inherited accuracy on one-hot (layer, choice), its best in the band.

    python benchmarks/band_ranking.py bench-runs/search_quality/*-b0.7-* --out band_ranking.json [--sample 40]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.nasbench_macro import NasBenchMacro
from benchmarks.search_quality import inherited_accuracies

DRAWS = (8, 16, 24)


def measure(run_dir: Path, table: NasBenchMacro, sample: int, bn_batches: int, score: str) -> dict:
    """The band's sample and the rule's ties evaluated with the run's supernet."""
    from edgenas.runs.folder import Run
    from edgenas.runs.settings import SearchSettings

    budget = SearchSettings.of_run(Run.open(run_dir)).flops
    band = [e for e in table.within(budget) if e.flops >= 0.95 * budget]
    ties = table.fewest_skips(budget)
    drawn = [e.key for e in random.Random(0).sample(band, min(sample, len(band)))]
    keys = list(dict.fromkeys(drawn + [e.key for e in ties]))
    start = time.perf_counter()
    accuracies = inherited_accuracies(run_dir, keys, bn_batches, score)
    return {"budget": budget, "band": len(band), "sample": drawn, "ties": [e.key for e in ties],
            "inherited": dict(zip(keys, accuracies, strict=True)), "seconds": time.perf_counter() - start}


def analyse(measured: dict, table: NasBenchMacro) -> dict:
    from edgenas.cost.calibration import kendall_tau

    inherited, truth = measured["inherited"], table.accuracy
    sample, ties = measured["sample"], measured["ties"]
    rng = random.Random(1)
    draws = {n: statistics.fmean(truth(max(rng.sample(sample, n), key=inherited.get)) for _ in range(400))
             for n in DRAWS if n <= len(sample)}
    band = [e.key for e in table.within(measured["budget"]) if e.flops >= 0.95 * measured["budget"]]
    surrogate = _surrogate(inherited, band)
    return {"tau_band": kendall_tau([inherited[k] for k in sample], [truth(k) for k in sample]),
            "tau_ties": kendall_tau([inherited[k] for k in ties], [truth(k) for k in ties]),
            "rule_mean": statistics.fmean(truth(k) for k in ties),
            "best_tie_by_supernet": truth(max(ties, key=inherited.get)),
            "eval_uniform": {str(n): acc for n, acc in draws.items()},
            "surrogate_pick": truth(surrogate), "surrogate_key": surrogate}


def _surrogate(inherited: dict, band: list[str], ridge: float = 1.0) -> str:
    """The band's architecture that an additive model of inherited accuracy (one-hot layer x choice) ranks first."""
    import numpy as np

    def features(key: str):
        row = np.zeros(3 * len(key))
        row[[3 * i + int(c) for i, c in enumerate(key)]] = 1.0
        return row

    x = np.stack([features(k) for k in inherited])
    y = np.array(list(inherited.values()))
    weights = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ (y - y.mean()))
    return max(band, key=lambda k: float(features(k) @ weights))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="JSON of the evaluations (reused when run again)")
    parser.add_argument("--sample", type=int, default=40, help="uniform draws of the band evaluated")
    parser.add_argument("--bn-batches", type=int, default=10)
    parser.add_argument("--score", choices=["accuracy", "loss"], default="accuracy",
                        help="inherited accuracy, or minus the mean validation cross-entropy")
    args = parser.parse_args()
    table = NasBenchMacro.load()
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for run_dir in args.runs:
        if str(run_dir) not in results:
            results[str(run_dir)] = measure(run_dir, table, args.sample, args.bn_batches, args.score)
            args.out.write_text(json.dumps(results, indent=1))
        figures = analyse(results[str(run_dir)], table)
        print(run_dir.name, json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in figures.items()}),
              flush=True)


if __name__ == "__main__":
    main()

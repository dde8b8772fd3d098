"""The search: a run from start to finish and its resume. `run.search` (the entry: the run folder, the search, the
retraining, the finish), `context` (settings resolved, `budgets` decided once), `job` (the work under way and its
checkpoints), `plan` (phases, epochs of work, estimates), `phases` (the supernet's phase loop) and `pruning`,
`final_choice` (and the baselines' networks), `retraining`, `summary` and `result`, `retrain` (`edgenas train`) with
its `staging` folder, `evaluate` (`edgenas eval`).
"""

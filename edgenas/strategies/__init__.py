"""Search strategies: DA-NAS progressive data-adapted pruning and its baselines, and the constrained derivation.

A strategy sees the supernet, the data and a cost model; it never reads files or parses options.
"""

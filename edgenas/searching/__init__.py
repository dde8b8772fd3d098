"""The search: a run from start to finish and its resume (DA-NAS phases, final choice, retraining, summary).
"""

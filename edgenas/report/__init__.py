"""Reports of runs: the HTML report, its plots, and the comparison of several runs.
"""

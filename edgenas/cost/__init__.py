"""What a network costs: FLOPs (fvcore), latency tables and their calibration and fidelity, the cost model the
search and the budgets use, and the named architectures defined by their cost.
"""

"""Profiling: measuring every piece of a space on this machine (or another device) into a latency table.
"""

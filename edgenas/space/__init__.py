"""The search space: its spec (stages, candidates), architectures as data, the blocks, the standalone network
and the supernet built from the same blocks.
"""

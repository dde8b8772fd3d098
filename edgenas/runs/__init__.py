"""A run on disk: its folder, its settings (config.json), its summary and weights, read back by every command.
"""

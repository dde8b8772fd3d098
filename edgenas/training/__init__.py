"""Training: devices and precision, supernet and standalone steps, evaluation, and torchrun's ranks (DDP).
"""

"""The data: datasets (digits, ImageFolder, CIFAR folders, .npz), their splits, decoding, cache and batches.
"""

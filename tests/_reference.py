"""Plain-NumPy float64 reference for the kernels: slow, obvious, and independent of them."""

import numpy as np


def nearest_centers(X, centers):
    """Labels (lowest index on ties) and squared distances to the nearest center, in float64."""
    X = np.asarray(X, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64)
    sq = ((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    labels = np.argmin(sq, axis=1)
    return labels, sq[np.arange(len(X)), labels]


def inertia(X, centers, labels, sample_weight=None):
    X = np.asarray(X, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64)
    weights = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    return float((weights * ((X - centers[labels]) ** 2).sum(axis=1)).sum())


def minibatch_update(X, sample_weight, centers, weight_sums, labels):
    """Sculley's update: each center moves to the running weighted mean of its rows.

    Returns (new centers, new weight sums); the inputs are not modified.
    """
    X = np.asarray(X, dtype=np.float64)
    centers = np.array(centers, dtype=np.float64)
    weight_sums = np.array(weight_sums, dtype=np.float64)
    weights = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    for j in range(len(centers)):
        mine = labels == j
        batch_weight = weights[mine].sum()
        if batch_weight > 0:
            total = centers[j] * weight_sums[j] + (weights[mine, None] * X[mine]).sum(axis=0)
            weight_sums[j] += batch_weight
            centers[j] = total / weight_sums[j]
    return centers, weight_sums


def distances(X, centers):
    X = np.asarray(X, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64)
    return np.sqrt(((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2))

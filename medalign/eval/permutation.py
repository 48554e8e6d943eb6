"""The paired sign-flip permutation test, shared by `stage=compare` (runs on the same
questions, compare/stats.py) and the RL stage's reward-hacking trace (a prompt's last
fifth against its own first, rewards/hacking.py): under the null that the two sides are
exchangeable within a unit, each unit's summed difference keeps or flips its sign at
random. Here, below both, so neither imports up the layers (medalign/layers.py).
"""

from __future__ import annotations

import numpy as np

CHUNK = 500  # resamples per matrix product: bounds memory at CHUNK x units


def cluster_sums(values: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sums of `values` per cluster, shape (..., C); questions per cluster, shape (C,))."""
    width = int(index.max()) + 1 if len(index) else 0
    counts = np.bincount(index, minlength=width).astype(float)
    values = np.atleast_2d(values)
    sums = np.stack([np.bincount(index, weights=row, minlength=width) for row in values])
    return sums, counts


def sign_flip_p(diffs: np.ndarray, index: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Two-sided p of the paired permutation test for each row of `diffs` (rows x n):
    each cluster's summed difference keeps or flips its sign at random (the two runs'
    labels swapped within the cluster). One sign matrix serves every row."""
    sums, _ = cluster_sums(diffs, index)
    observed = np.abs(sums.sum(axis=1))
    tolerance = 1e-9 * np.maximum(1.0, np.abs(sums).sum(axis=1))
    rng = np.random.default_rng(seed)
    extreme = np.zeros(len(sums))
    done = 0
    while done < resamples:
        chunk = min(CHUNK, resamples - done)
        # float64: sums of 0/1 differences are exact, so ties with the observed value are
        # counted the same whatever else is in the batch (float32 rounding was not)
        signs = rng.integers(0, 2, size=(chunk, sums.shape[1])).astype(np.float64) * 2 - 1
        flipped = np.abs(signs @ sums.T)
        extreme += np.sum(flipped >= observed - tolerance, axis=0)
        done += chunk
    p = (1 + extreme) / (1 + resamples)
    return np.where(observed == 0.0, 1.0, p)

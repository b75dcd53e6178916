"""Regenerate the gallery's images (docs/gallery/*.png) that docs/gallery.md shows.

    python docs/make_gallery.py

Needs mbk with matplotlib (``pip install ".[plot]"``). Every image comes from a fixed seed,
so a run reproduces them; each is about 100 KB at 100 dpi.
"""

import sys
from pathlib import Path

import numpy as np

import mbk
from mbk.datasets import load_housing

GALLERY = Path(__file__).resolve().parent / "gallery"
DPI = 100
HOUSING_FEATURES = ["median_income", "latitude", "longitude"]


def save(ax, name):
    path = GALLERY / name
    ax.figure.savefig(path, dpi=DPI)
    print(f"wrote {path.relative_to(GALLERY.parent.parent)} ({path.stat().st_size // 1024} KB)")


def housing():
    """The classic example: 6 clusters of the districts on income and position."""
    X, _ = load_housing(HOUSING_FEATURES)
    model = mbk.MiniBatchKMeans(n_clusters=6, random_state=0).fit(X)
    ax = mbk.plot_clusters(X, model.labels_, model, x="longitude", y="latitude",
                           feature_names=HOUSING_FEATURES)  # fmt: skip
    ax.set_title("California housing: 6 clusters on median income and position")
    save(ax, "housing_clusters.png")
    ax = mbk.plot_clusters(X, model.labels_, model, x="median_income", y="latitude",
                           feature_names=HOUSING_FEATURES)  # fmt: skip
    ax.set_title("The same clusters: median income against latitude")
    save(ax, "housing_income_latitude.png")


def blobs(n_samples, n_features, n_centers, seed):
    """Gaussian blobs of different spreads around uniform random centers."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-10, 10, size=(n_centers, n_features))
    spreads = rng.uniform(0.5, 2.0, size=n_centers)
    which = rng.integers(0, n_centers, n_samples)
    noise = rng.normal(size=(n_samples, n_features)) * spreads[which, None]
    return (centers[which] + noise).astype(np.float32)


def convergence_model():
    """A fit on generated data that stops early: 20 clusters for 16 blobs from random
    initial centers, so the inertia has a way to fall, and with reassignment_ratio=0.1 (10
    times the default) the centers of small clusters are moved on the way."""
    X = blobs(200_000, 8, 16, seed=0)
    model = mbk.MiniBatchKMeans(n_clusters=20, init="random", n_init=1, batch_size=1024,
                                reassignment_ratio=0.1, max_no_improvement=10,
                                random_state=0)  # fmt: skip
    return model.fit(X)


def convergence():
    model = convergence_model()
    if not hasattr(model, "history_"):
        print("skipped convergence.png: this mbk records no history_ yet (issue 16, part 3)")
        return
    ax = mbk.plot_convergence(model)
    ax.set_title("A fit on 200,000 generated rows, stopped early")
    save(ax, "convergence.png")


def main():
    GALLERY.mkdir(exist_ok=True)
    housing()
    convergence()
    return 0


if __name__ == "__main__":
    sys.exit(main())

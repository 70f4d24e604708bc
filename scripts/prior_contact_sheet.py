"""Render the pose prior's contact sheet (docs/prior_samples.png) and print its rejection statistics.

.venv/bin/python scripts/prior_contact_sheet.py [--out docs/prior_samples.png] [--samples 24] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/prior_samples.png")
    ap.add_argument("--samples", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from handssca.hand import HandModel
    from handssca.hand.collisions import HandCollider, sample_plausible_poses
    from handssca.hand.prior import (
        angles_to_matrices,
        sample_anatomical_angles,
    )
    from handssca.pictures import save_figure
    from handssca.pictures.sheets import prior_sheet

    model = HandModel.default().double()
    axes, limits = model.extras["axes"], model.extras["limits"]
    collider = HandCollider.from_model(model)
    rng = np.random.default_rng(args.seed)
    raw = collider.penetration(angles_to_matrices(sample_anatomical_angles(5000, limits, rng), axes)) * 1000
    q = np.quantile(raw, [0.5, 0.9, 0.99])
    print(f"{model.describe()}; {collider.num_capsules} capsules, {len(collider.vertex_ids)} tested vertices")
    print(
        f"unchecked draws: penetration median {q[0]:.1f} mm, 90% {q[1]:.1f} mm, 99% {q[2]:.1f} mm, max "
        f"{raw.max():.1f} mm; rejected at {collider.max_depth * 1000:.0f} mm: {(raw > collider.max_depth * 1000).mean():.1%}"
    )
    t = time.perf_counter()
    sample_plausible_poses(model, 1000, rng)
    print(f"1000 checked poses in {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    for _ in range(200):
        sample_plausible_poses(model, 1, rng)
    print(f"one checked pose: {(time.perf_counter() - t) / 200 * 1000:.2f} ms")
    path = save_figure(prior_sheet(model, samples=args.samples, seed=args.seed), args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

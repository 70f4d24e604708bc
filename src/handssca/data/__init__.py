"""Datasets (FreiHAND, HO3D, DexYCB, synthetic), the common sample contract and the crop pipeline."""

from handssca.data.synthetic import SyntheticHands

__all__ = ["SyntheticHands"]

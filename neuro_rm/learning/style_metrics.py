"""How well generated images paint the requested style: classifier agreement per style, and KID.

KID (Bińkowski et al., "Demystifying MMD GANs", ICLR 2018) is the squared maximum mean discrepancy
between two feature sets under the polynomial kernel k(x, y) = (x·y / d + 1)^3, estimated without
bias; unlike FID it is unbiased for small sample counts, which is all a CPU run affords.  Features
are the style classifier's pooled activity, since no ImageNet network may be downloaded here.
"""

from __future__ import annotations

import torch
from torch import nn

from neuro_rm.learning.metrics import predict_logits


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3) -> torch.Tensor:
    return (x @ y.T / x.shape[1] + 1) ** degree


def kid(x: torch.Tensor, y: torch.Tensor, degree: int = 3) -> float:
    """Unbiased MMD² estimate between feature sets x (m, d) and y (n, d); 0 when they match in law."""
    m, n = len(x), len(y)
    if m < 2 or n < 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"kid needs at least two samples per set with equal feature sizes, got {tuple(x.shape)}, {tuple(y.shape)}")
    x, y = x.double(), y.double()
    k_xx, k_yy, k_xy = polynomial_kernel(x, x, degree), polynomial_kernel(y, y, degree), polynomial_kernel(x, y, degree)
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


@torch.no_grad()
def features(classifier: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    classifier.eval()
    return torch.cat([classifier.features(chunk) for chunk in images.split(batch_size)])


def predict_styles(classifier: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return predict_logits(classifier, images).argmax(dim=1)


def style_accuracy(predicted: torch.Tensor, requested: torch.Tensor) -> dict[int, float]:
    """Per requested style, the share of its images the classifier assigned to that style."""
    hits = predicted == requested
    return {int(s): float(hits[requested == s].float().mean()) for s in torch.unique(requested)}


def mean_over(per_style: dict[int, float], styles: list[int]) -> float:
    """Mean of a per-style figure over ``styles`` (each style weighs the same)."""
    if not styles:
        raise ValueError("mean_over needs at least one style")
    return sum(per_style[s] for s in styles) / len(styles)

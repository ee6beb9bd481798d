"""A style dataset the project draws itself: 10 visual styles x 3 contents, 32x32 RGB, from a seed.

The paper's Canvas10 is not available, so styles are made of what a painter would change — palette,
texture and stroke — while the content (circle, square, triangle) is drawn by a separate jittered
shape.  A style classifier must therefore look at how an image is painted, not at what it shows.
Every (split, seed, style, content) group has its own generator, so a group is the same whatever
else is drawn and different splits never share an image.  Drawing 1,000 images takes well under a
second, so the set is generated at run time rather than stored.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

SIZE = 32
CONTENTS = ("circle", "square", "triangle")
RGB = tuple[float, float, float]


@dataclass(frozen=True)
class Style:
    """How an image is painted: a texture mixing two background and two fill colours, and a stroke."""

    name: str
    texture: str
    background: tuple[RGB, RGB]
    fill: tuple[RGB, RGB]
    stroke: RGB = (0.0, 0.0, 0.0)
    stroke_width: float = 0.0  # pixels; 0: no outline
    frequency: float = 5.0  # texture periods across the image


STYLES: tuple[Style, ...] = (
    Style("candy stripes", "stripes", ((0.96, 0.90, 0.80), (0.80, 0.22, 0.20)), ((0.10, 0.12, 0.38), (0.30, 0.35, 0.65))),
    Style("polka dots", "dots", ((0.08, 0.10, 0.32), (0.95, 0.85, 0.20)), ((0.98, 0.55, 0.10), (0.95, 0.85, 0.20)),
          (1.0, 1.0, 1.0), 1.0),
    Style("checkerboard", "checker", ((0.15, 0.55, 0.25), (0.90, 0.95, 0.88)), ((0.05, 0.05, 0.05), (0.45, 0.45, 0.45)),
          frequency=4.0),
    Style("purple hatch", "hatch", ((0.82, 0.72, 0.96), (0.42, 0.18, 0.58)), ((0.96, 0.45, 0.70), (0.70, 0.10, 0.45)),
          (0.25, 0.05, 0.35), 1.5, 6.0),
    Style("sunset gradient", "gradient", ((0.98, 0.62, 0.20), (0.88, 0.28, 0.50)), ((0.25, 0.10, 0.35), (0.35, 0.15, 0.45))),
    Style("earth sponge", "sponge", ((0.45, 0.30, 0.15), (0.80, 0.66, 0.42)), ((0.30, 0.42, 0.12), (0.62, 0.72, 0.30)),
          (0.20, 0.12, 0.05), 1.0),
    Style("teal waves", "waves", ((0.04, 0.42, 0.48), (0.55, 0.92, 0.92)), ((0.98, 0.98, 0.96), (0.98, 0.55, 0.50)),
          frequency=4.0),
    Style("blueprint", "grid", ((0.10, 0.24, 0.66), (0.92, 0.95, 1.00)), ((0.38, 0.58, 0.92), (0.92, 0.95, 1.00)),
          (0.95, 0.97, 1.00), 1.5, 4.0),
    Style("magenta rings", "rings", ((0.50, 0.50, 0.52), (0.08, 0.08, 0.10)), ((0.88, 0.14, 0.66), (0.98, 0.80, 0.92))),
    Style("ink sketch", "paper", ((0.97, 0.96, 0.92), (0.86, 0.84, 0.78)), ((0.97, 0.96, 0.92), (0.86, 0.84, 0.78)),
          (0.05, 0.05, 0.08), 2.5),
)
NUM_STYLES = len(STYLES)


@dataclass(frozen=True)
class Jitter:
    """Per-image randomness within one (style, content) group."""

    shift: float = 5.0  # pixels the shape's centre moves from the image centre
    size: tuple[float, float] = (8.0, 12.0)  # shape radius, pixels
    tilt_deg: float = 12.0  # texture rotation
    frequency: float = 0.12  # relative change of the texture frequency
    colour: float = 0.05  # per-channel colour offset
    pixel_noise: float = 0.02


# ====================================================================== textures: (u, v, phase, freq, gen) → [0, 1]
def _soft(x: torch.Tensor, sharpness: float = 4.0) -> torch.Tensor:
    return torch.sigmoid(sharpness * x)


def _sponge(u: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    coarse = torch.rand(len(u), 1, 6, 6, generator=gen)
    smooth = F.interpolate(coarse, size=u.shape[-2:], mode="bicubic", align_corners=True)[:, 0]
    return _soft(smooth - 0.5, 10.0)


TEXTURES: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]] = {
    "stripes": lambda u, v, p, f, g: _soft(torch.sin(2 * math.pi * f * v + p)),
    "dots": lambda u, v, p, f, g: _soft(torch.cos(2 * math.pi * f * u + p) + torch.cos(2 * math.pi * f * v + p) - 1.0),
    "checker": lambda u, v, p, f, g: _soft(torch.sin(2 * math.pi * f * u + p) * torch.sin(2 * math.pi * f * v + p), 8.0),
    "hatch": lambda u, v, p, f, g: _soft(torch.cos(2 * math.pi * f * (u + v) / math.sqrt(2) + p) - 0.3),
    "gradient": lambda u, v, p, f, g: (v + 0.15 * torch.sin(p)).clamp(0, 1),
    "sponge": lambda u, v, p, f, g: _sponge(u, g),
    "waves": lambda u, v, p, f, g: _soft(torch.sin(2 * math.pi * f * (v + 0.06 * torch.sin(2 * math.pi * 2 * u + p)) + p)),
    "grid": lambda u, v, p, f, g: torch.maximum(
        _soft(torch.cos(2 * math.pi * f * u + p) - 0.8, 8.0), _soft(torch.cos(2 * math.pi * f * v + p) - 0.8, 8.0)
    ),
    "rings": lambda u, v, p, f, g: _soft(torch.sin(2 * math.pi * f * torch.sqrt((u - 0.5) ** 2 + (v - 0.5) ** 2) * 2 + p)),
    "paper": lambda u, v, p, f, g: 0.3 * torch.rand(u.shape, generator=g),
}


# ====================================================================== shapes: signed distance in pixels
def _shape_distance(content: int, x: torch.Tensor, y: torch.Tensor, radius: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Signed distance (pixels, negative inside) of each pixel to the content's outline."""
    c, s = torch.cos(angle), torch.sin(angle)
    xr, yr = c * x + s * y, -s * x + c * y
    if content == 0:
        return torch.sqrt(x**2 + y**2) - radius
    if content == 1:
        half = radius * 0.85
        return torch.maximum(xr.abs(), yr.abs()) - half
    # equilateral triangle: the largest distance to its three edges (normals 120° apart)
    edges = [xr * math.cos(a) + yr * math.sin(a) for a in (math.pi / 2, math.pi / 2 + 2 * math.pi / 3, math.pi / 2 + 4 * math.pi / 3)]
    return torch.stack(edges).amax(dim=0) - radius * 0.55


def _mix(pair: tuple[RGB, RGB], t: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    a, b = (torch.tensor(c).view(1, 3, 1, 1) for c in pair)
    return a + (b - a) * t.unsqueeze(1) + offset


def draw(spec: Style, content: int, n: int, generator: torch.Generator, jitter: Jitter = Jitter()) -> torch.Tensor:
    """``n`` images (n, 3, 32, 32) in [0, 1] of one content painted in one style."""
    g = generator
    uniform = lambda *shape: torch.rand(*shape, generator=g) * 2 - 1  # noqa: E731
    grid = (torch.arange(SIZE, dtype=torch.float32) + 0.5) / SIZE
    v0, u0 = torch.meshgrid(grid, grid, indexing="ij")
    tilt = (uniform(n) * math.radians(jitter.tilt_deg)).view(n, 1, 1)
    u = 0.5 + (u0 - 0.5) * torch.cos(tilt) - (v0 - 0.5) * torch.sin(tilt)
    v = 0.5 + (u0 - 0.5) * torch.sin(tilt) + (v0 - 0.5) * torch.cos(tilt)
    phase = (torch.rand(n, generator=g) * 2 * math.pi).view(n, 1, 1)
    freq = (spec.frequency * (1 + jitter.frequency * uniform(n))).view(n, 1, 1)
    texture = TEXTURES[spec.texture](u, v, phase, freq, g)

    centre = uniform(n, 2) * jitter.shift
    radius = (jitter.size[0] + torch.rand(n, generator=g) * (jitter.size[1] - jitter.size[0])).view(n, 1, 1)
    angle = (torch.rand(n, generator=g) * 2 * math.pi).view(n, 1, 1)
    px = (u0 * SIZE - SIZE / 2).expand(n, -1, -1) - centre[:, 0].view(n, 1, 1)
    py = (v0 * SIZE - SIZE / 2).expand(n, -1, -1) - centre[:, 1].view(n, 1, 1)
    distance = _shape_distance(content, px, py, radius, angle)
    inside = (0.5 - distance).clamp(0, 1).unsqueeze(1)

    offset = (uniform(n, 3) * jitter.colour).view(n, 3, 1, 1)
    image = _mix(spec.background, texture, offset)
    image = image + (_mix(spec.fill, texture, offset) - image) * inside
    if spec.stroke_width > 0:
        outline = (spec.stroke_width / 2 + 0.5 - distance.abs()).clamp(0, 1).unsqueeze(1)
        image = image + (torch.tensor(spec.stroke).view(1, 3, 1, 1) - image) * outline
    image = image + jitter.pixel_noise * torch.randn(image.shape, generator=g)
    return image.clamp(0, 1)


def _group_generator(split: str, seed: int, style: int, content: int) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(f"{split}/{seed}/{style}/{content}".encode()))


def make_styles(
    n_per: int = 40, seed: int = 0, split: str = "train", styles: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images (N, 3, 32, 32) in [0, 1], style labels, content labels), ``n_per`` per (style, content).

    Deterministic in (``n_per``, ``seed``, ``split``); splits with different names are independent draws.
    """
    if n_per < 1:
        raise ValueError(f"make_styles needs n_per >= 1, got {n_per}")
    chosen = list(range(NUM_STYLES)) if styles is None else list(styles)
    bad = [s for s in chosen if not 0 <= s < NUM_STYLES]
    if bad:
        raise ValueError(f"unknown style id(s) {bad}; styles are 0..{NUM_STYLES - 1}")
    images, style_labels, content_labels = [], [], []
    for style in chosen:
        for content in range(len(CONTENTS)):
            images.append(draw(STYLES[style], content, n_per, _group_generator(split, seed, style, content)))
            style_labels.append(torch.full((n_per,), style))
            content_labels.append(torch.full((n_per,), content))
    return torch.cat(images), torch.cat(style_labels), torch.cat(content_labels)


def random_style(generator: torch.Generator) -> Style:
    """A style with random colours, texture kind, stroke and frequency (almost surely none of ``STYLES``)."""
    colour = lambda: tuple(float(v) for v in torch.rand(3, generator=generator))  # noqa: E731
    kinds = sorted(TEXTURES)
    kind = kinds[int(torch.randint(len(kinds), (1,), generator=generator))]
    width = float(torch.tensor([0.0, 1.0, 1.5, 2.5])[torch.randint(4, (1,), generator=generator)])
    frequency = 3.5 + 3.0 * float(torch.rand(1, generator=generator))
    return Style("random", kind, (colour(), colour()), (colour(), colour()), colour(), width, frequency)


def make_generic(n_styles: int = 200, n_per: int = 4, seed: int = 0) -> torch.Tensor:
    """Images (n_styles * 3 * n_per, 3, 32, 32) painted in random styles: a generic corpus.

    The autoencoder learns from it, so it codes textures and colours in general and never sees the
    ten styles the diffusion model learns, keeps or forgets.
    """
    generator = torch.Generator().manual_seed(zlib.crc32(f"generic/{seed}".encode()))
    return torch.cat([draw(random_style(generator), content, n_per, generator)
                      for _ in range(n_styles) for content in range(len(CONTENTS))])


def save_grid(images: torch.Tensor, path: str, columns: int, row_labels: Sequence[str] | None = None,
              title: str = "") -> None:
    """Tile images (N, 3, H, W) in [0, 1] row by row into one PNG, with a label per row.

    Saved with a 256-colour palette: about a third of the size of a true-colour PNG, small enough for
    grids to live in the repository's docs.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    n, _, h, w = images.shape
    rows = math.ceil(n / columns)
    canvas = torch.ones(rows * (h + 2), columns * (w + 2), 3)
    for i, image in enumerate(images.clamp(0, 1)):
        r, c = divmod(i, columns)
        canvas[r * (h + 2) + 1 : r * (h + 2) + 1 + h, c * (w + 2) + 1 : c * (w + 2) + 1 + w] = image.permute(1, 2, 0)
    fig, ax = plt.subplots(figsize=(columns * 0.42 + (1.6 if row_labels else 0.2), rows * 0.42 + 0.4), dpi=100)
    ax.imshow(canvas.numpy(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([r * (h + 2) + h / 2 for r in range(rows)] if row_labels else [])
    if row_labels:
        ax.set_yticklabels(list(row_labels), fontsize=8)
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.canvas.draw()
    rendered = Image.frombuffer("RGBA", fig.canvas.get_width_height(), bytes(fig.canvas.buffer_rgba()))
    plt.close(fig)
    rendered.convert("RGB").quantize(256).save(path, optimize=True)

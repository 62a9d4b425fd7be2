"""Writes a folder of generated "photos" for measuring what a config does on your own photos: a
circle, a square or a triangle (the class) of a random colour, size, place and turn, on a noisy,
striped, gradient or blocky background, 200-500 pixels wide at one of six aspect ratios, as JPEG.
Unlike the tests' easy folders, nothing but the shape tells the classes apart.

    python scripts/make_photos.py --out=data/shapes --count=450 [--seed=0]

Another --seed gives another folder of the same kind (a hidden test folder). Deterministic.
"""
import argparse
import os
import sys

import numpy as np

CLASSES = ("circle", "square", "triangle")
ASPECTS = (1.0, 4 / 3, 3 / 4, 16 / 9, 9 / 16, 3 / 2)  # width / height
BACKGROUNDS = ("noise", "stripes", "gradient", "blocks")


def background(rng, height, width):
    kind = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "noise":
        image = a + rng.normal(0, rng.uniform(20, 60), (height, width, 3))
    elif kind == "stripes":
        angle, period = rng.uniform(0, np.pi), rng.uniform(8, 40)
        wave = (np.sin((x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / period) > 0)[..., None]
        image = np.where(wave, a, b)
    elif kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        t = x * np.cos(angle) + y * np.sin(angle)
        t = ((t - t.min()) / max(float(np.ptp(t)), 1.0))[..., None]
        image = a * (1 - t) + b * t
    else:
        cells = rng.integers(3, 12)
        colours = rng.uniform(0, 255, (cells, cells, 3))
        image = colours[(y * cells / height).astype(int), (x * cells / width).astype(int)]
    return image + rng.normal(0, 8, (height, width, 3)), y, x


def shape_mask(rng, name, y, x):
    height, width = y.shape
    radius = rng.uniform(0.15, 0.35) * min(height, width)
    cy, cx = rng.uniform(radius, height - radius), rng.uniform(radius, width - radius)
    angle = rng.uniform(0, 2 * np.pi)
    dy, dx = y - cy, x - cx
    u, v = dx * np.cos(angle) + dy * np.sin(angle), -dx * np.sin(angle) + dy * np.cos(angle)
    if name == "circle":
        return u * u + v * v <= radius * radius
    if name == "square":
        half = radius / np.sqrt(2) * 1.2
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    corners = [angle + k * 2 * np.pi / 3 for k in range(3)]  # an equilateral triangle's inside: 3 half-planes
    inside = np.ones_like(u, bool)
    for corner in corners:
        inside &= dx * np.cos(corner + np.pi) + dy * np.sin(corner + np.pi) <= radius / 2
    return inside


def photo(rng, name):
    width = int(rng.integers(200, 501))
    height = int(round(width / ASPECTS[rng.integers(len(ASPECTS))]))
    image, y, x = background(rng, height, width)
    mask = shape_mask(rng, name, y, x)[..., None]
    colour = rng.uniform(0, 255, 3)
    shading = 1 + 0.25 * (x / width - 0.5)[..., None]  # light from one side
    image = np.where(mask, colour * shading + rng.normal(0, 6, image.shape), image)
    return np.clip(image, 0, 255).astype(np.uint8)


def write(out, count, seed):
    import tensorflow as tf  # only here: --help stays fast

    rng = np.random.default_rng(seed)
    for i in range(count):
        name = CLASSES[i % len(CLASSES)]
        os.makedirs(os.path.join(out, name), exist_ok=True)
        data = tf.io.encode_jpeg(photo(rng, name), quality=int(rng.integers(80, 96))).numpy()
        with open(os.path.join(out, name, f"{seed:02d}_{i:05d}.jpg"), "wb") as f:
            f.write(data)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="the folder to write (one sub-folder per class)")
    parser.add_argument("--count", type=int, default=450, help="photos in all, shared equally by the classes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.count < len(CLASSES):
        sys.exit(f"error: --count={args.count}: at least {len(CLASSES)}, one per class")
    if os.path.exists(args.out) and os.listdir(args.out):
        sys.exit(f"error: --out={args.out} is not empty; give a new folder (nothing there is overwritten)")
    write(args.out, args.count, args.seed)
    print(f"wrote {args.count} photos of {len(CLASSES)} classes to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

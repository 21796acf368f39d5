#!/usr/bin/env python3
"""Builds the benchmark corpus of the data-path, models and planner benchmarks (benches/).

What it builds, in --out DIR:
  DIR/<photo-stem>_<n>.jpg   --count crops of --size x --size pixels, saved the
                             way a practitioner's JPEG folder usually is: Pillow /
                             libjpeg baseline, --quality (90), chroma 4:2:0,
                             not progressive, not optimised;
  DIR/source/<same>.png      the exact crop pixels before JPEG encoding (lossless),
                             so the benchmark can measure the PSNR of the JPEG and
                             of spectradb's format against them (off: --no-source);
  DIR/MANIFEST.txt           the parameters, then each photo used (path, size, crops).

Real photos only, no synthetic images. By default: the repository's photos
(tests/data/photos/{dev,imagenet-labeled}) and the nature photographs of
Debian's mate-backgrounds package (/usr/share/backgrounds/mate/nature; its
abstract/ and desktop/ folders, like ukui-wallpapers, hold rendered art and are
not used). --photos (repeatable) or SPECTRADB_CORPUS_PHOTOS (paths separated
by ':') replace them: each is a folder (its *.jpg, *.jpeg and *.png) or a glob. Each large photo is first downscaled by a random factor between 1x
and 4x (LANCZOS; never below the crop size), so that crops look like typical
512 px photos rather than texture patches; a few scales per photo, several
random crops per scale. Photos whose short side is below the crop size are
scaled up to it (at most 1/MIN_SHORT = 1.33x); smaller ones are skipped.
Crops are spread over the photos in proportion to sqrt(area), capped by the
distinct positions a photo offers (a 512x512 photo gives exactly one crop).
The default photos offer about 5,400 distinct crops; --mirror doubles that
(every second crop of a scale is flipped left to right), enough for the
10,000-photo corpus of the scale benchmark (benches/scale.rs):

    python3 scripts/make_corpus.py --out bench-data/corpus10k --count 10000 --mirror --no-source

Deterministic for a given --seed (random.Random(seed)) and set of photos. A
rerun with the same parameters over a complete corpus does nothing; otherwise
the old *.jpg, source/*.png and MANIFEST.txt in DIR are replaced.

    python3 scripts/make_corpus.py --out DIR [--count 1000] [--size 512] [--quality 90] [--seed 0]
                                   [--no-source] [--mirror] [--photos DIR_OR_GLOB ...]
"""
import argparse
import glob
import math
import os
import random
import sys

from PIL import Image, ImageOps

VERSION = 2  # bump when the way crops are cut changes, so old corpora are rebuilt
MIN_SHORT = 0.75  # photos with a short side below MIN_SHORT * size are skipped
GRID = 64  # a photo offers one crop position per GRID pixels of slack
CROPS_PER_SCALE = 8
PHOTOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "photos")
DEFAULT_SOURCES = [
    os.path.join(PHOTOS, "dev"),
    os.path.join(PHOTOS, "imagenet-labeled"),
    "/usr/share/backgrounds/mate/nature/*.jpg",
]


def patterns(source):
    """Globs for one source: a folder's photos, or the glob itself."""
    if os.path.isdir(source):
        return [os.path.join(source, f"*.{ext}") for ext in ("jpg", "jpeg", "png")]
    return [source]


def load(path, size):
    """The photo as RGB, scaled up if its short side is a little below size; None if too small."""
    with Image.open(path) as im:
        im = im.convert("RGB")
    short = min(im.size)
    if short < MIN_SHORT * size:
        return None
    if short < size:
        f = size / short
        im = im.resize((max(size, round(im.width * f)), max(size, round(im.height * f))), Image.LANCZOS)
    return im


def allocate(photos, count, size, mirror=False):
    """Crops per photo: proportional to sqrt(area), at most one per GRID x GRID cell of slack
    (two with mirror: the cell's crop and its mirror image)."""
    weight = [math.sqrt(im.width * im.height) for _, im in photos]
    per_cell = 2 if mirror else 1
    cap = [per_cell * (1 + (im.width - size) // GRID) * (1 + (im.height - size) // GRID) for _, im in photos]
    if sum(cap) < count:
        more = "" if mirror else " (--mirror doubles them)"
        sys.exit(f"the photos offer only {sum(cap)} distinct crops, fewer than --count {count}{more}")
    n = [0] * len(photos)
    for _ in range(count):  # largest remaining share first (D'Hondt), deterministic
        i = max((i for i in range(len(photos)) if n[i] < cap[i]), key=lambda i: weight[i] / (n[i] + 1))
        n[i] += 1
    return n


def crops(im, n, size, rng, mirror=False):
    """n random size x size crops of im, at a few random downscales (1x to 4x); with
    mirror, every second crop is flipped left to right."""
    max_f = min(4.0, min(im.size) / size)
    for s in range(math.ceil(n / CROPS_PER_SCALE)):
        f = rng.uniform(1.0, max_f) if max_f > 1.0 else 1.0
        w, h = max(size, round(im.width / f)), max(size, round(im.height / f))
        small = im if (w, h) == im.size else im.resize((w, h), Image.LANCZOS)
        for i in range(min(CROPS_PER_SCALE, n - s * CROPS_PER_SCALE)):
            x, y = rng.randint(0, w - size), rng.randint(0, h - size)
            crop = small.crop((x, y, x + size, y + size))
            yield ImageOps.mirror(crop) if mirror and i % 2 == 1 else crop


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-source", action="store_true", help="do not write source/*.png")
    ap.add_argument("--mirror", action="store_true",
                    help="flip every second crop left to right: twice the distinct crops per photo")
    ap.add_argument("--photos", action="append",
                    help="a folder or glob of source photos (repeatable; default: the repository's "
                         "photos and /usr/share/backgrounds/mate/nature)")
    a = ap.parse_args()
    env = os.environ.get("SPECTRADB_CORPUS_PHOTOS")
    sources = a.photos or (env.split(":") if env else DEFAULT_SOURCES)

    params = (f"version={VERSION} count={a.count} size={a.size} quality={a.quality} "
              f"subsampling=4:2:0 baseline seed={a.seed} source={not a.no_source}"
              + (" mirror=True" if a.mirror else ""))
    manifest = os.path.join(a.out, "MANIFEST.txt")
    jpgs = glob.glob(os.path.join(a.out, "*.jpg"))
    pngs = glob.glob(os.path.join(a.out, "source", "*.png"))
    if (os.path.exists(manifest) and open(manifest).readline().strip() == params
            and len(jpgs) == a.count and len(pngs) == (0 if a.no_source else a.count)):
        print(f"corpus in {a.out} is complete ({params})")
        return

    paths = sorted({os.path.normpath(p) for s in sources for pattern in patterns(s) for p in glob.glob(pattern)})
    if not paths:
        sys.exit(f"no source photos found in {sources}")
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    assert len(set(stems)) == len(stems), "two source photos share a file name"
    photos, skipped = [], []
    for p in paths:
        im = load(p, a.size)
        if im is None:
            skipped.append(p)
        else:
            photos.append((p, im))
    counts = allocate(photos, a.count, a.size, a.mirror)

    # Replace whatever corpus was there; MANIFEST.txt is written last, as the mark of a complete one.
    for old in [manifest] + jpgs + pngs:
        if os.path.exists(old):
            os.remove(old)
    os.makedirs(os.path.join(a.out, "source"), exist_ok=True)
    rng = random.Random(a.seed)
    lines, jpeg_bytes = [params], 0
    for (p, im), n in zip(photos, counts):
        stem = os.path.splitext(os.path.basename(p))[0]
        with Image.open(p) as orig:
            lines.append(f"{p} {orig.width}x{orig.height} crops={n}")
        for i, crop in enumerate(crops(im, n, a.size, rng, a.mirror)):
            name = f"{stem}_{i:03d}"
            out = os.path.join(a.out, name + ".jpg")
            crop.save(out, "JPEG", quality=a.quality, subsampling="4:2:0", progressive=False, optimize=False)
            jpeg_bytes += os.path.getsize(out)
            if not a.no_source:
                crop.save(os.path.join(a.out, "source", name + ".png"), compress_level=1)  # 4x faster than 6
    lines += [f"skipped (short side < {MIN_SHORT} * size): {p}" for p in skipped]
    with open(manifest, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{a.count} JPEGs, {jpeg_bytes} bytes, {jpeg_bytes / a.count:.0f} bytes mean, from {len(photos)} photos, in {a.out}")


if __name__ == "__main__":
    main()

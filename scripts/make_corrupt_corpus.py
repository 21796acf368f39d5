#!/usr/bin/env python3
"""Writes tests/data/corrupt/: damaged and unusual image files for the
corrupt-input test (every file must be ingested or refused with a reason,
never panic or take the whole ingest down).

Deterministic (fixed seed, fixed sources): running it again rewrites the
same bytes for the same Pillow version. Needs Pillow and numpy.

    python3 scripts/make_corrupt_corpus.py [out_dir]
"""

import io
import random
import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "tests" / "data" / "photos" / "dev"
SOURCES = ["opencv_HappyFish.jpg", "opencv_fruits.jpg"]


def small(name, size):
    """A bundled photo scaled down, so the corpus stays small."""
    im = Image.open(PHOTOS / name).convert("RGB")
    return im.resize(size, Image.Resampling.LANCZOS)


def encode(im, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def png_chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def png_raw(width, height, bit_depth, colour_type, rows):
    """A PNG written by hand (Pillow cannot write 16-bit RGB)."""
    raw = b"".join(b"\x00" + r for r in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(raw, 9))
        + png_chunk(b"IEND", b"")
    )


def with_png_size(png, width, height):
    """Rewrites the IHDR size (and its CRC) of a PNG."""
    ihdr = bytearray(png[16:29])
    ihdr[0:8] = struct.pack(">II", width, height)
    body = b"IHDR" + bytes(ihdr)
    return png[:12] + body + struct.pack(">I", zlib.crc32(body)) + png[33:]


def with_jpeg_size(jpg, width, height):
    """Rewrites the size in the first SOFn segment of a JPEG."""
    b = bytearray(jpg)
    i = 2
    while i + 4 < len(b):
        if b[i] != 0xFF:
            raise ValueError("lost marker sync")
        marker, length = b[i + 1], struct.unpack(">H", b[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            b[i + 5 : i + 9] = struct.pack(">HH", height, width)
            return bytes(b)
        i += 2 + length
    raise ValueError("no SOF marker")


def with_adobe_transform(jpg, transform):
    """Sets the colour transform byte of the Adobe APP14 segment."""
    b = bytearray(jpg)
    at = b.find(b"Adobe") - 4
    if at < 0 or b[at : at + 2] != b"\xff\xee":
        raise ValueError("no Adobe segment")
    b[at + 4 + 11] = transform
    return bytes(b)


README = """# Corrupt and unusual image files

Written by `scripts/make_corrupt_corpus.py` (run it again to regenerate;
it replaces this folder) from two bundled photos,
`photos/dev/opencv_HappyFish.jpg` and `photos/dev/opencv_fruits.jpg`, scaled
down: truncations, bit flips, an over-subscribed Huffman table, wrong
extensions, empty files, huge declared sizes, 16-bit PNGs, CMYK and YCCK
JPEGs, animated PNG and WebP, EXIF orientations 1-8. `ok_*` files are
intact. Read by `tests/integration/corrupt_inputs.rs`: every file (this one
included) must be ingested or listed with a reason, never crash an ingest.
"""


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "data" / "corrupt"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rng = random.Random(20260101)
    files = {}

    fish = small(SOURCES[0], (64, 40))
    fruit = small(SOURCES[1], (48, 40))
    base_jpg = encode(fish, "JPEG", quality=80)
    base_png = encode(fruit, "PNG")
    base_webp = encode(fruit, "WEBP", quality=70)
    files["ok_baseline.jpg"] = base_jpg
    files["ok_progressive.jpg"] = encode(fish, "JPEG", quality=80, progressive=True)
    files["ok_fruit.png"] = base_png
    files["ok_fruit.webp"] = base_webp

    # Truncated at many offsets: inside headers, tables and image data.
    for name, data in [("jpg", base_jpg), ("png", base_png), ("webp", base_webp)]:
        n = len(data)
        offsets = sorted({1, 2, 4, 20, 100, n // 4, n // 2, 3 * n // 4, n - 2, n - 1})
        for off in offsets:
            files[f"truncated_{off:05d}.{name}"] = data[:off]

    # Bit flips: one to eight random bits anywhere, and one in the headers.
    for name, data in [("jpg", base_jpg), ("png", base_png), ("webp", base_webp)]:
        for k in range(8):
            b = bytearray(data)
            lo = 2 if k < 4 else len(b) // 2
            for _ in range(1 + k):
                i = rng.randrange(lo, len(b))
                b[i] ^= 1 << rng.randrange(8)
            files[f"bitflip_{k}.{name}"] = bytes(b)

    # Over-subscribed Huffman table: three 1-bit codes in the first DHT
    # (the total kept, so the segment still parses up to the code check).
    b = bytearray(base_jpg)
    dht = b.find(b"\xff\xc4") + 5
    counts = list(b[dht : dht + 16])
    new = [3, 0] + counts[2:]
    diff = sum(new) - sum(counts)
    for i in range(15, 1, -1):
        take = min(diff, new[i]) if diff > 0 else 0
        new[i] -= take
        diff -= take
    new[15] -= diff
    assert sum(new) == sum(counts) and min(new) >= 0
    b[dht : dht + 16] = bytes(new)
    files["bad_dht_oversubscribed.jpg"] = bytes(b)

    # Wrong extension (content decides) and not an image at all.
    files["png_named.jpg"] = base_png
    files["jpeg_named.png"] = base_jpg
    files["jpeg_named.bin"] = base_jpg
    files["text_named.webp"] = b"this is a README, not an image\n"
    files["MANIFEST.txt"] = b"file,label\nok_baseline.jpg,fish\n"

    # Zero bytes, and only a signature.
    files["empty.jpg"] = b""
    files["only_soi.jpg"] = b"\xff\xd8"
    files["only_signature.png"] = base_png[:8]

    # Huge declared dimensions (decompression-bomb guard), data unchanged.
    files["huge_65535x65535.jpg"] = with_jpeg_size(base_jpg, 65535, 65535)
    files["huge_65535x65535_progressive.jpg"] = with_jpeg_size(
        files["ok_progressive.jpg"], 65535, 65535
    )
    files["huge_100000x100000.png"] = with_png_size(base_png, 100000, 100000)
    files["huge_70000x1.png"] = png_raw(70000, 1, 8, 0, [bytes(70000)])

    # 16-bit PNGs: grey and RGB.
    g16 = (np.asarray(fruit.convert("L"), dtype=np.uint16) * 257).astype(">u2")
    files["png16_gray.png"] = png_raw(48, 40, 16, 0, [r.tobytes() for r in g16])
    rgb16 = (np.asarray(fruit, dtype=np.uint16) * 257).astype(">u2")
    files["png16_rgb.png"] = png_raw(48, 40, 16, 2, [r.tobytes() for r in rgb16])

    # CMYK (Adobe transform 0) and YCCK (transform 2) JPEGs.
    cmyk = encode(fish.convert("CMYK"), "JPEG", quality=80)
    files["cmyk.jpg"] = cmyk
    files["ycck.jpg"] = with_adobe_transform(cmyk, 2)

    # Animated PNG and WebP (three frames).
    frames = [fruit, fruit.rotate(90), fruit.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    files["animated.png"] = encode(frames[0], "PNG", save_all=True, append_images=frames[1:])
    files["animated.webp"] = encode(
        frames[0], "WEBP", save_all=True, append_images=frames[1:], quality=60, duration=100
    )

    # EXIF orientations 1-8 (a non-square image, so 5-8 swap the sides).
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        files[f"exif_orientation_{o}.jpg"] = encode(fish, "JPEG", quality=75, exif=exif)
    exif = Image.Exif()
    exif[0x0112] = 6
    files["exif_orientation_6.png"] = encode(fruit, "PNG", exif=exif)

    files["README.md"] = README.encode()
    for name, data in sorted(files.items()):
        (out / name).write_bytes(data)
    total = sum(len(d) for d in files.values())
    print(f"wrote {len(files)} files, {total} bytes, to {out}")


if __name__ == "__main__":
    main()

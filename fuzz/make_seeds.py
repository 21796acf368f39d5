#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora under fuzz/seeds/ (run from the repository root).

    python3 fuzz/make_seeds.py [path/to/spectradb]

image_file: small JPEG/PNG/WebP variants cut from a test photo (needs Pillow)
plus a few files of tests/data as they are. statements: every statement of
sql/*.slt. table_file: small image tables written by the spectradb binary,
one of them with bands coded as two halves (skipped when no binary is
given).
"""
import io
import pathlib
import shutil
import subprocess
import sys
import tempfile

from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"


def image_seeds():
    out = SEEDS / "image_file"
    out.mkdir(parents=True, exist_ok=True)
    photo = Image.open(ROOT / "tests/data/photos/dev/opencv_HappyFish.jpg").convert("RGB")
    small = photo.resize((32, 24))
    odd = photo.resize((17, 13))

    def save(name, img, fmt, **kw):
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        (out / name).write_bytes(buf.getvalue())

    save("baseline_420.jpg", small, "JPEG", quality=75)
    save("baseline_444.jpg", small, "JPEG", quality=90, subsampling=0)
    save("baseline_422.jpg", small, "JPEG", quality=90, subsampling=1)
    save("odd_size.jpg", odd, "JPEG", quality=50)
    save("progressive.jpg", small, "JPEG", progressive=True)
    save("optimized.jpg", small, "JPEG", optimize=True)
    save("restarts.jpg", small, "JPEG", restart_marker_blocks=2)
    save("grey.jpg", small.convert("L"), "JPEG")
    save("cmyk.jpg", small.convert("CMYK"), "JPEG")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    save("exif_rotated.jpg", small, "JPEG", exif=exif)
    save("rgb.png", small, "PNG")
    save("rgba.png", small.convert("RGBA"), "PNG")
    save("grey.png", small.convert("L"), "PNG")
    save("grey_alpha.png", small.convert("LA"), "PNG")
    save("palette.png", small.convert("P"), "PNG")
    save("grey16.png", small.convert("I;16"), "PNG")
    save("exif_rotated.png", small, "PNG", exif=exif)
    save("lossy.webp", small, "WEBP", quality=60)
    save("lossless.webp", small, "WEBP", lossless=True)
    save("alpha.webp", small.convert("RGBA"), "WEBP", quality=60)
    save("animated.webp", small, "WEBP", save_all=True,
         append_images=[odd.resize((32, 24))], duration=100)
    save("animated.png", small, "PNG", save_all=True,
         append_images=[odd.resize((32, 24))], duration=100)
    for f in ["colors/red.png", "broken/notes.jpg", "broken/truncated_fruits.jpg",
              "photos/dev/opencv_HappyFish.jpg"]:
        shutil.copy(ROOT / "tests/data" / f, out / f.replace("/", "_"))


def statement_seeds():
    out = SEEDS / "statements"
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for slt in sorted((ROOT / "sql").glob("*.slt")):
        lines = slt.read_text().splitlines()
        i = 0
        while i < len(lines):
            if lines[i].startswith(("statement ", "query ")):
                j = i + 1
                while j < len(lines) and lines[j].strip() and lines[j] != "----":
                    j += 1
                sql = "\n".join(lines[i + 1:j])
                (out / f"{slt.stem}_{n:03}.sql").write_text(sql + ";\n")
                n += 1
                i = j
            i += 1
    (out / "script.sql").write_text(
        "SELECT 'a;b' AS s -- a ; in a comment\nFROM t;\n/* block ; */ SHOW TABLES;\nSELECT 1"
    )


def table_seeds(binary):
    out = SEEDS / "table_file"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        photos = tmp / "photos"
        photos.mkdir()
        for name in ["baseline_420.jpg", "odd_size.jpg"]:
            shutil.copy(SEEDS / "image_file" / name, photos / name)
        for chroma in ["420", "444", "gray"]:
            db = tmp / f"db_{chroma}"
            subprocess.run([binary, str(db), "-c",
                            f"CREATE IMAGE TABLE t FROM '{photos}' WITH (chroma = '{chroma}')"],
                           check=True)
            files = sorted(db.rglob("*.parquet"))
            shutil.copy(files[0], out / f"two_rows_{chroma}.parquet")
        # A luma plane of 256 blocks: its low bands are coded as two halves
        # (format version 2).
        large = tmp / "large"
        large.mkdir()
        photo = Image.open(ROOT / "tests/data/photos/dev/opencv_HappyFish.jpg").convert("RGB")
        photo.resize((128, 128)).save(large / "split_bands.jpg", quality=75)
        db = tmp / "db_split"
        subprocess.run([binary, str(db), "-c", f"CREATE IMAGE TABLE t FROM '{large}'"], check=True)
        shutil.copy(sorted(db.rglob("*.parquet"))[0], out / "one_row_split_bands.parquet")
        # 40 small images with damaged data pages and an intact footer
        # (every 97th byte from byte 100 to two thirds of the file XOR 0x5A):
        # the damage that once drove a scan out of memory.
        db = tmp / "db_damaged"
        subprocess.run([binary, str(db), "-c",
                        f"CREATE IMAGE TABLE t FROM '{ROOT}/tests/data/fashion/**/*.png'"],
                       check=True)
        data = bytearray(sorted(db.rglob("*.parquet"))[0].read_bytes())
        for i in range(100, len(data) * 2 // 3, 97):
            data[i] ^= 0x5A
        (out / "forty_rows_damaged_pages.parquet").write_bytes(bytes(data))


if __name__ == "__main__":
    image_seeds()
    statement_seeds()
    if len(sys.argv) > 1:
        table_seeds(sys.argv[1])

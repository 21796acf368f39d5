"""Training-loader throughput: spectradb's `Connection.tensors` against
PyTorch's DataLoader over the same JPEG files, decoded by Pillow and by
PyTurboJPEG (which, like spectradb, can decode at 1/2, 1/4, 1/8 scale).

Every loader makes the same batches: float32 (64, 3, 224, 224), ImageNet
normalisation, images resized to 224 x 224. All are measured in one run,
interleaved, and reported as images/s per core used, with the ratio of
spectradb to each baseline. Run (after installing the package, see
docs/benchmarks.md):

    python3 benches/python_loader.py [--count 500] [--workers 1 2] [--rounds 2]

The corpus is `bench-data/corpus` (or $SPECTRADB_CORPUS), built with
`scripts/make_corpus.sh` when missing. Baselines that cannot be imported
(torch, turbojpeg) are reported as skipped.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import spectradb

SIZE = 224
BATCH = 64
MEAN = np.array(spectradb.IMAGENET_MEAN, dtype=np.float32).reshape(3, 1, 1)
STD = np.array(spectradb.IMAGENET_STD, dtype=np.float32).reshape(3, 1, 1)
REPO = Path(__file__).resolve().parents[1]


def corpus(count: int) -> list[Path]:
    root = Path(os.environ.get("SPECTRADB_CORPUS", REPO / "bench-data" / "corpus"))
    if not root.is_dir():
        subprocess.run(
            ["bash", str(REPO / "scripts" / "make_corpus.sh"), "--out", str(root), "--count", "1000"],
            check=True,
        )
    files = sorted(root.glob("*.jpg"))[:count]
    if not files:
        sys.exit(f"no JPEG files in {root}")
    return files


def normalise(rgb: np.ndarray) -> np.ndarray:
    chw = rgb.transpose(2, 0, 1).astype(np.float32) / 255.0
    return (chw - MEAN) / STD


class PillowImages:
    """The usual Dataset: open, decode, resize, normalise."""

    def __init__(self, files: list[Path]):
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> np.ndarray:
        from PIL import Image

        with Image.open(self.files[i]) as im:
            # draft() lets libjpeg decode at a reduced scale, as
            # torchvision users get with Pillow-SIMD tricks; without it
            # Pillow decodes at full size.
            im.draft("RGB", (SIZE, SIZE))
            rgb = im.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
        return normalise(np.asarray(rgb))


class TurboImages(PillowImages):
    """libjpeg-turbo through PyTurboJPEG, at the smallest scale >= 224."""

    def __getitem__(self, i: int) -> np.ndarray:
        from PIL import Image
        from turbojpeg import TurboJPEG

        global _turbo
        try:
            turbo = _turbo
        except NameError:
            turbo = _turbo = TurboJPEG()
        data = self.files[i].read_bytes()
        width, height, _, _ = turbo.decode_header(data)
        scale = (1, 1)
        for den in (8, 4, 2):  # 1/8, 1/4, 1/2 (libjpeg-turbo wants reduced fractions)
            if width // den >= SIZE and height // den >= SIZE:
                scale = (1, den)
                break
        rgb = turbo.decode(data, scaling_factor=scale, pixel_format=0)  # TJPF_RGB
        rgb = np.asarray(Image.fromarray(rgb).resize((SIZE, SIZE), Image.BILINEAR))
        return normalise(rgb)


def torch_loader(dataset, workers: int):
    import torch

    torch.set_num_threads(1)

    def collate(items):
        return torch.from_numpy(np.stack(items))

    # num_workers=1 is one decoding process (the main one waits); 0 would
    # decode in the main process. Either way one core decodes per worker.
    return torch.utils.data.DataLoader(
        dataset, batch_size=BATCH, num_workers=workers, collate_fn=collate, persistent_workers=False
    )


def epoch_rate(make_iter) -> float:
    start = time.perf_counter()
    n = 0
    for batch in make_iter():
        # A DataLoader hands tuples on as lists.
        n += len(batch[0]) if isinstance(batch, (tuple, list)) else len(batch)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    files = corpus(args.count)
    print(f"{len(files)} JPEGs, batches of {BATCH} x 3 x {SIZE} x {SIZE}, {os.cpu_count()} cores")

    with tempfile.TemporaryDirectory() as tmp:
        # The same files for every loader: links to the first `count`.
        folder = Path(tmp) / "jpegs"
        folder.mkdir()
        for f in files:
            (folder / f.name).symlink_to(f.resolve())
        conn = spectradb.connect(Path(tmp) / "db")
        start = time.perf_counter()
        conn.sql(f"CREATE IMAGE TABLE photos FROM '{folder}'")
        print(f"ingest: {time.perf_counter() - start:.1f} s")

        results: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            for w in args.workers:
                # Epoch 1 includes the query (reading the table's bands).
                start = time.perf_counter()
                loader = conn.tensors("SELECT image FROM photos", size=SIZE, batch=BATCH, workers=w)
                query_s = time.perf_counter() - start
                first = epoch_rate(lambda: iter(loader))
                results.setdefault(("spectradb, first epoch incl. query", w), []).append(
                    loader.num_rows / (query_s + loader.num_rows / first)
                )
                results.setdefault(("spectradb, later epochs", w), []).append(epoch_rate(lambda: iter(loader)))
                try:
                    import torch

                    # The same loader through its IterableDataset adapter.
                    results.setdefault(("spectradb via loader.torch()", w), []).append(
                        epoch_rate(lambda: iter(torch.utils.data.DataLoader(loader.torch(), batch_size=None)))
                    )
                except ImportError:
                    pass
                for name, ds in (("torch DataLoader + Pillow", PillowImages), ("torch DataLoader + PyTurboJPEG", TurboImages)):
                    try:
                        import torch  # noqa: F401

                        if ds is TurboImages:
                            import turbojpeg  # noqa: F401
                    except (ImportError, RuntimeError, OSError) as e:
                        results[(f"{name} (skipped: {e})", w)] = []
                        continue
                    results.setdefault((name, w), []).append(epoch_rate(lambda: iter(torch_loader(ds(files), w))))

        print(f"\n{'loader':<42} {'cores':>5} {'images/s':>9} {'per core':>9} {'spectradb later epochs /':>26}")
        for (name, w), rates in results.items():
            if not rates:
                print(f"{name:<42} {w:>5}")
                continue
            best = max(rates)
            ours = max(results[("spectradb, later epochs", w)])
            print(f"{name:<42} {w:>5} {best:>9.1f} {best / w:>9.1f} {ours / best:>25.2f}x")


if __name__ == "__main__":
    main()

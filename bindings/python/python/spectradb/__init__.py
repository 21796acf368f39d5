"""spectradb: an embedded SQL database for image AI.

Images are stored as Parquet columns of DCT frequency bands, ONNX models
are SQL functions, and each query reads only the bands its models need::

    import spectradb

    conn = spectradb.connect("photos.db")          # connect() alone: in memory
    conn.sql("CREATE IMAGE TABLE photos FROM 'photos/**/*.jpg' WITH (label = 'parent_dir')")
    conn.sql("SELECT label, count(*) AS n FROM photos GROUP BY label").df()

    for images, labels in conn.tensors("SELECT image, label FROM photos",
                                       size=224, batch=64, shuffle=True, seed=0):
        ...  # images: float32 (64, 3, 224, 224), decoded on Rust threads

Results implement the Arrow PyCapsule interface (``__arrow_c_stream__``),
so pyarrow, polars, pandas and DuckDB read them without a copy.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence, Union

import numpy as np

from . import _spectradb
from ._spectradb import Error, Interrupted, __version__

if TYPE_CHECKING:
    import pandas
    import polars
    import pyarrow
    from PIL import Image

__all__ = [
    "Connection",
    "Error",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Interrupted",
    "Relation",
    "TensorLoader",
    "__version__",
    "connect",
    "image_info",
    "to_numpy",
    "to_pil",
    "to_tensor",
]

#: ImageNet's per-channel mean and standard deviation (R, G, B, on 0..1).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Size = Union[int, Sequence[int]]


def _onnxruntime_library() -> str | None:
    """The ONNX Runtime library of this interpreter's ``onnxruntime`` wheel.

    Found with ``importlib.util.find_spec``, without importing the package
    (which would load numpy's and the runtime's own copies for nothing).
    """
    try:
        spec = importlib.util.find_spec("onnxruntime")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    best: tuple[tuple[int, ...], Path] | None = None
    for lib in (Path(spec.origin).parent / "capi").glob("libonnxruntime.so*"):
        m = re.fullmatch(r"libonnxruntime\.so((?:\.\d+)*)", lib.name)
        if m is None:
            continue
        version = tuple(int(p) for p in m.group(1).split(".")[1:])
        if best is None or version > best[0]:
            best = (version, lib)
    return str(best[1]) if best else None


_library = _onnxruntime_library()
if _library is not None:
    _spectradb.use_onnxruntime(_library)


def connect(path: str | Path | None = None) -> Connection:
    """Opens the database in directory ``path`` (created when missing).

    Without a path the database lives in a temporary directory that is
    removed when the last connection to it closes. Connections to one
    directory in a process share the database; each keeps its own ``SET``
    settings.
    """
    return Connection(_spectradb.connect(None if path is None else str(path)))


def _pair(size: Size) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    width, height = size
    return (int(width), int(height))


def to_numpy(value: bytes, size: Size | None = None, *, scale: int | None = None) -> np.ndarray:
    """An image value's RGB pixels as a (height, width, 3) uint8 array.

    Without ``size`` it is decoded at scale ``scale``/8 (by default the
    largest its bands allow); with ``size`` (a side, or width and height) it
    is resized to that size from the smallest scale that reaches it.
    """
    return _spectradb.decode_rgb(value, scale, None if size is None else _pair(size))


def to_pil(value: bytes, size: Size | None = None, *, scale: int | None = None) -> Image.Image:
    """An image value as a PIL image (see ``to_numpy`` for size and scale)."""
    from PIL import Image

    return Image.fromarray(to_numpy(value, size, scale=scale), "RGB")


def to_tensor(
    value: bytes,
    size: Size = 224,
    *,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    layout: str = "chw",
    order: str = "rgb",
) -> np.ndarray:
    """A model input: float32, (3, h, w) for ``layout="chw"``, normalised
    as ``(pixel / 255 - mean) / std``; the tensor a model function makes
    (``Connection.tensor`` takes a registered model's settings)."""
    return _spectradb.image_tensor(value, _pair(size), tuple(mean), tuple(std), layout, order)


def image_info(value: bytes) -> dict[str, int]:
    """What an image value holds: width, height, planes, bands, max_scale."""
    return _spectradb.image_info(value)


class Relation:
    """The result of ``Connection.sql``. A query runs each time it is read,
    as a DuckDB relation does; Ctrl-C or ``Connection.interrupt()`` stops it."""

    def __init__(self, inner: _spectradb.Relation) -> None:
        self._inner = inner

    @property
    def sql(self) -> str:
        """The statement."""
        return self._inner.sql

    @property
    def columns(self) -> list[str]:
        """The result's column names."""
        return self._inner.columns

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """The Arrow C stream of the result, computed as it is read."""
        return self._inner.__arrow_c_stream__(requested_schema)

    def __arrow_c_schema__(self) -> object:
        return self._inner.__arrow_c_schema__()

    def collect(self) -> _spectradb.Batches:
        """Runs the statement and keeps its rows (an Arrow C stream source)."""
        return self._inner.collect()

    def arrow(self) -> pyarrow.Table:
        """The result as a pyarrow Table."""
        import pyarrow as pa

        return pa.table(self._inner.collect())

    to_arrow_table = arrow

    def record_batch_reader(self) -> pyarrow.RecordBatchReader:
        """The result as a pyarrow reader that computes batches as it goes."""
        import pyarrow as pa

        return pa.RecordBatchReader.from_stream(self)

    def df(self) -> pandas.DataFrame:
        """The result as a pandas DataFrame."""
        return self.arrow().to_pandas()

    to_pandas = df

    def pl(self) -> polars.DataFrame:
        """The result as a polars DataFrame."""
        import polars as pl

        return pl.DataFrame(self._inner.collect())

    def fetchall(self) -> list[tuple[Any, ...]]:
        """Every row as a tuple of Python values (images as bytes)."""
        table = self.arrow()
        return list(zip(*(c.to_pylist() for c in table.columns)))

    def fetchnumpy(self) -> dict[str, np.ndarray]:
        """Every column as a numpy array."""
        table = self.arrow()
        return {n: c.to_numpy() for n, c in zip(table.column_names, table.columns)}

    def __repr__(self) -> str:
        return repr(self._inner)


class TensorLoader:
    """Batches of model tensors from a query's rows, for training loops.

    Iterating it runs one epoch: ``(images, *other_columns)`` per batch,
    ``images`` a float32 array (n, 3, size, size), the other columns numpy
    arrays in query order. With ``shuffle=True`` each epoch visits the rows
    in an order drawn from ``seed`` and the epoch number, so runs repeat.
    Images are decoded on Rust threads, ahead of the batch being used.
    """

    def __init__(self, inner: _spectradb.TensorLoader) -> None:
        self._inner = inner
        self._epoch = 0

    @property
    def num_rows(self) -> int:
        return self._inner.num_rows

    def __len__(self) -> int:
        """Batches per epoch."""
        return len(self._inner)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        epoch = self._epoch
        self._epoch += 1
        return self.epoch(epoch)

    def epoch(self, number: int) -> Iterator[tuple[Any, ...]]:
        """The batches of epoch ``number`` (the order repeats for a seed)."""
        import pyarrow as pa

        for images, rest in self._inner.epoch(number):
            table = pa.table(rest)
            yield (images, *(c.to_numpy() for c in table.columns))

    def torch(self) -> Any:
        """A ``torch.utils.data.IterableDataset`` of these batches (torch
        tensors); give it to ``DataLoader(..., batch_size=None)``."""
        from ._torch import TorchBatches

        return TorchBatches(self)


class Connection:
    """A connection to a spectradb database (``spectradb.connect``)."""

    def __init__(self, inner: _spectradb.Connection) -> None:
        self._inner = inner

    def sql(self, query: str) -> Relation:
        """Runs one statement. A query is computed when its result is read;
        a statement that changes the database runs now (its result is its
        summary). Errors raise ``spectradb.Error`` naming the statement."""
        return Relation(self._inner.sql(query))

    execute = sql

    def interrupt(self) -> None:
        """Stops the statement this connection is running, from another
        thread: it raises ``spectradb.Interrupted``."""
        self._inner.interrupt()

    def tensors(
        self,
        query: str,
        *,
        size: int | None = None,
        batch: int = 64,
        shuffle: bool = False,
        seed: int = 0,
        workers: int | None = None,
        model: str | None = None,
        image: str | None = None,
        drop_last: bool = False,
    ) -> TensorLoader:
        """A training loader over ``query``'s rows (see ``TensorLoader``).

        Tensors are ``size`` x ``size`` with ImageNet's normalisation, or
        what registered model ``model`` takes. ``image`` names the image
        column (by default ``image``, else the first binary column);
        ``workers`` decoding threads (default: every core).
        """
        return TensorLoader(
            self._inner.tensors(
                query,
                size=size,
                batch=batch,
                shuffle=shuffle,
                seed=seed,
                workers=workers,
                model=model,
                image=image,
                drop_last=drop_last,
            )
        )

    def tensor(self, value: bytes, *, model: str | None = None, size: int | None = None) -> np.ndarray:
        """The input tensor model ``model`` makes of an image value."""
        return self._inner.tensor(value, model=model, size=size)

    @property
    def path(self) -> str:
        """The database directory."""
        return str(self._inner.path)

    @property
    def closed(self) -> bool:
        return self._inner.closed

    def close(self) -> None:
        """Closes the connection (the database closes with its last one)."""
        self._inner.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else self.path
        return f"<spectradb.Connection {state}>"

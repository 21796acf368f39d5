"""The Python package as its users use it: SQL, results, images, models,
the training loader, errors and cancellation."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pyarrow as pa
import pytest
from conftest import MODELS, PHOTO_FILES, PHOTOS, REPO, create_model

import spectradb


def test_results_as_arrow_pandas_polars_and_tuples(conn):
    rel = conn.sql("SELECT 40 + 2 AS n, 'x' AS s UNION ALL SELECT 7, 'y' ORDER BY n")
    assert rel.columns == ["n", "s"]
    assert rel.fetchall() == [(7, "y"), (42, "x")]
    table = rel.arrow()
    assert isinstance(table, pa.Table)
    assert table.column("n").to_pylist() == [7, 42]
    assert rel.df()["s"].tolist() == ["y", "x"]
    assert rel.pl()["n"].to_list() == [7, 42]
    assert rel.fetchnumpy()["n"].tolist() == [7, 42]
    assert "42" in repr(rel)


def test_the_arrow_c_stream_is_read_without_collecting(conn):
    rel = conn.sql("SELECT value FROM range(100000)")
    reader = pa.RecordBatchReader.from_stream(rel)
    assert reader.schema.names == ["value"]
    total = sum(batch.num_rows for batch in reader)
    assert total == 100000
    # The capsule protocol, as any consumer calls it.
    capsule = rel.__arrow_c_stream__()
    assert type(capsule).__name__ == "PyCapsule"
    assert pa.schema(rel).names == ["value"]


def test_an_image_table_from_the_bundled_photos(photos):
    (n,) = photos.sql("SELECT count(*) FROM photos").fetchall()[0]
    assert n == len(PHOTO_FILES)
    uris = [u for (u,) in photos.sql("SELECT uri FROM photos ORDER BY uri").fetchall()]
    assert [os.path.basename(u) for u in uris] == [p.name for p in PHOTO_FILES]


def test_an_image_as_pil_equals_its_png_from_sql(photos):
    from PIL import Image

    rows = photos.sql("SELECT image, width(image), height(image), to_png(image, 4) FROM photos ORDER BY id LIMIT 4")
    for value, width, height, png in rows.fetchall():
        full = spectradb.to_pil(value)
        assert full.size == (width, height)
        # Scale 4/8 through both paths: the PNG is lossless, so pixels agree.
        half = spectradb.to_numpy(value, scale=4)
        assert np.array_equal(half, np.asarray(Image.open(io.BytesIO(png)).convert("RGB")))
        assert spectradb.to_numpy(value, 64).shape == (64, 64, 3)
        info = spectradb.image_info(value)
        assert (info["width"], info["height"], info["max_scale"]) == (width, height, 8)


def test_a_model_query_and_its_tensors_agree_with_onnxruntime(photos):
    ort = pytest.importorskip("onnxruntime")
    create_model(photos, "backbone", "mobilenet_v2_backbone.onnx", "embedding")
    create_model(photos, "mobilenet", "mobilenet_v2_imagenet.onnx", "label")
    sql_rows = photos.sql("SELECT id, backbone(image), mobilenet(image) FROM photos ORDER BY id").fetchall()
    labels = (MODELS / "imagenet_classes.txt").read_text().split("\n")
    loader = photos.tensors("SELECT id, image FROM photos ORDER BY id", model="backbone", batch=8)
    session = ort.InferenceSession(str(MODELS / "mobilenet_v2_backbone.onnx"))
    classifier = ort.InferenceSession(str(MODELS / "mobilenet_v2_imagenet.onnx"))
    seen = 0
    for images, ids in loader:
        assert images.dtype == np.float32 and images.shape[1:] == (3, 224, 224)
        features = session.run(None, {session.get_inputs()[0].name: images})[0].reshape(len(ids), -1)
        logits = classifier.run(None, {classifier.get_inputs()[0].name: images})[0]
        for k, row in enumerate(ids):
            sql_id, sql_features, sql_class = sql_rows[seen + k]
            assert row == sql_id
            # The loader's tensor is the one the model function made.
            np.testing.assert_allclose(features[k], np.asarray(sql_features), rtol=1e-4, atol=1e-4)
            assert labels[int(np.argmax(logits[k]))].strip() == sql_class
        seen += len(ids)
    assert seen == len(sql_rows)
    # One image through Connection.tensor is the loader's tensor too.
    value = photos.sql("SELECT image FROM photos ORDER BY id LIMIT 1").fetchall()[0][0]
    first = next(iter(photos.tensors("SELECT image FROM photos ORDER BY id LIMIT 1", model="backbone")))[0]
    np.testing.assert_array_equal(photos.tensor(value, model="backbone"), first[0])


def test_the_loader_shuffles_by_seed_and_epoch(photos):
    query = "SELECT id, image FROM photos"
    def order(loader, epoch):
        return [int(i) for _, ids in loader.epoch(epoch) for i in ids]

    ids = sorted(i for (i,) in photos.sql("SELECT id FROM photos").fetchall())
    a = photos.tensors(query, size=32, batch=5, shuffle=True, seed=7, workers=2)
    b = photos.tensors(query, size=32, batch=5, shuffle=True, seed=7, workers=1)
    other = photos.tensors(query, size=32, batch=5, shuffle=True, seed=8)
    assert order(a, 0) == order(b, 0)  # the same seed, whatever the threads
    assert sorted(order(a, 0)) == ids  # every row once
    assert order(a, 0) != order(a, 1)  # epochs differ
    assert order(a, 0) != order(other, 0)  # seeds differ
    # Iterating runs epochs 0, 1, ...
    assert [int(i) for _, rows in a for i in rows] == order(a, 0)
    assert [int(i) for _, rows in a for i in rows] == order(a, 1)
    plain = photos.tensors("SELECT id, image FROM photos ORDER BY id", size=32, batch=5)
    assert order(plain, 0) == ids
    assert len(plain) == -(-len(ids) // 5)
    cut = photos.tensors(query, size=32, batch=5, drop_last=True)
    sizes = [len(rows) for _, rows in cut]
    assert sizes == [5] * (len(ids) // 5) and len(cut) == len(sizes)
    images, labels = next(iter(photos.tensors("SELECT image, uri FROM photos", size=(32), batch=3)))
    assert images.shape == (3, 3, 32, 32) and len(labels) == 3


def test_the_torch_adapter_yields_tensors(photos):
    torch = pytest.importorskip("torch")
    loader = photos.tensors("SELECT image, id FROM photos", size=32, batch=4)
    batches = list(torch.utils.data.DataLoader(loader.torch(), batch_size=None))
    assert batches[0][0].shape == (4, 3, 32, 32) and batches[0][0].dtype == torch.float32
    assert sum(len(b[1]) for b in batches) == len(PHOTO_FILES)


def test_errors_are_exceptions_with_the_statement_and_the_reason(conn):
    with pytest.raises(spectradb.Error) as e:
        conn.sql("SELECT * FROM no_such_table")
    assert e.value.statement == "SELECT * FROM no_such_table"
    assert "no_such_table" in e.value.reason
    assert "statement `SELECT * FROM no_such_table`" in str(e.value)
    with pytest.raises(spectradb.Error, match="not a spectradb image value"):
        spectradb.to_numpy(b"not an image")
    with pytest.raises(spectradb.Error, match="no model named 'nope'"):
        conn.tensors("SELECT 1", model="nope")
    with pytest.raises(spectradb.Error, match="no image column"):
        conn.tensors("SELECT 1 AS one")
    with pytest.raises(ValueError, match="layout"):
        spectradb.to_tensor(b"", 8, layout="nchw")
    conn.close()
    with pytest.raises(spectradb.Error, match="closed"):
        conn.sql("SELECT 1")


def test_connections_share_a_directory_and_keep_their_settings(tmp_path):
    path = tmp_path / "db"
    with spectradb.connect(path) as a, spectradb.connect(path) as b:
        a.sql(f"CREATE IMAGE TABLE photos FROM '{PHOTOS}'")
        assert b.sql("SELECT count(*) FROM photos").fetchall() == [(len(PHOTO_FILES),)]
        a.sql("SET datafusion.execution.batch_size = 100")
        setting = "SELECT value FROM information_schema.df_settings WHERE name = 'datafusion.execution.batch_size'"
        assert a.sql(setting).fetchall() == [("100",)]
        assert b.sql(setting).fetchall() == [("8192",)]
    # Reopened later: the table was committed.
    with spectradb.connect(path) as c:
        assert c.sql("SELECT count(*) FROM photos").fetchall() == [(len(PHOTO_FILES),)]


LONG_MODEL_QUERY = (
    "SELECT count(mobilenet(image)) FROM "
    "(SELECT p.image FROM photos p CROSS JOIN range(400) r ORDER BY r.value)"
)


def test_interrupt_stops_a_long_model_query(photos):
    pytest.importorskip("onnxruntime")
    create_model(photos, "mobilenet", "mobilenet_v2_imagenet.onnx", "label")
    photos.sql("SET spectradb.cache_size = 0")
    rel = photos.sql(LONG_MODEL_QUERY)
    timer = threading.Timer(1.0, photos.interrupt)
    timer.start()
    start = time.monotonic()
    with pytest.raises(spectradb.Interrupted) as e:
        rel.fetchall()
    elapsed = time.monotonic() - start
    # Thousands of images would take minutes; it stops within a chunk.
    assert elapsed < 15, elapsed
    assert e.value.statement == LONG_MODEL_QUERY
    # The connection goes on working.
    assert photos.sql("SELECT 1 AS one").fetchall() == [(1,)]


def test_ctrl_c_cancels_a_long_query():
    pytest.importorskip("onnxruntime")
    script = textwrap.dedent(
        f"""
        import sys, spectradb
        conn = spectradb.connect()
        conn.sql("CREATE IMAGE TABLE photos FROM '{PHOTOS}'")
        conn.sql("CREATE MODEL mobilenet FROM '{MODELS / "mobilenet_v2_imagenet.onnx"}' WITH (size = 224)")
        conn.sql("SET spectradb.cache_size = 0")
        rel = conn.sql({LONG_MODEL_QUERY!r})
        print("running", flush=True)
        try:
            rel.fetchall()
        except KeyboardInterrupt:
            print("cancelled", flush=True)
            print(conn.sql("SELECT 2 AS two").fetchall(), flush=True)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert child.stdout.readline().strip() == "running"
    time.sleep(1.0)
    start = time.monotonic()
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=60)
    assert time.monotonic() - start < 15
    assert out.split() == ["cancelled", "[(2,)]"], out

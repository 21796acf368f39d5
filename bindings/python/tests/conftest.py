"""Shared fixtures: the repository's bundled photos and models."""

from __future__ import annotations

from pathlib import Path

import pytest

import spectradb

#: The repository root (tests/data holds the photos and models).
REPO = Path(__file__).resolve().parents[3]
PHOTOS = REPO / "tests" / "data" / "photos" / "dev"
PHOTO_FILES = sorted(p for p in PHOTOS.iterdir() if p.suffix in (".jpg", ".png"))
MODELS = REPO / "tests" / "data" / "models"
IMAGENET = "input = 'pixels', size = 224, mean = '0.485,0.456,0.406', std = '0.229,0.224,0.225'"


def create_model(conn: spectradb.Connection, name: str, file: str, output: str) -> None:
    """A model of the bundled MobileNetV2 family; a classifier gets ImageNet's labels."""
    labels = f", labels = '{MODELS / 'imagenet_classes.txt'}'" if output == "label" else ""
    conn.sql(f"CREATE MODEL {name} FROM '{MODELS / file}' WITH ({IMAGENET}, output = '{output}'{labels})")


@pytest.fixture()
def conn():
    with spectradb.connect() as c:
        yield c


@pytest.fixture()
def photos(conn):
    """An in-memory database with the bundled photos (JPEG and PNG)."""
    conn.sql(f"CREATE IMAGE TABLE photos FROM '{PHOTOS}'")
    return conn

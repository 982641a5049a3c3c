"""Files that ship with the package: the Alembic migrations and the example manifests.

In the wheel they live inside the package (``_migrations``, ``_examples``); a source checkout
has them at the repository root (``migrations/``, ``examples/``)."""

from __future__ import annotations

from pathlib import Path


def resource_directory(name: str) -> Path:
    packaged = Path(__file__).with_name(f"_{name}")
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / name

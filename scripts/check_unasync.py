"""Fail when a sync twin is not what unasyncd generates from its ``*_async.py`` source.

unasyncd's own ``--check`` compares a source with its last generation, not the twin on disk:
a hand edit of the twin passes it. This generates every twin afresh in a scratch copy (the
project's pyproject.toml, hence the same unasyncd and ruff settings) and compares the files.
Run by ``nox -s unasync-check`` (which ``nox -s ci`` runs), with unasyncd and ruff installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    files: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
        "unasyncd"
    ]["files"]
    stale = []
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        shutil.copy(ROOT / "pyproject.toml", work / "pyproject.toml")
        for source in files:
            (work / source).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / source, work / source)
        tool = Path(sys.executable).parent / "unasyncd"  # this environment's, not PATH's
        done = subprocess.run([str(tool), "--write", "--no-cache", "--force"], cwd=work)
        if done.returncode not in (0, 1):  # 1: it wrote files (as formatters say so)
            return done.returncode
        for source, target in files.items():
            if not (work / target).is_file():
                stale.append(f"unasyncd wrote no {target} from {source}")
                continue
            generated = (work / target).read_text(encoding="utf-8")
            if generated != (ROOT / target).read_text(encoding="utf-8"):
                stale.append(f"{target} is not what {source} generates: run nox -s unasync")
    print("\n".join(stale) or f"{len(files)} sync twin(s) up to date")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())

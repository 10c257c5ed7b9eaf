"""`pip install ./python` works offline (the build backend is in the tree) and
installs a typed package that imports without the source tree."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from harness import PYTHON, ROOT


def test_pip_installs_the_package_offline(tmp_path: Path):
    target = tmp_path / "site"
    result = subprocess.run(
        [PYTHON, "-m", "pip", "install", "--no-index", "--no-deps", "--target", str(target),
         str(ROOT / "python")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    installed = target / "singleton_lock"
    assert (installed / "py.typed").exists() and (installed / "elector.py").exists()
    metadata = next(target.glob("singleton_lock-*.dist-info")) / "METADATA"
    text = metadata.read_text()
    assert "Requires-Dist: psycopg>=3.1" in text and "Name: singleton-lock" in text
    check = subprocess.run(
        [PYTHON, "-c", "import singleton_lock, sys; print(singleton_lock.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(target)})
    assert check.returncode == 0 and check.stdout.startswith(str(target)), check.stderr


def test_wheel_lists_every_file_with_its_hash(tmp_path: Path):
    sys.path.insert(0, str(ROOT / "python"))
    import build_backend
    name = build_backend.build_wheel(str(tmp_path))
    with zipfile.ZipFile(tmp_path / name) as wheel:
        names = set(wheel.namelist())
        record = wheel.read(next(n for n in names if n.endswith("RECORD"))).decode()
    listed = {line.split(",")[0] for line in record.splitlines() if line}
    assert listed == names
    assert not any("__pycache__" in n for n in names)

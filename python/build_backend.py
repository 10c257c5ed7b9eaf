"""A minimal PEP 517 build backend for this pure-Python package, standard
library only. Why not setuptools: pip builds in an isolated environment and
would download the backend from a package index; this one is in the tree, so
`pip install ./python` works offline. It builds a wheel (PEP 427) of the
`singleton_lock` directory, with the metadata of pyproject.toml's [project]."""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
PACKAGE = "singleton_lock"


def _project() -> Dict[str, Any]:
    text = (HERE / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib  # Python >= 3.11
    except ImportError:  # the few keys we use, in the simple form we write them
        section = text.split("[project]", 1)[1]
        project: Dict[str, Any] = dict(re.findall(r'^([\w-]+) = "([^"]*)"', section, re.M))
        deps = re.search(r"^dependencies = \[(.*?)\]", section, re.M | re.S)
        project["dependencies"] = re.findall(r'"([^"]+)"', deps.group(1)) if deps else []
        return project
    return tomllib.loads(text)["project"]


def _metadata(project: Dict[str, Any]) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}",
             f"Version: {project['version']}", f"Summary: {project.get('description', '')}",
             f"Requires-Python: {project.get('requires-python', '>=3.9')}"]
    lines += [f"Requires-Dist: {dep}" for dep in project.get("dependencies", [])]
    lines += [f"Classifier: {c}" for c in project.get("classifiers", [])]
    readme = HERE / "README.md"
    if readme.exists():
        lines += ["Description-Content-Type: text/markdown", "", readme.read_text("utf-8")]
    return "\n".join(lines) + "\n"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _package_files() -> List[Path]:
    return sorted(p for p in (HERE / PACKAGE).rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


def build_wheel(wheel_directory: str, config_settings: Optional[dict] = None,
                metadata_directory: Optional[str] = None) -> str:
    project = _project()
    dist = f"{project['name'].replace('-', '_')}-{project['version']}"
    wheel_name = f"{dist}-py3-none-any.whl"
    files = {str(p.relative_to(HERE)): p.read_bytes() for p in _package_files()}
    files[f"{dist}.dist-info/METADATA"] = _metadata(project).encode()
    files[f"{dist}.dist-info/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: singleton_lock build_backend\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n").encode()
    record = [_record_line(name, data) for name, data in files.items()]
    record.append(f"{dist}.dist-info/RECORD,,")
    files[f"{dist}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(Path(wheel_directory) / wheel_name, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return wheel_name


def get_requires_for_build_wheel(config_settings: Optional[dict] = None) -> List[str]:
    return []

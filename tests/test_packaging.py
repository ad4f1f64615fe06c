"""The distributions carry the license text (MIT asks for it with every copy), and every
module of the package, subpackages included."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_the_sdist_and_the_wheel_include_the_license_and_every_module(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "trio_parallel_cm",
        source / "trio_parallel_cm",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            "--sdist",
            "--wheel",
            "--outdir",
            str(dist),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License")
    [wheel] = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [in_wheel] = [name for name in names if name.endswith(".dist-info/licenses/LICENSE")]
        assert archive.read(in_wheel).decode() == license_text
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        assert b"License-File: LICENSE" in metadata
        package = ROOT / "trio_parallel_cm"
        modules = {path.relative_to(ROOT).as_posix() for path in package.rglob("*.py")}
        assert "trio_parallel_cm/_engine/_holder.py" in modules
        assert modules <= set(names)
    [sdist] = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        [member] = [m for m in archive.getmembers() if m.name.endswith("/LICENSE")]
        extracted = archive.extractfile(member)
        assert extracted is not None
        assert extracted.read().decode() == license_text

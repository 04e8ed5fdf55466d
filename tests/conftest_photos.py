"""Real portrait photos for face tests, fetched once from PyPI and never committed.

The sdist of face-recognition 1.3.0 (MIT) ships test photos of two people in
``tests/test_images/`` (obama*.jpg, biden.jpg). The fixture fetches it with pip into
``<repo>/.cache/face-recognition-sdist/`` (gitignored) and extracts the JPEGs; it skips,
saying why, when pip cannot reach the index. CI can prefetch it with:

    python -m pip download --no-binary :all: --no-deps face-recognition==1.3.0 \
        -d .cache/face-recognition-sdist

Use it from a test module with ``from conftest_photos import face_photos  # noqa: F401``.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

SDIST = "face_recognition-1.3.0.tar.gz"
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "face-recognition-sdist"
PHOTOS = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")


def _fetch_sdist() -> Path:
    archive = CACHE / SDIST
    if archive.is_file():
        return archive
    CACHE.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
               "face-recognition==1.3.0", "-d", str(CACHE)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot fetch the face-recognition sdist for real photos: {exc}")
    if done.returncode != 0 or not archive.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        pytest.skip(f"pip could not fetch the face-recognition sdist for real photos: {tail[0]}")
    return archive


@pytest.fixture(scope="session")
def face_photos() -> dict[str, Path]:
    """Name -> path of real portrait photos (3 of one person, 1 of another)."""
    folder = CACHE / "photos"
    if not all((folder / name).is_file() for name in PHOTOS):
        archive = _fetch_sdist()
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if name in PHOTOS and "/tests/test_images/" in member.name and member.isfile():
                    source = tar.extractfile(member)
                    assert source is not None
                    (folder / name).write_bytes(source.read())
    missing = [name for name in PHOTOS if not (folder / name).is_file()]
    if missing:
        pytest.skip(f"the face-recognition sdist lacks {missing}")
    return {name: folder / name for name in PHOTOS}

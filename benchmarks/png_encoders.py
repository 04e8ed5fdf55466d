"""Which lossless PNG encoder `segue protect` should use: time and size per photo.

Encodes the same photos (WebFace10 224 px crops and one 12 MP photo, as protected by
the shipped model: ``segue protect`` with PNG out) with every
candidate installed, checks that each file decodes to exactly the pixels given, and
reports the median time and the mean file size. Candidates not installed are listed as
such (``pip install imagecodecs fpng`` to include them; segue itself depends on neither).

    python benchmarks/png_encoders.py --photos 200 --repeat 3
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
import zlib
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.protect_bench import DEFAULT_DATA  # noqa: E402
from segue_cli.imageio import encode_image  # noqa: E402


def _pillow(**options: object) -> Callable[[np.ndarray], bytes]:
    def encode(rgb: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="PNG", **options)
        return buffer.getvalue()
    return encode


def _opencv(level: int, rle: bool = False) -> Callable[[np.ndarray], bytes]:
    strategy = [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE] if rle else []

    def encode(rgb: np.ndarray) -> bytes:
        ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, level, *strategy])
        assert ok
        return data.tobytes()
    return encode


def candidates() -> tuple[dict[str, Callable[[np.ndarray], bytes]], list[str]]:
    found: dict[str, Callable[[np.ndarray], bytes]] = {
        "segue (encode_image: OpenCV level 1, RLE)": lambda rgb: encode_image(rgb, image_format="png"),
        "Pillow, zlib Z_RLE (segue before)": _pillow(compress_type=zlib.Z_RLE),
        "Pillow default (level 6)": _pillow(),
        "Pillow compress_level=1": _pillow(compress_level=1),
        "OpenCV level 1": _opencv(1),
        "OpenCV level 3 (its default)": _opencv(3),
        "OpenCV level 1, RLE": _opencv(1, rle=True),
    }
    missing = []
    try:
        import imagecodecs

        found["imagecodecs libpng level 1, RLE, SUB (its fast setting)"] = (
            lambda rgb: bytes(imagecodecs.png_encode(rgb, level=1, strategy=3, filter=16)))
    except ImportError:
        missing.append("imagecodecs")
    try:
        import fpng

        found["fpng"] = lambda rgb: bytes(fpng.from_ndarray(rgb))
    except (ImportError, AttributeError):
        missing.append("fpng")
    return found, missing


def photos(count: int, folder: Path) -> list[np.ndarray]:
    """``count`` WebFace10 crops and one 12 MP photo, protected by the shipped model."""
    import subprocess

    from skimage.data import astronaut

    paths = sorted(Path(DEFAULT_DATA / "train").rglob("*.jpg"))
    source = folder / "photos"
    source.mkdir()
    for index, path in enumerate(paths[:: max(1, len(paths) // count)][:count]):
        (source / f"{index:03d}.jpg").write_bytes(path.read_bytes())
    big = cv2.resize(astronaut(), (4000, 4000), interpolation=cv2.INTER_CUBIC)[:3000]
    Image.fromarray(big).save(source / "big.png")
    subprocess.run([sys.executable, "-m", "segue_cli", "protect", str(source), "--out", str(folder / "out"), "-q"],
                   check=True)
    outputs = sorted((folder / "out").glob("*.png"))
    big_output = folder / "out" / "big.png"
    return [np.asarray(Image.open(p).convert("RGB")) for p in outputs if p != big_output] + [
        np.asarray(Image.open(big_output).convert("RGB"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=200, help="WebFace10 crops (plus one 12 MP photo)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="segue-png-") as folder:
        images = photos(args.photos, Path(folder))
    crops, big = images[:-1], images[-1]
    encoders, missing = candidates()
    print(f"{len(crops)} protected crops of 224 px and one protected {big.shape[1]}x{big.shape[0]} photo; "
          f"median of {args.repeat}; zlib {zlib.ZLIB_VERSION}\n")
    print("| encoder | ms per 224 px crop | KiB per crop | s per 12 MP photo | MiB per 12 MP | lossless |")
    print("|---|---|---|---|---|---|")
    for name, encode in encoders.items():
        exact = all(np.array_equal(np.asarray(Image.open(io.BytesIO(encode(rgb))).convert("RGB")), rgb)
                    for rgb in crops[:20] + [big])
        crop_times, big_times = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            sizes = [len(encode(rgb)) for rgb in crops]
            crop_times.append((time.perf_counter() - started) / len(crops))
            started = time.perf_counter()
            big_size = len(encode(big))
            big_times.append(time.perf_counter() - started)
        print(f"| {name} | {1000 * statistics.median(crop_times):.2f} | {np.mean(sizes) / 1024:.1f} | "
              f"{statistics.median(big_times):.2f} | {big_size / 2**20:.1f} | {'yes' if exact else 'NO'} |")
    if missing:
        print(f"\nnot installed, not measured: {', '.join(missing)}")


if __name__ == "__main__":
    main()

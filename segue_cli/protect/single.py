"""One image in, one protected image out: ``segue protect in.jpg --out out.png`` (or
``--out -``), and image bytes through a pipe (``cat a.jpg | segue protect --identity X -
> a.png``). No output folder, marker, settings record or lock: the output is the one file
named, or standard output. The pixels and the bytes are those a folder run writes for the
same photo and options (``Protector.protect_file``: the same decode, compose and encode).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Literal

from ..errors import InputError, OutputError
from ..formats import lossy_warning, suffix_format
from ..job import FileResult, ProtectSummary
from ..storage import atomic_write, local, read_bytes
from .config import ProtectConfig
from .side_information import default_identity

STDOUT = "-"
DONE = "output exists and holds exactly what this run would write (already protected; --overwrite to redo)"


def single_output(config: ProtectConfig) -> bool:
    """Whether ``config`` asks for one output file (or stdout) rather than a folder: OUT is
    ``-`` or a name with an image suffix that is not an existing folder."""
    out = config.out
    if out is None or "://" in str(out):
        return False
    if str(out) == STDOUT:
        return True
    suffix = Path(out).suffix
    if suffix_format(suffix) is not None:
        return not Path(out).is_dir()
    if suffix and not os.path.lexists(out) and os.path.isfile(os.path.expanduser(str(config.input))):
        # out.txt for one photo is a slip for an image name: a folder called out.txt would surprise.
        raise InputError(f"--out {out} is not an image name ({suffix} is no format segue writes) and no folder of "
                         "that name exists", "name the output file out.png, out.jpg or out.webp; to write into a "
                         f"new folder called {Path(out).name}, make it first (mkdir)")
    return False


def output_format(config: ProtectConfig) -> str:
    """The format of the one output: --format if given, else the output name's suffix (PNG for stdout)."""
    named = suffix_format(Path(str(config.out)).suffix) if config.out is not None and str(config.out) != STDOUT else None
    if named is None and config.out is not None and str(config.out) != STDOUT:  # an image piped in, --out out.txt
        raise InputError(f"--out {config.out} names no image file (.png, .jpg or .webp) for the one image piped in",
                         "name the output file out.png, out.jpg or out.webp, or pass --out - for standard output")
    if named is not None and config.image_format != "png" and named != config.image_format:
        raise InputError(f"--out {config.out} names a {named.upper()} file but --format is {config.image_format}",
                         "make the two agree, or drop --format (the suffix decides)")
    return named or config.image_format


def protect_single(config: ProtectConfig, data: bytes | None = None) -> tuple[bytes, FileResult, ProtectSummary]:
    """Protect one image: ``data`` (bytes from a pipe) or the file ``config.input``. Writes
    ``config.out`` unless it is ``-`` (the caller writes the returned bytes to stdout)."""
    from ..protector import Protector

    if config.engine != "local":
        raise InputError("one image in and one out runs on this machine", "drop --engine, or protect a folder")
    if config.by_folder or config.labels is not None:
        raise InputError("--by-folder and --labels name people by folder or file list; one image has neither",
                         "pass --identity NAME or --label N")
    source = "<stdin>" if data is None and str(config.input) == "-" else str(config.input)
    if data is None:
        data = read_bytes(local(config.input))
    if config.identity is None and config.label is None:
        if str(config.input) == "-":
            raise InputError("an image on stdin has no folder to name its person", "pass --identity NAME or --label N")
        name = Path(os.path.abspath(config.input)).parent.name  # as a folder run names its default identity
        identity: str | None = name
    else:
        identity = config.identity
    image_format = output_format(config)
    target = None if str(config.out) == STDOUT else Path(os.path.abspath(str(config.out)))
    if target is not None and str(config.input) != "-" and target.exists() and os.path.samefile(target, config.input):
        raise OutputError(f"--out {config.out} is the input itself", "name another file: inputs are never overwritten")
    started = time.perf_counter()
    protector = Protector(config.model, config.backend, config.device, config.faces, config.detector,
                          config.max_pixels, threads=config.generator_threads, cloak=config.cloak, strength=config.strength)
    code = protector.code_for(identity=identity, label=config.label)
    quality = config.quality if image_format != "png" else None
    encoded, notes = protector.protect_file(data, code, image_format, quality, config.keep_metadata)
    status = "written" if target is None else _write_unless_done(target, encoded, config)
    info = protector.info
    result = FileResult(source, "<stdout>" if target is None else str(target), status, notes=tuple(notes), code=code,
                        reason=DONE if status == "skipped" else None)
    side = (f"label {config.label}" if identity is None else f"identity {identity!r}" if config.identity is not None
            else default_identity(identity, f"code {code}", "the folder the file is in", one_photo=True))
    summary = ProtectSummary(out_dir="<stdout>" if target is None else str(target.parent), side_information=side, model=str(info.model_path), model_sha256=info.model_sha256,
                             backend=info.name, device=info.device, image_format=image_format, epsilon=info.epsilon,
                             file_sha256=info.file_sha256, protection=protector.protection, total=1,
                             cloak_networks=config.cloak.networks if config.cloak else ())
    if info.note:
        summary.warnings.append(info.note)
    warning = lossy_warning(image_format, quality)
    if warning:
        summary.warnings.append(warning)
    summary.count(result)
    summary.seconds = time.perf_counter() - started
    return encoded, result, summary


def _write_unless_done(target: Path, encoded: bytes, config: ProtectConfig) -> Literal["written", "skipped"]:
    """Write the one output, as a folder re-run does: an existing file that is byte for byte
    what this run makes is done (skipped); any other is refused, never silently replaced.
    Outputs are deterministic, so the bytes themselves prove the same input and settings."""
    if target.exists() and not config.overwrite:
        if target.is_file() and target.stat().st_size == len(encoded) and target.read_bytes() == encoded:
            return "skipped"
        raise OutputError(f"{config.out} exists and is not what this run would write (another photo, or other "
                          "settings: model, identity, strength, format...)",
                          "pass --overwrite to replace it, or name another file")
    atomic_write(target, lambda tmp: tmp.write_bytes(encoded))
    return "written"

"""One image in, one file out: ``segue protect in.jpg --out out.png`` (or ``--out -``), and
image bytes through a pipe (``cat a.jpg | segue protect --identity X - > a.png``), as
``protect()`` runs them when the destination is :class:`~.config.OneFile` or
:class:`~.config.Stdout`. No output folder, marker, settings record or lock: the output is
the one file named, or standard output. The pixels and the bytes are those a folder run
writes for the same photo and options (``Protector.protect_file``: the same decode, compose
and encode).
"""

from __future__ import annotations

import sys
import time
from typing import Literal

from ..errors import InputError, OutputError
from ..choices import lossy_warning
from ..progress import ProgressCallback, ignore
from ..storage import atomic_write, read_bytes, local
from .config import ImageFile, OneFile, PipedImage, ProtectConfig, Stdout
from .job import FileResult, ProtectSummary, default_identity, file_finished

DONE = "output exists and holds exactly what this run would write (already protected; --overwrite to redo)"


def protect_single(config: ProtectConfig, on_event: ProgressCallback | None = None) -> ProtectSummary:
    """Protect one image (piped in, or the file INPUT) into the file OUT, or to standard
    output; its result is reported through ``on_event`` as a folder run reports each file."""
    from ..photo.protector import Protector

    source, destination = config.source, config.destination
    assert isinstance(source, (ImageFile, PipedImage)) and isinstance(destination, (OneFile, Stdout))
    if isinstance(destination, Stdout) and sys.stdout.isatty():
        raise InputError("refusing to write image bytes to a terminal",
                         "redirect standard output (> protected.png) or pass --out FILE.png")
    if config.engine != "local":
        raise InputError("one image in and one out runs on this machine", "drop --engine, or protect a folder")
    if config.cloak is not None and config.cloak.pairs_people:
        raise InputError("--cloak-target others pairs the people of a folder run; one image has no other people",
                         "protect a folder of several people with --by-folder, or give --cloak-target PATH")
    if config.by_folder or config.labels is not None:
        raise InputError("--by-folder and --labels name people by folder or file list; one image has neither",
                         "pass --identity NAME or --label N")
    if isinstance(source, PipedImage):
        shown, data = "<stdin>", source.data
    else:
        shown, data = source.shown, read_bytes(local(source.path))
    if config.identity is None and config.label is None:
        if isinstance(source, PipedImage):
            raise InputError("an image on stdin has no folder to name its person", "pass --identity NAME or --label N")
        identity: str | None = source.path.parent.name  # as a folder run names its default identity
    else:
        identity = config.identity
    image_format = destination.image_format
    started = time.perf_counter()
    protector = Protector(config.model, config.backend, config.device, config.faces, config.detector,
                          config.max_pixels, threads=config.generator_threads, cloak=config.cloak, strength=config.strength)
    code = protector.code_for(identity=identity, label=config.label)
    quality = config.quality if image_format != "png" else None
    encoded, notes = protector.protect_file(data, code, image_format, quality, config.keep_metadata)
    if isinstance(destination, Stdout):
        status: Literal["written", "skipped"] = "written"
        sys.stdout.buffer.write(encoded)
        sys.stdout.buffer.flush()
    else:
        status = _write_unless_done(destination, encoded, config.overwrite)
    info = protector.info
    target = "<stdout>" if isinstance(destination, Stdout) else str(destination.path)
    result = FileResult(shown, target, status, notes=tuple(notes), code=code, reason=DONE if status == "skipped" else None)
    side = (f"label {config.label}" if identity is None else f"identity {identity!r}" if config.identity is not None
            else default_identity(identity, f"code {code}", "the folder the file is in", one_photo=True))
    summary = ProtectSummary(out_dir="<stdout>" if isinstance(destination, Stdout) else str(destination.path.parent),
                             side_information=side, model=str(info.model_path), model_sha256=info.model_sha256,
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
    (on_event or ignore)(file_finished(result))
    return summary


def _write_unless_done(destination: OneFile, encoded: bytes, overwrite: bool) -> Literal["written", "skipped"]:
    """Write the one output, as a folder re-run does: an existing file that is byte for byte
    what this run makes is done (skipped); any other is refused, never silently replaced.
    Outputs are deterministic, so the bytes themselves prove the same input and settings."""
    target = destination.path
    if target.exists() and not overwrite:
        if target.is_file() and target.stat().st_size == len(encoded) and target.read_bytes() == encoded:
            return "skipped"
        raise OutputError(f"{destination.shown} exists and is not what this run would write (another photo, or other "
                          "settings: model, identity, strength, format...)",
                          "pass --overwrite to replace it, or name another file")
    atomic_write(target, lambda tmp: tmp.write_bytes(encoded))
    return "written"

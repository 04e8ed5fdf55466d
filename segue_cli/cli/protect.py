"""Protect photos before sharing them: adds the Segue perturbation (at most 8/255 per
pixel; side by side a visible colour cast) that a face-recognition model trained on them
learns in place of the faces. With the shipped model that protects partly against a model
trained on the photos from scratch (37.5-42% where the originals give 85.5%), and against
an existing face-recognition network only with --cloak: docs/model-card.md, "Threat model".

INPUT is a folder (searched recursively), one image file, or - for standard input: an
image's bytes (cat a.jpg | segue protect --identity X - > a-protected.png) or, when stdin
is text, image paths (one per line, or NUL-separated as from find -print0). Outputs
mirror the input's relative paths in --out (default: INPUT-protected beside INPUT, never
inside it), keep each photo's full size, and are PNG unless --format says otherwise.
One image in and an --out with an image suffix (out.png) writes that one file; --out -
writes it to standard output. Existing outputs that the folder's record proves done are
skipped, so a re-run finishes an interrupted job; --overwrite redoes them. EXIF and GPS
metadata are removed unless --keep-metadata.

Faces: an attacker crops and aligns each face before training, so by default photos
whose shorter side is over twice the model's working size (224 px for the default
112 px model) are protected face by face: each detected face is aligned, perturbed at
the working size and warped back; nothing else in the photo changes. Smaller photos are
taken for face crops and protected whole, and so are photos where no face is found
(each one is reported). --faces forces face-aware protection for every photo,
--no-faces turns it off.

Side information (who is in the photos): --identity NAME, --label N, --labels FILE or
--by-folder; with none of them every photo gets one identity named after the input
folder. Every face in a photo gets the photo's code. Exit codes: 0 all done, 1 some
files failed (each is listed), 2 usage error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..photo.cloak import CloakConfig
from ..faces import DETECTOR_CHOICES
from ..choices import DEFAULT_MAX_PIXELS, DEFAULT_STRENGTH, STRENGTHS
from ..errors import InputError
from .options import DeviceOption, JsonOption, ModelOption
from .protect_report import ProtectReport, stopping_on_sigterm


def protect(
    input_path: Annotated[Optional[str], typer.Argument(metavar="INPUT", help="Folder (recursive), image file, or - to read image paths from stdin.", show_default=False)] = None,
    example: Annotated[bool, typer.Option("--example", help="Protect the example portrait that ships with segue (NASA's public-domain astronaut photo) into ./segue-example-protected/, with the original beside it, to see what protection does before using your own photos.")] = False,
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Output folder (or, with --engine ray, an object-store URI such as s3://bucket/protected). Default: INPUT-protected beside INPUT (for a file or stdin list: beside their folder). For one image in (a file, or an image piped to -): a file name with an image suffix (out.png, out.jpg, out.webp; the suffix sets the format) writes that file, and - writes the image to standard output (the default for an image piped in).")] = None,
    identity: Annotated[Optional[str], typer.Option("--identity", help="All photos show this one person; the name is hashed to a stable code.")] = None,
    label: Annotated[Optional[int], typer.Option("--label", help="All photos get this integer label (0..65535) as side information.")] = None,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="CSV with path,label per photo (as written by `segue cluster`); paths relative to the CSV.")] = None,
    by_folder: Annotated[bool, typer.Option("--by-folder", help="The first sub-folder under INPUT names the person (INPUT/<identity>/...).")] = False,
    model: ModelOption = None,
    backend: Annotated[str, typer.Option("--backend", help="Inference engine: auto (ONNX Runtime for .onnx files, else torch), torch or onnx.")] = "auto",
    device: DeviceOption = "auto",
    image_format: Annotated[str, typer.Option("--format", help="Output format: png (lossless, default), jpeg or webp (lossy: weakens protection).")] = "png",
    quality: Annotated[Optional[int], typer.Option("--quality", help="JPEG/WebP quality 1-100 (default 95). Lower quality removes more of the protection.")] = None,
    keep_metadata: Annotated[bool, typer.Option("--keep-metadata", help="Copy EXIF (camera, date, GPS position...) into the outputs. Default: removed.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Redo photos whose output already exists (default: skip them).")] = False,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Threads that decode and encode images. Default: half the CPU cores (at most 8); the generator gets the rest. With --cloak: all the cores (at most 8), each cloaking one photo.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Photos per generator call (photos of the same working size are batched together).")] = 16,
    max_pixels: Annotated[int, typer.Option("--max-pixels", help="Refuse images with more pixels than this (decompression bombs).")] = DEFAULT_MAX_PIXELS,
    faces: Annotated[Optional[bool], typer.Option("--faces/--no-faces", show_default=False, help="Face-aware protection: perturb each detected face's aligned crop (what an attacker trains on). Default (neither flag): on for photos whose shorter side is over 2 x the model's working size (224 px for the default model), off for smaller ones (face crops). Photos with no face fall back to whole-image protection and are reported. Every face gets the photo's side information.")] = None,
    detector: Annotated[str, typer.Option("--detector", help=f"Face detector for face-aware protection: {', '.join(DETECTOR_CHOICES)} (auto = YuNet, else dlib). YuNet also finds profile and small faces; dlib's HOG finds frontal faces.")] = "auto",
    engine: Annotated[str, typer.Option("--engine", help="Where the work runs: local (this machine's threads) or ray (a Ray cluster through Ray Data, for large batches; needs pip install 'segue[ray]'). The same inputs, outputs, codes and settings record; byte-identical files. With ray, INPUT and --out may be object-store URIs (s3://bucket/prefix; credentials and endpoint from the AWS_* variables).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="With --engine ray: the cluster to join (auto, or HOST:PORT of its head). Default: start a local Ray instance for this run.")] = None,
    actors: Annotated[Optional[int], typer.Option("--actors", help="With --engine ray: how many workers protect photos, each holding one model (default: one per CPU of the cluster).")] = None,
    strength: Annotated[str, typer.Option("--strength", help="How much of the model's bound the perturbation may use: low (half: 4/255 for the default model), medium (three quarters: 6/255) or high (all of it: 8/255, the default). Lower keeps the photo closer to the original (less visible: a faint texture and, with the default model, a colour cast) and protects less; the model card gives the figures for each. With --cloak it also sets the cloak's steps (5, 10, 10).")] = DEFAULT_STRENGTH,
    cloak: Annotated[bool, typer.Option("--cloak", help="Also cloak each photo's face against existing face-recognition networks: a per-photo optimisation, within the same 8/255 as the generator's perturbation, that moves the face's descriptor in three networks at once (dlib's ResNet, which face_recognition and many tools use, and two MobileFaceNets; see --cloak-networks), so that a system which enrols the protected photos matches the person's other photos less often. About 1.3 s a photo on one CPU thread at the default 10 steps (the generator alone: milliseconds). Networks it was not made against see through it in part: the model card gives SFace's figures, a network none of the three is. A photo where no face is found is written without a cloak and counted. The two perturbations share the 8/255, so it costs part of the protection against a model trained from scratch on the photos, and it shows as fine texture on the face. Needs pip install 'segue[cloak]'. Figures: docs/protect.md.")] = False,
    cloak_target: Annotated[Optional[str], typer.Option("--cloak-target", show_default=False, help="With --cloak: none (the default) pushes each photo's face away from itself. A photo or folder of photos of ANOTHER person (say, a public figure you pick) also pulls every face toward theirs, Fawkes' target identity. Measured on LFW48, 12 of 48 people each pulled toward their own target (nearest class mean, the cloak alone): SFace, which the cloak is not made against, 72.7% (88.5% with none; 51.5% with --cloak-steps 20), the networks it is made against 7-12% (2-3% with 20 steps); docs/research/2026-12-07-cloak-targets.md. example pulls toward the public-domain portrait of --example, the same face for everyone: when everyone in a set uses it their classes move together and a matching system still tells them apart, so it is only for a few people among many. others (with --by-folder or --labels: a platform protecting many people at once): each person is pulled toward the least similar other person of the same run, read from the run's original photos (about 0.1 s a photo first); each file's JSON record names the person (cloak_toward). The strongest setting measured: WebFace10 through this command, SFace 11.0% by class mean (the three networks 1-2%); on LFW48 (softer photos, about 19 a person) much less, SFace 82.4% (the next person's photos as each target: 69.9%; none: 96.2%); with --cloak-steps 20, the cloak alone on LFW48: SFace 28.9%. The photos then match another member of the set.")] = None,
    cloak_networks: Annotated[Optional[str], typer.Option("--cloak-networks", show_default=False, help="With --cloak: the face networks to cloak against, comma-separated, from dlib, faceplugin, mobilefacenet (default: all three). dlib alone is the earlier, faster cloak (about 0.5 s a photo) that other networks see through.")] = None,
    cloak_steps: Annotated[Optional[int], typer.Option("--cloak-steps", show_default=False, help="With --cloak: optimisation steps a photo (default 10; more: a stronger cloak, proportionally slower and more visible).")] = None,
    cloak_jitter: Annotated[Optional[float], typer.Option("--cloak-jitter", show_default=False, help="With --cloak: every step sees each network's face crop moved and scaled at random by up to this share of its side, as another face detector would place it, so the cloak does not rest on one exact crop (default 0.05; 0: one fixed crop, the cloak before session 18; at most 0.2). 0.05 moved SFace, a network the cloak is not made against, further; 0.1 moved it less (docs/research/2026-12-07-cloak-targets.md).")] = None,
    cloak_texture: Annotated[Optional[float], typer.Option("--cloak-texture", show_default=False, help="With --cloak: the share (0-1) of each pixel's reach that follows the face's local contrast, so flat skin, where a change shows most, changes less and edges and hair take the rest (default 0: the same reach everywhere). Higher keeps the photo closer and cloaks less: 0.5 gave SSIM 0.941 against 0.907 and left SFace 83.6% of 12 cloaked LFW48 people against 72.7% (docs/research/2026-12-07-cloak-targets.md).")] = None,
    cloak_split: Annotated[Optional[str], typer.Option("--cloak-split", show_default=False, help="With --cloak: how the cloak shares the 8/255 with the generator's perturbation. clip (the default): the sum is clipped to the bound channel by channel, which is where the cloak costs part of the generator's protection against a model trained from scratch. keep-colour: the cloak only uses the room left in all three channels, so the generator's colour pattern stays exactly as it was, and the cloak is weaker. Figures: docs/protect.md.")] = None,
    cloak_epsilon: Annotated[Optional[float], typer.Option("--cloak-epsilon", show_default=False, help="With --cloak: the most the cloak changes any pixel of the generator's output, in 1/255 (default: as far as the model's bound allows; the result stays within the model's 8/255 of your photo either way). Less keeps the photo closer to the original and cloaks less.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="If another segue protect is writing to the same --out, wait for it to finish instead of stopping (exit 2).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only (failed files and why): no progress, notes, warnings or summary. The exit code still says how it went.")] = False,
    json_output: JsonOption = False,
) -> None:
    from ..protect.config import ProtectConfig, Stdout, default_workers

    if example:
        if input_path is not None:
            raise InputError("--example protects the shipped example photo; it takes no INPUT",
                             "drop INPUT, or drop --example to protect your own photos")
        input_path, example_out = _example_input(Path(out) if out is not None else None)
        out = str(example_out)
        if identity is None and label is None and labels is None and not by_folder:
            identity = "segue example"
    elif input_path is None:
        raise InputError("no INPUT given", "segue protect ./photos (a folder, a file, or - for paths on stdin); "
                         "segue protect --example to try it on the shipped example photo")
    # Ray's own progress bars on a terminal; in a log file they would be a dump every 10 s.
    chatty_terminal = not (quiet or json_output) and sys.stderr.isatty()
    config = ProtectConfig(
        input=sys.stdin.buffer.read() if input_path == "-" else input_path,  # stdin's bytes: an image, or paths
        out=out, identity=identity, label=label,
        labels=labels, by_folder=by_folder, model=model, backend=backend, device=device, image_format=image_format,
        quality=quality, keep_metadata=keep_metadata, overwrite=overwrite,
        workers=workers if workers is not None else default_workers(cloak), batch_size=batch_size, max_pixels=max_pixels,
        faces="auto" if faces is None else ("on" if faces else "off"), detector=detector, wait=wait,
        engine=engine, ray_address=ray_address, actors=actors, engine_progress=chatty_terminal, quiet=quiet,
        cloak=_cloak_config(cloak, cloak_steps, cloak_epsilon, cloak_split, strength, cloak_networks, cloak_target,
                            cloak_jitter, cloak_texture),
        strength=strength,
    )
    if json_output and isinstance(config.destination, Stdout):
        raise InputError("--json writes JSON to standard output, which --out - fills with the image",
                         "pass --out FILE.png with --json")
    from ..protect import protect as run_protect  # the pipeline's imports, once the options are known good

    report = ProtectReport(quiet, json_output, config.one_image)
    with report.live(), stopping_on_sigterm() as stopped:
        try:
            summary = run_protect(config, report)
        except KeyboardInterrupt:
            report.interrupted()
            raise typer.Exit(143 if stopped else 130) from None
    after = (f"example: before {Path(out) / EXAMPLE_ORIGINAL}, after {Path(out) / EXAMPLE_NAME}; now try "
             "`segue protect YOUR_FOLDER`") if example and out is not None else None
    report.finish(summary, after)
    if summary.failed or summary.stopped:
        raise typer.Exit(1)


def _cloak_config(cloak: bool, steps: Optional[int], epsilon: Optional[float], split: Optional[str],
                  strength: str, networks: Optional[str] = None, target: Optional[str] = None,
                  jitter: Optional[float] = None, texture: Optional[float] = None) -> Optional[CloakConfig]:
    given = [name for name, value in (("--cloak-steps", steps), ("--cloak-epsilon", epsilon), ("--cloak-split", split),
                                      ("--cloak-networks", networks), ("--cloak-target", target),
                                      ("--cloak-jitter", jitter), ("--cloak-texture", texture)) if value is not None]
    if given and not cloak:
        raise InputError(f"{' and '.join(given)} apply with --cloak only", f"add --cloak, or drop {' and '.join(given)}")
    if not cloak:
        return None
    if steps is None and strength in STRENGTHS:
        steps = STRENGTHS[strength][1]  # the preset's steps, unless --cloak-steps says
    defaults = CloakConfig()
    return CloakConfig(steps=defaults.steps if steps is None else steps, epsilon=epsilon,
                       split=defaults.split if split is None else split,
                       networks=defaults.networks if networks is None else tuple(n.strip() for n in networks.split(",")),
                       target=defaults.target if target is None else target,
                       jitter=defaults.jitter if jitter is None else jitter,
                       texture=defaults.texture if texture is None else texture)


EXAMPLE_NAME = "example-astronaut.png"
EXAMPLE_ORIGINAL = "example-astronaut-original.png"


def _example_input(out: Optional[Path]) -> tuple[str, Path]:
    """The shipped example photo, and the folder it goes to (its original copied beside the
    protected one, so the two can be compared)."""
    import shutil
    from importlib import resources

    source = resources.files("segue_cli") / "data" / EXAMPLE_NAME
    out = out if out is not None else Path.cwd() / "segue-example-protected"
    out.mkdir(parents=True, exist_ok=True)
    with resources.as_file(source) as path:
        original = out / EXAMPLE_ORIGINAL
        if not original.exists():
            shutil.copyfile(path, original)
        return str(path), out

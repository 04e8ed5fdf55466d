"""The side-information policy: which code each file gets (``--identity``, ``--label``,
``--labels``, ``--by-folder`` or the input folder's name), and the settings record that
makes a re-run under other settings refuse instead of skipping.

The mapping from a name or label to a code is :class:`segue_cli.nn.codes.CodeSpace`'s;
this module only decides which name or label applies to a file."""

from __future__ import annotations

import os
from pathlib import PurePosixPath
from dataclasses import dataclass
from typing import Any, Callable

from ..datasets import read_labels_csv
from ..errors import ConfigError, InputError
from ..nn.codes import CodeSpace
from .config import ProtectConfig
from .job import PlannedFile
from ..storage import file_sha256
from .inputs import InputSet


@dataclass(frozen=True)
class SideInformation:
    description: str  # for the summary
    key: str  # what the codes depend on, for the output folder's settings record
    code_of: Callable[[PlannedFile], int]  # raises InputError for a file it has no code for


def side_information(config: ProtectConfig, inputs: InputSet, space: CodeSpace) -> SideInformation:
    """Where each file's code comes from. The default identity and --identity with the
    input folder's name give the same codes, and the same key."""
    if config.identity is not None:
        code = space.identity(config.identity)
        return SideInformation(f"identity {config.identity!r} (code {code}{space.of_decoys()})", f"identity {config.identity}",
                               lambda planned: code)
    if config.label is not None:
        code = space.label(config.label)
        return SideInformation(f"label {config.label} (code {code}{space.of_decoys()})", f"label {config.label}", lambda planned: code)
    if config.labels is not None:
        listed = read_labels_csv(config.labels)
        by_path = {os.path.realpath(item.path): item.identity for item in listed.items}

        def from_csv(planned: PlannedFile) -> int:
            identity = by_path.get(os.path.realpath(planned.source.path))
            if identity is None:
                raise InputError(f"not listed in {config.labels}", "add it to the labels file, or protect it separately")
            return space.folder(identity)

        return SideInformation(f"labels from {config.labels} ({len(listed.identities)} identities)",
                               f"labels file sha256 {file_sha256(config.labels)}", from_csv)
    if config.by_folder:

        def from_folder(planned: PlannedFile) -> int:
            if inputs.kind == "file":
                return space.folder(os.path.basename(inputs.root.path))
            if len(planned.relative.parts) < 2:
                raise InputError("is not inside an identity sub-folder (--by-folder)",
                                 "move it into <identity>/, or protect it with --identity NAME")
            return space.folder(planned.relative.parts[0])

        return SideInformation("identity = first sub-folder under the input (--by-folder)", "by folder", from_folder)
    name = PurePosixPath(inputs.root.path).name
    if not name:
        raise ConfigError(f"cannot name a default identity after {inputs.root.uri}", "pass --identity NAME")
    code = space.identity(name)
    where = {"folder": "the input folder", "file": "the folder the file is in"}.get(inputs.kind, "the input's folder")
    return SideInformation(default_identity(name, f"code {code}{space.of_decoys()}", where), f"identity {name}",
                           lambda planned: code)


def default_identity(name: str, code: str, where: str, one_photo: bool = False) -> str:
    """The one line that says a run took its identity from a folder's name, and how to
    change it: a silent default would protect a family's photos as one person."""
    if one_photo:
        return (f"identity {name!r} ({code}): the default, the name of {where}. Pass --identity NAME for the "
                "person the photo shows")
    return (f"identity {name!r} ({code}) for every photo: the default, the name of {where}. Pass --identity NAME "
            "for the person the photos show, or --by-folder when each sub-folder holds one person")


def output_settings(config: ProtectConfig, side: SideInformation, model_sha256: str) -> dict[str, Any]:
    """What decides a protected photo's pixels, recorded in OUT so that a re-run under
    other settings is not silently skipped."""
    return {"model_sha256": model_sha256, "side_information": side.key, "faces": config.faces,
            "detector": config.detector if config.faces != "off" else None, "format": config.image_format,
            "quality": config.output_quality, "keep_metadata": config.keep_metadata,
            **({"cloak_steps": config.cloak.steps, "cloak_epsilon": config.cloak.epsilon} if config.cloak else {}),
            **({"cloak_split": config.cloak.split} if config.cloak and config.cloak.split != "clip" else {}),
            # Always, defaults included: issue 40 changed what a plain --cloak makes (three networks and a
            # target, where it was dlib alone), so an OUT cloaked before then must not count as done.
            **({"cloak_networks": list(config.cloak.networks), "cloak_target": config.cloak.target,
                "cloak_smoothing": config.cloak.smoothing} if config.cloak else {}),
            **({"strength": config.strength} if config.strength != "high" else {})}  # absent at their defaults: older records still match

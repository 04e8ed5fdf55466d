"""Side information: the one place that maps identities to generator codes.

The generator is conditioned on a ``code_bits``-bit code (16 in the paper, so 65,536
codes). There are exactly two ways to get a code:

* an integer label ``N`` (a training class, a ``--label``, a cluster index, an
  ImageFolder folder whose name is an integer): the code is ``N`` itself, written in
  binary most-significant bit first, as in the paper (``5 -> 0...0101``);
* a name (``--identity alice``, a folder called ``alice``): the code is the first two
  bytes, big-endian, of ``sha256("segue-identity-v1:" + NFC(name))``, reduced modulo
  ``2**code_bits``. It is the same on every machine, Python version and run.

A model trained with decoys (``segue train --decoys K``) only knows codes 0..K-1: its
:class:`CodeSpace` reduces every label and every name's code modulo K, so a name never
seen in training gets a code the generator learned (people who share a decoy share
their perturbation's shortcut).

The generator sees codes as +/-1 vectors (bit 1 -> +1, bit 0 -> -1) so that a zero bit
still carries a signal.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:
    import torch

DEFAULT_CODE_BITS = 16
_IDENTITY_SALT = "segue-identity-v1:"


def label_code(label: int, code_bits: int = DEFAULT_CODE_BITS) -> int:
    """Code of an integer label: the label itself, checked to fit in ``code_bits``."""
    if isinstance(label, bool) or not isinstance(label, int):
        raise InputError(f"label {label!r} is not an integer", "labels are integers 0..65535")
    if not 0 <= label < 2**code_bits:
        raise InputError(
            f"label {label} does not fit in {code_bits} bits",
            f"use a label between 0 and {2**code_bits - 1}, or --identity NAME",
        )
    return label


def identity_code(name: str, code_bits: int = DEFAULT_CODE_BITS) -> int:
    """Stable code of an identity name (see module docstring for the exact hash)."""
    normalised = unicodedata.normalize("NFC", name.strip())
    if not normalised:
        raise InputError("identity name is empty", "give a non-empty --identity NAME")
    digest = hashlib.sha256((_IDENTITY_SALT + normalised).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % (2**code_bits)


def is_label(name: str) -> bool:
    """Whether a folder or labels-file name is an integer label: ASCII digits only. Other
    digits (``²``, ``٣``) pass ``str.isdigit`` but are names, hashed like any other."""
    return name.isascii() and name.isdigit()


def folder_code(folder_name: str, code_bits: int = DEFAULT_CODE_BITS) -> int:
    """Code of an identity given by a folder name or a labels-file entry.

    Integer names (``"7"``) are labels; any other name is hashed like ``--identity``.
    """
    stripped = folder_name.strip()
    if is_label(stripped):
        return label_code(int(stripped), code_bits)
    return identity_code(stripped, code_bits)


@dataclass(frozen=True)
class CodeSpace:
    """The codes one model understands: ``bits``-bit codes, or only 0..decoys-1."""

    bits: int = DEFAULT_CODE_BITS
    decoys: int = 0  # 0: every bits-bit code

    def _reduced(self, code: int) -> int:
        return code % self.decoys if self.decoys else code

    def label(self, label: int) -> int:
        return self._reduced(label_code(label, self.bits))

    def identity(self, name: str) -> int:
        return self._reduced(identity_code(name, self.bits))

    def folder(self, folder_name: str) -> int:
        return self._reduced(folder_code(folder_name, self.bits))

    def of_decoys(self) -> str:
        """`` of K decoys`` for a decoy model's codes (said beside a code in summaries), else ""."""
        return f" of {self.decoys} decoys" if self.decoys else ""


def code_signs(codes: np.ndarray | list[int] | int, code_bits: int = DEFAULT_CODE_BITS) -> np.ndarray:
    """Codes (shape [B] or scalar) -> float32 array [B, code_bits] of +/-1, MSB first."""
    codes_a = np.asarray(codes, dtype=np.int64).reshape(-1)
    if (codes_a < 0).any() or (codes_a >= 2**code_bits).any():
        raise InputError(f"code out of range for {code_bits} bits: {codes_a.tolist()}")
    shifts = np.arange(code_bits - 1, -1, -1, dtype=np.int64)
    bits = (codes_a[:, None] >> shifts) & 1
    return bits.astype(np.float32) * 2.0 - 1.0


def code_to_signs(codes: torch.Tensor | list[int] | int, code_bits: int = DEFAULT_CODE_BITS) -> torch.Tensor:
    """:func:`code_signs` as a float tensor (on the CPU), for the torch generator."""
    import torch

    plain = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else codes
    return torch.from_numpy(code_signs(plain, code_bits))


def signs_to_codes(signs: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`code_to_signs`: +/-1 rows (MSB first) -> int64 codes, on their device."""
    import torch

    bits = (signs > 0).long()
    weights = 2 ** torch.arange(bits.shape[1] - 1, -1, -1, device=bits.device)
    return (bits * weights).sum(dim=1)


def random_codes(count: int, code_bits: int, generator: torch.Generator) -> list[int]:
    """``count`` distinct random codes, used in training so the generator learns codes it
    will meet at protect time (hashed names) instead of only the training labels."""
    if count > 2**code_bits:
        raise InputError(f"{count} identities do not fit in {code_bits}-bit codes")
    import torch

    perm = torch.randperm(2**code_bits, generator=generator)[:count]
    return [int(c) for c in perm]

"""Options and start-up shared by the per-photo PGD scripts that write a protected tree
(``targeted_poison_probe.py``, ``identity_cloak.py``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def add_pgd_options(parser: argparse.ArgumentParser, steps: int, step: float, batch: int | None) -> None:
    """``batch`` None: the script works a photo at a time and takes no --batch."""
    parser.add_argument("out", type=Path, help="folder for the protected ImageFolder tree (must not exist)")
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--step", type=float, default=step, help="PGD step in 1/255 units")
    parser.add_argument("--epsilon", type=float, default=8.0, help="L-inf budget in 1/255 units")
    if batch is not None:
        parser.add_argument("--batch", type=int, default=batch, help="photos optimised together")
    parser.add_argument("--threads", type=int, default=1)


def start_output(args: argparse.Namespace) -> torch.Generator:
    """Refuse an existing output folder (nothing is overwritten), set the threads, seed."""
    if args.out.exists():
        sys.exit(f"{args.out} exists: choose a new folder (nothing is overwritten)")
    torch.set_num_threads(args.threads)
    return torch.Generator().manual_seed(0)

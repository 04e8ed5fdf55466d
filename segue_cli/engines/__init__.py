"""Engines run a planned ``segue protect`` job: the same files, codes and settings, only
where the work happens differs.

* ``local``: this machine's threads (``protect._Pipeline``), the default;
* ``ray``: a Ray cluster through Ray Data (``engines.ray_engine``, ``pip install "segue[ray]"``),
  which also reads and writes object stores (``s3://...``).

Planning (which inputs, which outputs, which codes, what is skipped, the settings record
and the lock) happens before an engine is chosen, in ``protect.protect``; an engine only
turns planned files into results. Adding one is one entry here.
"""

from __future__ import annotations

ENGINE_CHOICES = ("local", "ray")

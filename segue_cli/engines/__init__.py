"""Engines run a planned ``segue protect`` job: the same files, codes and settings, only
where the work happens differs.

* ``local``: this machine's threads (``protect._Pipeline``), the default;
* ``ray``: a Ray cluster through Ray Data (``engines.ray_engine``, ``pip install "segue[ray]"``),
  which also reads and writes object stores (``s3://...``).

Planning (which inputs, which outputs, which codes, what is skipped, the settings record
and the lock) happens before an engine is chosen, in ``protect.protect``; an engine only
turns planned files into results. Adding one is a name here and a branch at the end of
``protect.protect`` that hands it the planned files (URIs go to ``engines.object_store``,
which plans them, before any local planning).
"""

from __future__ import annotations

ENGINE_CHOICES = ("local", "ray")

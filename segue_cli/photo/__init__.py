"""One photo's way through ``segue protect``, shared by every engine and :class:`segue_cli.Protector`
so that all write the same bytes:

* ``compose``: decode and plan (what the generator sees of a photo: whole, or each face's
  aligned crop, and how its output maps back to full resolution, the bound checked in 8-bit
  levels), batch, compose the deltas (and the cloak) into the protected pixels, encode the
  output file, and the wording of each failure;
* ``cloak``: ``--cloak``, the per-photo identity cloak against an ensemble of face networks.
"""

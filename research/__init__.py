"""Probes and studies (not shipped): each script says its purpose and the command that reproduces its figures; the studies are in docs/research/."""

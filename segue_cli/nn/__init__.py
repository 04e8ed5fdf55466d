"""Neural networks: the Segue generator, the surrogate/attacker builders, distortions."""

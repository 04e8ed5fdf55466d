"""Typer layer only: parse options, build a config, call one core function, render."""

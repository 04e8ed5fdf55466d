"""A request's options (form fields or query parameters) checked into ``protect_file``'s
arguments, with the CLI's words and each field's own range; nothing a client sends is
echoed back unbounded, and no number is parsed past its digits' worth."""

from __future__ import annotations

from typing import Any

from ..choices import DEFAULT_STRENGTH, FACE_MODES, OUTPUT_FORMATS, STRENGTHS, check_choice
from ..errors import ConfigError
from ..errors import quoted as shown

KNOWN = ("identity", "label", "code", "faces", "cloak", "format", "quality", "strength")
TRUE, FALSE = ("true", "1", "on", "yes"), ("false", "0", "off", "no")


def cloak_available() -> bool:
    """Whether this server has the cloak's extra (the page hides its box when it has not)."""
    from ..extras import require
    from ..errors import InputError

    try:
        require("protect --cloak")
    except InputError:
        return False
    return True


def whole_number(options: dict[str, str], name: str, low: int, high: int) -> int | None:
    """``options[name]`` as an int in low..high, or None when absent; refused with the
    field's own range (digits are counted before parsing: Python refuses ints past 4,300)."""
    if name not in options:
        return None
    value = options[name].strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 12 and low <= int(value) <= high):
        raise ConfigError(f"{name} must be a whole number {low}..{high}, got {shown(options[name])}",
                          "or give identity=NAME for a name" if name in ("label", "code") else None)
    return int(value)


def call_options(options: dict[str, str], protector: Any) -> dict[str, Any]:
    """``protect_file``'s arguments from the request's fields."""
    from ..photo.cloak import CloakConfig

    unknown = sorted(set(options) - {*KNOWN, "token"})
    if unknown:
        listed = ", ".join(shown(name, 30) for name in unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        raise ConfigError(f"unknown option(s) {listed}", f"use {', '.join(KNOWN)}")
    given = [name for name in ("identity", "label", "code") if name in options]
    if len(given) != 1:
        raise ConfigError("give exactly one of identity, label or code" + (f" (got {', '.join(given)})" if given else ""),
                          "identity is the name of who is in the photos (it decides the perturbation); "
                          "label and code are whole numbers instead of a name")
    top = 2 ** getattr(getattr(protector, "info", None), "code_bits", 16) - 1
    label, code = whole_number(options, "label", 0, top), whole_number(options, "code", 0, top)
    if "identity" in options and not options["identity"].strip():
        raise ConfigError("identity is empty", "give the name of who is in the photos")
    code = protector.code_for(identity=options.get("identity"), label=label, code=code)
    faces = options.get("faces", "auto")
    check_choice("faces mode", faces, FACE_MODES)
    image_format = options.get("format", "png")
    check_choice("format", image_format, OUTPUT_FORMATS)
    quality = whole_number(options, "quality", 1, 100)
    if quality is not None and not OUTPUT_FORMATS[image_format].lossy:
        raise ConfigError("quality applies to jpeg and webp only, 1..100", "drop quality, or give format=jpeg")
    cloak_word = options.get("cloak", "false").strip().lower()
    if cloak_word not in TRUE + FALSE:
        raise ConfigError(f"cloak must be true or false, got {shown(options['cloak'])}")
    strength = options.get("strength", DEFAULT_STRENGTH)
    check_choice("strength", strength, STRENGTHS)
    cloak = CloakConfig(steps=STRENGTHS[strength][1]) if cloak_word in TRUE else None
    if cloak is not None and not cloak_available():
        # Said to a web user, who cannot install anything on the server: no pip line here.
        raise ConfigError("this server cannot cloak", "protect without the cloak option (its operator did not "
                          "install the cloak's extra)")
    return {"code": code, "image_format": image_format, "quality": quality, "faces": faces, "cloak": cloak,
            "strength": strength}

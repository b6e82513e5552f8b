"""Hostile values the generators draw from (strings as argv would carry them: invalid UTF-8
arrives as surrogate escapes, ``\\udcff``)."""

from __future__ import annotations

import random

TEXT = ["", " ", "\r\n", "x\r\nX-Evil: 1", "\n", "\x00", "\x1b[2J", "\x07", "é", "💥",
        "\udcff", "\udce9abc", "%", "%%", "%00", "{", "}", "{stamp}", "{text}", "{}", ",", "=",
        ":", ";", "'", '"', "\\", "/", "?", "#", "[", "]", "[::1", "-", "--", "a" * 300,
        "a" * 70_000, "x,y", "a=b", "a=b=c", "\t", "\u202e", "\ufeff"]
NUMBERS = ["0", "-0", "1", "-1", "0.0001", "1e-300", "1e308", "-1e308", "1e309", "nan", "NaN",
           "inf", "-inf", "18446744073709551616", "9223372036854775808", "99999999999999999999",
           "0x10", "1_000", "1,2", "1.5", " 2", "2 ", "½", "²", "٣", "1e3", "", "abc"]
TOML_VALUES = ["0", "-1", "1", "1e308", "-1e308", "nan", "inf", "-inf", "1.5", "true", "false",
               "18446744073709551616", "9223372036854775807", '""', '"x"', "[]", "{}", "[1, 2]",
               '"\\r\\n"', '"1-1000000000"', '"0-99999999999999999999"', '"1-²"', "1970-01-01"]


def text(rng: random.Random) -> str:
    """A hostile string, or two glued together."""
    s = rng.choice(TEXT)
    return s + rng.choice(TEXT) if rng.random() < 0.2 else s


def number(rng: random.Random) -> str:
    return rng.choice(NUMBERS) if rng.random() < 0.8 else text(rng)


def toml_string(s: str) -> str:
    """A TOML basic string (JSON escapes; a lone surrogate makes the file invalid TOML,
    which is a case of its own)."""
    out = []
    for ch in s:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif code < 0x20 or code == 0x7F or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(rng: random.Random, good: str) -> str:
    """A TOML value: usually ``good`` (already TOML), else a hostile literal or string."""
    r = rng.random()
    if r < 0.6:
        return good
    if r < 0.85:
        return rng.choice(TOML_VALUES)
    return toml_string(text(rng))

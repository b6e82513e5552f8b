"""Text that is safe to put on a terminal or in a page: control characters shown, not obeyed.

Strings from a config file, a server's bytes or a results file can carry terminal escape
sequences (ESC ] 0 ; title BEL retitles a terminal, ESC [ 2 J clears it) or bidirectional
overrides that reorder what a reader sees. :func:`printable` replaces each such character by
its Python escape (``\\x1b``, ``\\u202e``), so the text shows what it holds and does nothing.
"""

from __future__ import annotations

import re
from typing import Any

# C0 controls (tab, newline and carriage return included), DEL, C1 controls, the Unicode line
# and paragraph separators, and the bidirectional embeddings, overrides and isolates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _shown(m: re.Match) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str, keep: str = "") -> str:
    """``text`` with every control character written as its escape; characters in ``keep``
    (say "\\n" for a multi-line page) are left alone."""
    if keep:
        return re.sub(_UNSAFE, lambda m: m.group() if m.group() in keep else _shown(m), text)
    return _UNSAFE.sub(_shown, text)


def printable_doc(value: Any) -> Any:
    """A JSON-like value with :func:`printable` applied to every string, keys included."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable_doc(k): printable_doc(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable_doc(v) for v in value]
    return value

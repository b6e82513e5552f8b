"""Mangled copies of a real run folder: one hostile edit of run.json (a value replaced, a key
dropped, a list emptied, the bytes cut or spoiled) or of a series CSV."""

from __future__ import annotations

import json
import random
from typing import Any

HOSTILE_JSON: list[Any] = [None, "x", "", 1e308, -1e308, -1, 0, 1, 2**64, -(2**64), 2**63,
                           1.5, True, False, [], {}, [None], {"x": 1}, "NaN", "1e308",
                           [2**64], "\x1b[2J", "a" * 10_000, [[]], -0.0]
BYTE_DOCS = [b"", b"null", b"[]", b"{}", b"1", b"NaN", b"\xff\xfe", b"{\"steps\": null}",
             b"[" * 5000 + b"]" * 5000, b"\xef\xbb\xbf{}", b"{\"schema_version\": 1}"]

Path = tuple[Any, ...]


def nodes(doc: Any, path: Path = ()) -> list[Path]:
    """Every path into ``doc`` (keys and indices), the root excluded."""
    out: list[Path] = []
    items = (doc.items() if isinstance(doc, dict)
             else enumerate(doc) if isinstance(doc, list) else ())
    for key, value in items:
        out.append((*path, key))
        out.extend(nodes(value, (*path, key)))
    return out


def walk_down(rng: random.Random, doc: Any) -> Path:
    """A path chosen by walking down from the root, stopping at each level with p=0.3."""
    path: Path = ()
    node = doc
    while isinstance(node, dict | list) and node and (not path or rng.random() > 0.3):
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        path, node = (*path, key), node[key]
    return path


def edit(rng: random.Random, doc: Any, path: Path) -> None:
    """One edit at ``path``: replace the value, drop the key, or empty/duplicate a list."""
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key, r = path[-1], rng.random()
    if r < 0.15 and isinstance(parent, dict):
        del parent[key]
    elif r < 0.25 and isinstance(parent[key], list):
        parent[key] = [] if rng.random() < 0.5 else parent[key] * 2
    else:
        parent[key] = rng.choice(HOSTILE_JSON)


def mangled_json(rng: random.Random, text: str) -> bytes:
    """run.json with one hostile edit (or spoiled bytes)."""
    r = rng.random()
    if r < 0.08:
        return rng.choice(BYTE_DOCS)
    if r < 0.16:
        raw = text.encode()
        return raw[: rng.randrange(len(raw))]
    if r < 0.2:
        raw = text.encode()
        at = rng.randrange(len(raw))
        return raw[:at] + rng.choice([b"\xff", b"\x00", b"\xc3("]) + raw[at:]
    doc = json.loads(text)
    all_nodes = nodes(doc)
    path = rng.choice(all_nodes) if all_nodes and rng.random() < 0.5 else walk_down(rng, doc)
    if path:
        edit(rng, doc, path)
    return json.dumps(doc).encode()


def mangled_csv(rng: random.Random, raw: bytes) -> bytes:
    lines = raw.split(b"\n")
    at = rng.randrange(len(lines))
    lines[at] = rng.choice([b"", b"x,y,z", b"1e308," * 8, b"\xff", b"-1,-1,-1,-1,-1",
                            b"nan,nan,nan", b",,,,,,,,,,,,"])
    return b"\n".join(lines)


def mangled_folder(rng: random.Random, files: dict[str, bytes]) -> dict[str, bytes]:
    """A copy of a run folder's files with run.json (usually) or a series CSV mangled."""
    out = dict(files)
    csvs = sorted(n for n in files if n.endswith(".csv"))
    if csvs and rng.random() < 0.15:
        name = rng.choice(csvs)
        out[name] = mangled_csv(rng, files[name])
    else:
        out["run.json"] = mangled_json(rng, files["run.json"].decode())
    return out

"""harness's optional compiled parts (issue 21).

pyproject.toml holds the project; this file only adds extensions, each optional (a missing
compiler or a failed build leaves pure Python, saying so):

- ``harness._hot`` (harness/_hot.c), always tried: the worker's per-socket and
  per-message loops in C; harness/wire/hot.py has the same functions in Python and picks.
- the mypyc build of the hot modules (harness/accel.py), only when
  asked: ``HARNESS_MYPYC=1`` (``python -m harness.build`` sets it, with mypy installed)
compiles harness.accel.MODULES with mypyc, and falls back to pure Python, saying so, when
mypyc or a C compiler is missing or the build fails. It is off by default: on the 2-core
VM it gained nothing measurable (docs/PERFORMANCE.md, "The compiled build").
"""

import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))


def _warn(msg: str) -> None:
    print(f"harness setup: {msg}; harness runs as pure Python", file=sys.stderr)


HOT = Extension("harness._hot", ["harness/_hot.c"], optional=True,
                extra_compile_args=["-O2", "-std=gnu11", "-Wall"])


def _ext_modules() -> list:
    if os.environ.get("HARNESS_MYPYC", "0") != "1":
        return [HOT]
    from harness import accel
    try:
        from mypyc.build import mypycify
        paths = [str(accel.source(m).relative_to(ROOT)) for m in accel.MODULES]
        return [HOT, *mypycify(paths, opt_level="3", separate=True)]
    except Exception as exc:  # no mypyc, or it refused the source: the pure build
        _warn(f"no mypyc build ({type(exc).__name__}: {exc})")
        return [HOT]


class OptionalBuildExt(build_ext):
    """Compile if possible; a failure leaves the pure source (and no manifest)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # a missing compiler, a compile error
            _warn(f"the mypyc build failed ({type(exc).__name__}: {exc})")
            return
        if any(e.name != HOT.name for e in self.extensions):  # mypyc's
            from harness import accel
            pkg = ROOT / "harness" if self.inplace else Path(self.build_lib) / "harness"
            pkg.mkdir(parents=True, exist_ok=True)
            (pkg / accel.MANIFEST.name).write_text(accel.manifest_text())


setup(ext_modules=_ext_modules(), cmdclass={"build_ext": OptionalBuildExt})

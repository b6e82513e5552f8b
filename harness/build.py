"""``python -m harness.build [build|clean|status]``: the optional mypyc build, in place.

``build`` compiles harness.accel.MODULES beside their source (setup.py, ``HARNESS_MYPYC=1``);
``clean`` removes them, so the pure source runs; ``status`` says which build runs.
"""

from __future__ import annotations

import os
import subprocess
import sys

from harness import accel


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "build"
    if cmd == "build":
        env = dict(os.environ, HARNESS_MYPYC="1")
        r = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"],
                           cwd=accel.HERE.parent, env=env, capture_output=True, text=True)
        lines = (r.stderr + r.stdout).strip().splitlines() or ["(no output)"]
        if r.returncode != 0 or not accel.MANIFEST.exists():
            print(f"harness.build: the mypyc build failed; the pure source runs: {lines[-1]}",
                  file=sys.stderr)
            return 1
        print(f"harness.build: compiled {len(accel.MODULES)} modules with mypyc")
        return 0
    if cmd == "clean":
        print(f"harness.build: removed {len(accel.clean())} files")
        return 0
    if cmd == "status":
        print(accel.describe())
        return 0
    print("usage: python -m harness.build [build|clean|status]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

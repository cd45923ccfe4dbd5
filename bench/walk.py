"""How far a contributor walks to follow a command: the jaxrec functions a run calls, in the
order they are first called, and how often that walk returns to a file it already visited.

    python bench/walk.py [--json out.jsonl] -- attack -c configs/ml100k-attack.yaml --set ...

Every Python call into a ``jaxrec/`` file is recorded (``sys.settrace``; traced JAX code counts
too, since its Python runs once while tracing). The walk is the sequence of *distinct* functions
in first-call order -- what a reader who follows each call once reads. Printed: the files and
functions visited, and the returns (a step of the walk into another file that was already
visited). Use a tiny run (one epoch, one seed): the walk depends on the code path, not on how
long the run trains.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = str(ROOT / "jaxrec") + "/"


def trace_walk(fn):
    """Run ``fn()`` and return the jaxrec functions it called, ``[(file, qualified name)]`` in
    first-call order."""
    seen: dict = {}

    def tracer(frame, event, arg):
        if event == "call":
            path = frame.f_code.co_filename
            if path.startswith(PKG):
                key = (path[len(PKG) - len("jaxrec/") :], frame.f_code.co_qualname)
                seen.setdefault(key, len(seen))
        return None  # no line events: only calls

    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return sorted(seen, key=seen.get)


INLINE = re.compile(r"<(listcomp|genexpr|dictcomp|setcomp|lambda)>")  #: read as part of the enclosing function


def walk_figures(walk) -> dict:
    """Files, functions (comprehensions and lambdas are part of the function that holds them) and
    returns of the walk."""
    walk = [(path, name) for path, name in walk if not INLINE.search(name)]
    files, returns, prev = [], 0, None
    for path, _ in walk:
        if path != prev and path in files:
            returns += 1
        if path not in files:
            files.append(path)
        prev = path
    return {"files": len(files), "functions": len(walk), "returns": returns, "file_order": files}


def code_lines(path: Path) -> int:
    """Lines of code in a module: not blank, not a comment, not part of a docstring."""
    import ast

    text = path.read_text()
    skip = set()
    for node in ast.walk(ast.parse(text)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                skip.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines = text.splitlines()
    return sum(1 for i, ln in enumerate(lines, 1) if i not in skip and ln.strip() and not ln.strip().startswith("#"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", help="append the figures as one JSON line to this file")
    p.add_argument("--list", action="store_true", help="print the walk, one function a line")
    p.add_argument("--lines", nargs="*", metavar="FILE", help="print the code lines of these modules and stop")
    p.add_argument("argv", nargs=argparse.REMAINDER, help="-- then the jaxrec command line")
    args = p.parse_args()
    if args.lines is not None:
        for f in args.lines:
            print(f"{code_lines(Path(f)):5d} {f}")
        return
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    from jaxrec.cli import main as cli

    t0 = time.perf_counter()
    rc = []
    walk = trace_walk(lambda: rc.append(cli(argv)))
    fig = walk_figures(walk)
    if args.list:
        for path, name in walk:
            print(f"{path}:{name}")
    print(
        f"exit {rc[0]}; {fig['files']} files, {fig['functions']} functions, {fig['returns']} returns to a "
        f"file already visited ({time.perf_counter() - t0:.0f} s)"
    )
    if args.json:
        import subprocess

        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
        row = {"argv": argv, "commit": commit.stdout.strip(), **{k: v for k, v in fig.items() if k != "file_order"}}
        with open(args.json, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Fails when a function in the given source tree is longer than the limit, unless the line before
it carries a note that says why (a comment containing "long:").

  check_function_length.py SRC_DIR [LIMIT]

A heuristic over C++ text (comments and string literals blanked, braces matched): a body is a brace
block whose opening line looks like a function signature.
"""
import os
import re
import sys

SIGNATURE = re.compile(r"([A-Za-z_~][\w:~<>,*& ]*?)\s*\(([^;{}]*)\)\s*(const)?\s*(noexcept)?\s*(->\s*[\w:<>]+)?\s*(override)?\s*(:[^;{}]*)?\{\s*$")
NOT_FUNCTIONS = {"if", "for", "while", "switch", "catch", "return", "do"}


def blank(src):
    src = re.sub(r"R\"\((.*?)\)\"", lambda m: '""' + "\n" * m.group(0).count("\n"), src, flags=re.S)
    src = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), src, flags=re.S)
    src = re.sub(r"//[^\n]*", "", src)
    src = re.sub(r'"(\\.|[^"\\\n])*"', '""', src)
    return re.sub(r"'(\\.|[^'\\\n])*'", "''", src)


def long_functions(path, limit):
    original = open(path, encoding="utf-8").read().split("\n")
    lines = blank("\n".join(original)).split("\n")
    stack, found = [], []
    for i, line in enumerate(lines):
        for ch in line:
            if ch == "{":
                stack.append(i)
            elif ch == "}" and stack:
                start = stack.pop()
                head = " ".join(x.strip() for x in lines[max(0, start - 4):start + 1])
                head = head[:head.rfind("{") + 1]
                m = SIGNATURE.search(head)
                if not m:
                    continue
                name = m.group(1).split()[-1] if m.group(1).split() else m.group(1)
                if name in NOT_FUNCTIONS or i - start + 1 <= limit:
                    continue
                sig = start
                while sig > 0 and lines[sig - 1].strip() and not lines[sig - 1].rstrip().endswith((";", "}", "{")) \
                        and not original[sig - 1].lstrip().startswith("//"):
                    sig -= 1
                note = original[sig - 1] if sig > 0 else ""
                if "long:" not in note:
                    found.append((path, start + 1, name, i - start + 1))
    return found


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    limit = int(argv[1]) if len(argv) > 1 else 90
    found = []
    for root, _, files in os.walk(argv[0]):
        for f in sorted(files):
            if f.endswith((".cpp", ".h", ".cu")):
                found += long_functions(os.path.join(root, f), limit)
    for path, line, name, n in found:
        print(f"{path}:{line}: {name} is {n} lines (more than {limit}); split it into named parts, or say why "
              f"in a comment with 'long:' on the line before it", file=sys.stderr)
    if not found:
        print(f"no function in {argv[0]} is longer than {limit} lines")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

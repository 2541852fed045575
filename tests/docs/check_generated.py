#!/usr/bin/env python3
"""Fails when a generated block of a docs page is not what the program prints now.

  check_generated.py PAGE "COMMAND ..."     compare
  check_generated.py --write PAGE "COMMAND ..."   rewrite the block in place

The block is the text between `<!-- BEGIN GENERATED: <label> -->` and `<!-- END GENERATED -->`.
"""
import re
import subprocess
import sys

BEGIN = re.compile(r"<!-- BEGIN GENERATED: [^>]*-->\n")
END = "<!-- END GENERATED -->"


def main(argv):
    write = argv[:1] == ["--write"]
    if write:
        argv = argv[1:]
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    page, command = argv
    text = open(page, encoding="utf-8").read()
    m = BEGIN.search(text)
    end = text.find(END, m.end()) if m else -1
    if not m or end < 0:
        print(f"{page}: no '<!-- BEGIN GENERATED: ... -->' ... '{END}' block", file=sys.stderr)
        return 1
    generated = subprocess.run(command, shell=True, check=True, capture_output=True, text=True).stdout
    if text[m.end():end] == generated:
        print(f"{page}: the generated block is current")
        return 0
    if write:
        with open(page, "w", encoding="utf-8") as f:
            f.write(text[:m.end()] + generated + text[end:])
        print(f"{page}: rewrote the generated block")
        return 0
    print(f"{page}: the block between the GENERATED markers is not what `{command}` prints; "
          f"regenerate it with: {sys.argv[0]} --write {page} \"{command}\"", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Applies the compiler's strict-memory-safety fix-its (insert or remove the
`unsafe` keyword) from a build log on stdin. A developer convenience:
`swift build 2>&1 | dev/fix-unsafe.py`, repeated until nothing changes."""
import re, sys, collections
edits = collections.defaultdict(set)
for line in sys.stdin:
    m = re.match(r"(/\S+\.swift):(\d+):(\d+): warning: (.*)", line)
    if not m:
        continue
    path, row, col, msg = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
    if "is not marked with 'unsafe'" in msg and "for-in" not in msg:
        edits[path].add((row, col, "insert"))
    elif "no unsafe operations occur within 'unsafe'" in msg:
        edits[path].add((row, col, "remove"))
    elif "for-in loop uses unsafe constructs" in msg:
        edits[path].add((row, col, "forin"))
for path, items in edits.items():
    lines = open(path).read().split("\n")
    for row, col, kind in sorted(items, reverse=True):
        text = lines[row - 1]
        i = col - 1
        if kind == "insert":
            text = text[:i] + "unsafe " + text[i:]
        elif kind == "remove" and text[i:i + 7] == "unsafe ":
            text = text[:i] + text[i + 7:]
        elif kind == "forin" and text[i:i + 4] == "for ":
            text = text[:i + 4] + "unsafe " + text[i + 4:]
        lines[row - 1] = text
    open(path, "w").write("\n".join(lines))
    print(f"{path}: {len(items)} edits")

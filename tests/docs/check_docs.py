#!/usr/bin/env python3
"""The documents speak of the product only, and everything they point at
exists in the repository.

Usage: check_docs.py REPO_ROOT

Fails (exit 1) when README.md, python/README.md or a page under docs/:
  - mentions an issue number ("issue 6") or work rounds ("second round"),
  - points outside the repository ("../shared/..."),
  - has a Markdown link or image to a relative file that does not exist
    (or lies outside the repository);
and when a CMakeLists.txt comment mentions an issue number.
Prints each problem as FILE:LINE: what, then "N passed, M failed".
"""
import os
import re
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")

WORDS = [
    (re.compile(r"\bissues? #?\d+", re.I), "an issue number"),
    (re.compile(r"\.\./shared\b"), "a file outside the repository (../shared)"),
    (re.compile(r"/work/"), "a path of the development machine"),
    (re.compile(r"\b(first|second|third|next|this) round\b", re.I), "a work round"),
    (re.compile(r"\bthrow-?away patch", re.I), "a patch that is not in the repository"),
]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def documents():
    docs = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "python", "README.md")]
    for base, _, files in os.walk(os.path.join(ROOT, "docs")):
        docs += [os.path.join(base, f) for f in sorted(files) if f.endswith(".md")]
    return [d for d in docs if os.path.exists(d)]


def cmake_files():
    out = []
    for base, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith((".", "build"))]
        out += [os.path.join(base, f) for f in files if f == "CMakeLists.txt"]
    return out


def problems_in_doc(path):
    rel = os.path.relpath(path, ROOT)
    found = []
    in_code = False
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        for pat, what in WORDS:
            if pat.search(line):
                found.append(f"{rel}:{n}: mentions {what}: {line.strip()[:100]}")
        if line.lstrip().startswith("```"):
            in_code = not in_code
        if in_code:
            continue
        for target in LINK.findall(line):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue  # a web address or an anchor in the same page
            file_part = target.split("#", 1)[0]
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part))
            if not dest.startswith(ROOT + os.sep):
                found.append(f"{rel}:{n}: links outside the repository: {target}")
            elif not os.path.exists(dest):
                found.append(f"{rel}:{n}: links to a missing file: {target}")
    return found


def problems_in_cmake(path):
    rel = os.path.relpath(path, ROOT)
    found = []
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        comment = line.split("#", 1)[1] if "#" in line else ""
        if re.search(r"\bissues? #?\d+", comment, re.I):
            found.append(f"{rel}:{n}: a comment mentions an issue number: {line.strip()}")
    return found


def main():
    passed = failed = 0
    for path in documents():
        probs = problems_in_doc(path)
        for p in probs:
            print("FAIL:", p)
        failed += bool(probs)
        passed += not probs
    for path in cmake_files():
        probs = problems_in_cmake(path)
        for p in probs:
            print("FAIL:", p)
        failed += bool(probs)
        passed += not probs
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

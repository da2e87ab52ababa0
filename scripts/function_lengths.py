#!/usr/bin/env python3
# The longest functions of the product code, and a check that none is longer than a limit
# (CONVENTIONS: a function a reader can hold in their head, under ~80 lines).
#
# usage: scripts/function_lengths.py [LIMIT] [--list N] [ROOT]
#   LIMIT     the most lines a function may have (default 80); exit 1 when one has more
#   --list N  also print every function of N lines or more, longest first
#   ROOT      the repository (default: the one this script is in)
#
# Product code: the .cpp and .hpp files under app/ auth/ backend_sim/ capture/ common/ lab/
# loadgen/ proxy/ (not tests/ nor bench/). A function's length counts its lines from the one
# with its opening brace to the one with its closing brace. How it finds functions, by matching
# braces in the text with comments and string literals blanked: a '{' whose preceding text ends
# with a parameter list (then const, noexcept, override, a trailing return type or a constructor's
# initializer list) opens one, unless it is inside a function already (a lambda or a local class
# counts toward the function that holds it). A lambda at namespace scope is not counted.
import os
import re
import sys

PARTS = ("app", "auth", "backend_sim", "capture", "common", "lab", "loadgen", "proxy")
HEAD = re.compile(r"([~\w:]+(?:operator\S*)?)\s*\([^;{}]*\)\s*"
                  r"(const|noexcept|override|final|mutable|\s|->\s*[\w:<>,\s*&]+)*(:[^;{}]*)?$", re.S)
CONTROL = re.compile(r"\b(if|for|while|switch|catch)\s*\(")


def blank(text):
    """The text with comments and the contents of string and character literals replaced by spaces
    (newlines kept, so that line numbers hold)."""
    out, i, n = [], 0, len(text)
    spaces = lambda s: re.sub(r"[^\n]", " ", s)
    while i < n:
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
        elif text.startswith('R"', i) and (m := re.match(r'R"([^(]*)\(', text[i:])):
            j = text.find(")" + m.group(1) + '"', i)
            j = n if j < 0 else j + len(m.group(1)) + 2
        elif text[i] in "\"'":
            j = i + 1
            while j < n and text[j] != text[i]:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i] + spaces(text[i + 1:j]) + text[i:j + 1][-1:])
            i = j + 1
            continue
        else:
            out.append(text[i])
            i += 1
            continue
        out.append(spaces(text[i:j]))
        i = j
    return "".join(out)


def functions(path):
    """(lines, first line, name) of each function in the file."""
    text = blank(open(path, encoding="utf-8").read())
    found, stack = [], []  # stack: (kind, first line, name); kind f function, i member's brace initializer, b other
    line, last, ctor = 1, 0, None  # ctor: (first line, name) after a brace initializer, until its body opens
    for i, c in enumerate(text):
        if c == "\n":
            line += 1
        elif c == "{":
            head = text[last:i].strip()
            last = i + 1
            in_function = any(k == "f" for k, _, _ in stack)
            m = HEAD.search(head)
            if in_function:
                stack.append(("b", line, ""))
            elif ctor and not re.search(r"[;{}]", head):
                # after a constructor's brace initializer: another one, or the body
                stack.append(("i" if re.search(r"\w$", head) else "f", ctor[0], ctor[1]))
            elif m and m.group(1) not in ("if", "for", "while", "switch", "catch", "return") \
                    and not CONTROL.search(head.split("\n")[-1]):
                # `name(...) : member_{` opens a member's initializer, not the body
                kind = "i" if m.group(3) and re.search(r"\w$", head) else "f"
                stack.append((kind, line, m.group(1)))
            else:
                stack.append(("b", line, ""))
            ctor = None
        elif c in ";}":
            last = i + 1
            if c == ";":
                ctor = None
            elif stack:
                kind, first, name = stack.pop()
                if kind == "f":
                    found.append((line - first + 1, first, name))
                ctor = (first, name) if kind == "i" else None
    return found


def main(argv):
    limit, listing, root = 80, None, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--list":
            listing = int(args.pop(0))
        elif a.isdigit():
            limit = int(a)
        else:
            root = a
    rows = []
    for part in PARTS:
        for folder, _, files in os.walk(os.path.join(root, part)):
            for f in files:
                if f.endswith((".cpp", ".hpp")):
                    path = os.path.join(folder, f)
                    rows += [(n, os.path.relpath(path, root), first, name) for n, first, name in functions(path)]
    rows.sort(reverse=True)
    for n, path, first, name in rows:
        if n > limit or (listing is not None and n >= listing):
            print(f"{n:4d} {path}:{first} {name}")
    over = [r for r in rows if r[0] > limit]
    if over:
        print(f"function_lengths: {len(over)} function(s) over {limit} lines", file=sys.stderr)
        return 1
    print(f"function_lengths: {len(rows)} functions, none over {limit} lines (longest {rows[0][0] if rows else 0})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

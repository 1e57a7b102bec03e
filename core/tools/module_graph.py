#!/usr/bin/env python3
"""Print core's internal module graph and its strongly connected components.

Every `.rs` file under `core/src` is a node (`session/store.rs` is `session::store`,
`session/mod.rs` is `session`; inline modules fold into their file, and the crate root,
`lib.rs`, is a facade and no node). An edge A -> B means non-comment, non-test code in A
names B: a `crate::`, `super::` or `self::` path, a path through one of A's own submodules,
or a `use` tree starting with one of those. A path to a re-export (`crate::BoxFuture`,
`crate::session::Session`) is followed to the module that defines the item, so the facade
does not hide who knows whom. Comments, string literals and `#[cfg(test)]` items are skipped
(`--tests` keeps the test items). The output lists each component of more than one module,
largest first, with its size; `--why` also lists, for every edge inside a component, where
the reference is (`file:line`), which is where to look when cutting a cycle. Usage:
`python3 core/tools/module_graph.py [--tests] [--why] [--src core/src]`.
"""

import argparse
import os
import re
import sys
from collections import defaultdict

TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<line_comment>//[^\n]*)
  | (?P<block_comment>/\*)
  | (?P<raw_string>b?r(?P<hashes>\#*)")
  | (?P<string>b?"(?:\\.|[^"\\])*")
  | (?P<char>b?'(?:\\.|[^'\\])')
  | (?P<lifetime>'[A-Za-z_][A-Za-z0-9_]*)
  | (?P<ident>r\#[A-Za-z_][A-Za-z0-9_]*|[A-Za-z_][A-Za-z0-9_]*)
  | (?P<path_sep>::)
  | (?P<punct>.)
    """,
    re.VERBOSE | re.DOTALL,
)


def tokenize(text):
    """Yield (kind, value, line) for identifiers and punctuation; drop comments and literals."""
    pos, line = 0, 1
    while pos < len(text):
        m = TOKEN.match(text, pos)
        kind = m.lastgroup if m.lastgroup != "hashes" else "raw_string"
        if m.group("block_comment"):
            depth, end = 1, m.end()
            while depth and end < len(text):
                if text.startswith("/*", end):
                    depth, end = depth + 1, end + 2
                elif text.startswith("*/", end):
                    depth, end = depth - 1, end + 2
                else:
                    end += 1
            line += text.count("\n", pos, end)
            pos = end
            continue
        if m.group("raw_string") is not None:
            close = '"' + m.group("hashes")
            end = text.find(close, m.end())
            end = len(text) if end < 0 else end + len(close)
            line += text.count("\n", pos, end)
            pos = end
            continue
        value = m.group(0)
        if kind in ("ident", "path_sep", "punct"):
            yield kind, value, line
        line += value.count("\n")
        pos = m.end()


class Module:
    def __init__(self, path, file_node):
        self.path = path  # tuple of segments from the crate root
        self.node = file_node  # the file module this one folds into
        self.children = set()


def module_path(src, file):
    rel = os.path.relpath(file, src)[: -len(".rs")].split(os.sep)
    if rel[-1] in ("mod", "lib"):
        rel = rel[:-1]
    return tuple(rel)


def is_test_attr(tokens):
    """`#[cfg(test)]`, `#[cfg(any(test, …))]`, but not `#[cfg(not(test))]`."""
    words = [v for k, v, _ in tokens if k == "ident"]
    return words[:1] == ["cfg"] and "test" in words and "not" not in words


def skip_group(toks, i):
    """Index just past the bracketed group opening at toks[i]."""
    depth = 0
    while i < len(toks):
        v = toks[i][1]
        if v in "([{":
            depth += 1
        elif v in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


def skip_item(toks, i):
    """Index just past the item starting at toks[i] (ends at `;` or a closed `{}` block)."""
    depth = 0
    while i < len(toks):
        v = toks[i][1]
        if v in "([{":
            depth += 1
        elif v in ")]}":
            depth -= 1
            if depth == 0 and v == "}":
                return i + 1
        elif v == ";" and depth == 0:
            return i + 1
        i += 1
    return i


def expand_use(toks, i, prefix, out, line):
    """Expand a use tree starting at toks[i]; append (segments, line); return next index."""
    segs = list(prefix)
    while i < len(toks):
        k, v, ln = toks[i]
        if k == "ident" and v != "as":
            segs.append(v)
            line = ln
            i += 1
        elif k == "path_sep":
            i += 1
        elif v == "{":
            i += 1
            while toks[i][1] != "}":
                i = expand_use(toks, i, segs, out, line)
                if toks[i][1] == ",":
                    i += 1
            return i + 1
        elif v == "*":
            out.append((segs, line))
            return i + 1
        else:
            break
    if segs and segs[-1] in ("self",):
        segs = segs[:-1]
    out.append((segs, line))
    if i < len(toks) and toks[i][1] == "as":
        i += 2
    return i


def scan(file, path, keep_tests):
    """Return (inline modules, use trees, plain paths) of one file.

    Use trees and paths are (module path of the scope, segments, line, is_use).
    """
    with open(file, encoding="utf-8") as f:
        toks = list(tokenize(f.read()))
    inline, refs = [], []
    scope = [(path, None)]  # (module path, brace depth at which it closes)
    depth, i = 0, 0
    pending_attrs = []
    while i < len(toks):
        k, v, ln = toks[i]
        if v == "#" and i + 1 < len(toks) and toks[i + 1][1] in ("[", "!"):
            j = i + 1 if toks[i + 1][1] == "[" else i + 2
            end = skip_group(toks, j) if toks[j][1] == "[" else j
            pending_attrs.append(toks[j + 1 : end - 1])
            i = end
            continue
        test_item = any(is_test_attr(a) for a in pending_attrs)
        pending_attrs = []
        if test_item and not keep_tests:
            i = skip_item(toks, i)
            continue
        here = scope[-1][0]
        if v == "mod" and k == "ident" and i + 2 < len(toks) and toks[i + 2][1] == "{":
            child = here + (toks[i + 1][1],)
            inline.append(child)
            depth += 1
            scope.append((child, depth))
            i += 3
            continue
        if v == "{":
            depth += 1
        elif v == "}":
            if scope[-1][1] == depth:
                scope.pop()
            depth -= 1
        elif v == "use" and k == "ident":
            trees = []
            i = expand_use(toks, i + 1, [], trees, ln)
            refs.extend((here, segs, line, True) for segs, line in trees)
            continue
        elif k == "ident" and i + 1 < len(toks) and toks[i + 1][0] == "path_sep":
            if i > 0 and toks[i - 1][0] == "path_sep":
                i += 1
                continue
            segs = [v]
            j = i + 1
            while j + 1 < len(toks) and toks[j][0] == "path_sep" and toks[j + 1][0] == "ident":
                segs.append(toks[j + 1][1])
                j += 2
            refs.append((here, segs, ln, False))
            i = j
            continue
        i += 1
    return inline, refs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default=os.path.join(os.path.dirname(__file__), "..", "src"))
    ap.add_argument("--tests", action="store_true", help="keep #[cfg(test)] items")
    ap.add_argument("--why", action="store_true", help="list the edges inside each component")
    args = ap.parse_args()
    src = os.path.normpath(args.src)

    files = {}
    for root, _, names in os.walk(src):
        for name in names:
            if name.endswith(".rs"):
                f = os.path.join(root, name)
                files[module_path(src, f)] = f

    modules = {p: Module(p, p) for p in files}
    scanned = {}
    for p, f in sorted(files.items()):
        inline, refs = scan(f, p, args.tests)
        scanned[p] = refs
        for m in inline:
            modules[m] = Module(m, p)
    for p in modules:
        if p:
            parent = modules.get(p[:-1])
            if parent:
                parent.children.add(p[-1])

    def absolute(scope, segs):
        """Segments from the crate root, or None for an outside crate or a local name."""
        segs = list(segs)
        base = list(scope)
        if segs[0] == "crate":
            base, segs = [], segs[1:]
        elif segs[0] in ("self", "super"):
            while segs and segs[0] in ("self", "super"):
                if segs.pop(0) == "super":
                    base = base[:-1]
        elif segs[0] not in modules[tuple(scope)].children:
            return None
        return base + segs

    # (module, name) -> segments it was imported from, for following re-exports.
    imports = {}
    for p, refs in scanned.items():
        for scope, segs, _, is_use in refs:
            if is_use and segs:
                full = absolute(scope, segs)
                if full is not None:
                    imports[(tuple(scope), segs[-1])] = full

    def resolve(full, seen=()):
        """The file module that defines the item `full` names."""
        k = len(full)
        while k and tuple(full[:k]) not in modules:
            k -= 1
        mod = tuple(full[:k])
        if k < len(full):
            key = (mod, full[k])
            if key in imports and key not in seen:
                return resolve(imports[key], seen + (key,))
        return modules[mod].node

    edges = defaultdict(list)  # (a, b) -> [file:line]
    for p, refs in scanned.items():
        for scope, segs, line, _ in refs:
            if not segs:
                continue
            full = absolute(scope, segs)
            if full is None:
                continue
            target = resolve(full)
            source = modules[tuple(scope)].node
            if target and source and target != source:
                edges[(source, target)].append(f"{os.path.relpath(files[p])}:{line}")

    nodes = sorted(p for p in files if p)
    succ = defaultdict(set)
    for a, b in edges:
        succ[a].add(b)

    # Tarjan's algorithm, iterative.
    index, low, on, stack, comps, counter = {}, {}, set(), [], [], [0]
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(succ[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(succ[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    comps.append(sorted(comp))

    name = "::".join
    cyclic = sorted((c for c in comps if len(c) > 1), key=lambda c: (-len(c), c))
    print(f"{len(nodes)} modules, {len(edges)} edges, {len(cyclic)} cycles")
    for c in cyclic:
        print(f"\n{len(c)} modules: {', '.join(name(m) for m in c)}")
        if args.why:
            members = set(c)
            for (a, b), where in sorted(edges.items()):
                if a in members and b in members:
                    more = f" (+{len(where) - 1})" if len(where) > 1 else ""
                    print(f"  {name(a)} -> {name(b)}: {where[0]}{more}")
    if not cyclic:
        print("no cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())

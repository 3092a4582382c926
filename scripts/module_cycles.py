#!/usr/bin/env python3
"""Finds import cycles between the modules of one Rust crate (issue 19:
"each room imports only what is below it").

Usage:
    python3 scripts/module_cycles.py [--top-level] [--edges] [--with-tests] SRC_DIR...

For each SRC_DIR (a crate's `src`), every crate root in it (`lib.rs`,
`main.rs`) is read and its `mod NAME;` declarations are followed to find
the crate's files: `foo.rs` or `foo/mod.rs` is module `foo`, `foo/bar.rs`
(or `foo/bar/mod.rs`) is module `foo::bar`, and the root itself is the node
`crate`. Each file is one node (`--top-level` merges every file into its
top-level module instead, so `baselines::ring` and `baselines` are one
node).

An edge A -> B is drawn when the code of file A names a path into file B:
`use crate::B...`, `crate::B::item` anywhere in the code, `super::...`
(resolved from the module the text is in, inline `mod tests { }` blocks
included), `self::...`, and paths that start with the name of a child
module (`pub use child::Item;` in a `mod.rs` or the root). A path goes to
the deepest module file it names: `crate::shmbus_cases::fanout::SIZE` is
an edge to `shmbus_cases::fanout`, `crate::run` an edge to the root. The
`mod NAME;` declarations themselves are not edges (they are the tree, not
an import). Comments (doc comments and their intra-doc links included),
strings and character literals are skipped; `#[path]` attributes and
macro-generated paths are not understood.

Prints every strongly connected component of more than one node (a set of
modules that reach each other through their imports) and, for each, the
edges inside it with the line that makes each. Exit status: 0 when no crate
has such a component, 1 when one has, 2 on a usage error.

Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = "crate"


# --------------------------------------------------------------- lexing --


@dataclass
class Token:
    kind: str  # "ident", "punct"
    text: str
    line: int


IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def tokenize(src: str) -> list[Token]:
    """Identifiers and punctuation of `src`, without comments, strings,
    character literals, lifetimes and numbers."""
    toks: list[Token] = []
    i, n, line = 0, len(src), 1
    while i < n:
        c = src[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    line += src[i] == "\n"
                    i += 1
        elif (m := re.compile(r'(?:b|c)?r(#*)"').match(src, i)) and (
            i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")
        ):
            # Raw string: r"..." r#"..."# (also br, cr).
            end = '"' + m.group(1)
            j = src.find(end, m.end())
            j = n if j < 0 else j + len(end)
            line += src.count("\n", i, j)
            i = j
        elif c == '"' or (
            c in "bc"
            and src.startswith('"', i + 1)
            and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_"))
        ):
            j = i + (1 if c == '"' else 2)
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j += 1
            line += src.count("\n", i, j)
            i = j
        elif c == "'" or (c == "b" and src.startswith("'", i + 1)):
            # Character literal ('x', '\n', '\u{..}', b'x') or lifetime ('a).
            j = i + (1 if c == "'" else 2)
            if j < n and src[j] == "\\":
                k = src.find("'", j + 2)
                i = n if k < 0 else k + 1
            elif j + 1 < n and src[j + 1] == "'":
                i = j + 2
            else:  # a lifetime or label: skip the quote, the name follows
                i = j
                m = IDENT_RE.match(src, i)
                if m:
                    i = m.end()
        elif c.isalpha() or c == "_":
            m = IDENT_RE.match(src, i)
            assert m
            word = m.group(0)
            # Raw identifiers r#name are the identifier `name`.
            if word == "r" and src.startswith("#", m.end()):
                m2 = IDENT_RE.match(src, m.end() + 1)
                if m2:
                    toks.append(Token("ident", m2.group(0), line))
                    i = m2.end()
                    continue
            toks.append(Token("ident", word, line))
            i = m.end()
        elif c.isdigit():
            m = re.compile(r"[0-9][0-9A-Za-z_]*(\.[0-9][0-9A-Za-z_]*)?").match(src, i)
            assert m
            i = m.end()
        elif src.startswith("::", i):
            toks.append(Token("punct", "::", line))
            i += 2
        else:
            toks.append(Token("punct", c, line))
            i += 1
    return toks


# ---------------------------------------------------------- crate tree --


@dataclass
class ModFile:
    path: Path
    module: tuple[str, ...]  # () for the crate root
    children: set[str] = field(default_factory=set)  # `mod x;` declared here


def child_file(parent: ModFile, name: str) -> Path | None:
    """Where `mod name;` declared in `parent` lives."""
    p = parent.path
    if p.name in ("lib.rs", "main.rs", "mod.rs"):
        base = p.parent
    else:
        base = p.parent / p.stem
    for cand in (base / f"{name}.rs", base / name / "mod.rs"):
        if cand.is_file():
            return cand
    return None


def mod_decls(toks: list[Token]) -> list[str]:
    """Names of the `mod NAME;` (file module) declarations at the top level
    of a file. Inline `mod NAME { ... }` are not files."""
    out, depth = [], 0
    for k, t in enumerate(toks):
        if t.text == "{":
            depth += 1
        elif t.text == "}":
            depth -= 1
        elif (
            depth == 0
            and t.text == "mod"
            and k + 2 < len(toks)
            and toks[k + 1].kind == "ident"
            and toks[k + 2].text == ";"
        ):
            out.append(toks[k + 1].text)
    return out


def load_crate(root: Path) -> dict[tuple[str, ...], ModFile]:
    files: dict[tuple[str, ...], ModFile] = {}
    todo = [ModFile(root, ())]
    while todo:
        mf = todo.pop()
        files[mf.module] = mf
        toks = tokenize(mf.path.read_text(encoding="utf-8"))
        for name in mod_decls(toks):
            cf = child_file(mf, name)
            if cf is None:
                print(f"warning: {mf.path}: no file for `mod {name};`", file=sys.stderr)
                continue
            mf.children.add(name)
            todo.append(ModFile(cf, mf.module + (name,)))
    return files


# --------------------------------------------------------------- paths --


def parse_use_tree(toks: list[Token], k: int, prefix: list[str]) -> tuple[list[list[str]], int]:
    """Expands the use tree starting at toks[k] (after `use` or inside
    braces) into full paths; returns them and the index after the tree."""
    path = list(prefix)
    paths: list[list[str]] = []
    while k < len(toks):
        t = toks[k]
        if t.text == "::":
            k += 1
        elif t.text == "{":
            k += 1
            while k < len(toks) and toks[k].text != "}":
                sub, k = parse_use_tree(toks, k, path)
                paths.extend(sub)
                if k < len(toks) and toks[k].text == ",":
                    k += 1
            return paths, k + 1
        elif t.text == "*":
            paths.append(path)
            return paths, k + 1
        elif t.kind == "ident" and t.text != "as":
            if t.text == "self" and path:
                pass  # `a::{self, ..}` is `a`
            else:
                path.append(t.text)
            k += 1
        elif t.text == "as":
            k += 2  # `as name`
        else:  # `,` `}` `;`
            break
    if not paths:
        paths.append(path)
    return paths, k


def resolve(
    segs: list[str],
    here: tuple[str, ...],
    files: dict[tuple[str, ...], ModFile],
    file_mod: tuple[str, ...],
) -> tuple[str, ...] | None:
    """The module file that the path `segs`, written in module `here`
    (inside the file of module `file_mod`), points into; None if it leaves
    the crate."""
    if not segs:
        return None
    if segs[0] == "crate":
        base, rest = (), segs[1:]
    elif segs[0] in ("super", "self"):
        base, rest = here, segs
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                if not base:
                    return None
                base = base[:-1]
            rest = rest[1:]
    elif here == file_mod and segs[0] in files[file_mod].children:
        base, rest = here, segs  # relative path to a child module file
    else:
        return None  # std, an extern crate, or a local item
    # `base` may be inside an inline module; its file is the longest
    # prefix that is a file module.
    mod = base
    while mod not in files:
        mod = mod[:-1]
    for s in rest:
        if mod + (s,) in files and mod == base:
            mod = mod + (s,)
            base = mod
        else:
            break
    return mod


#: Test modules (inline `mod tests { }`, or files of these names): their
#: imports are not edges unless `--with-tests`. A test reaches whatever it
#: tests against; it is not a room of the building.
TEST_MODULES = {"tests", "loom_model"}


def references(mf: ModFile, files: dict[tuple[str, ...], ModFile], with_tests: bool = False):
    """(target module, line) for every path in the file that points into
    the crate (outside test modules unless `with_tests`)."""
    toks = tokenize(mf.path.read_text(encoding="utf-8"))
    # Track inline modules (`mod tests { ... }`) so that `super::` inside
    # them resolves correctly.
    stack: list[tuple[int, str]] = []  # (brace depth at open, name)
    depth = 0
    pending_mod: str | None = None
    k = 0
    while k < len(toks):
        t = toks[k]
        here = mf.module + tuple(name for _, name in stack)
        in_tests = not with_tests and any(name in TEST_MODULES for name in here)
        if t.text == "mod" and k + 2 < len(toks) and toks[k + 2].text == "{":
            pending_mod = toks[k + 1].text
            k += 2
            continue
        if t.text == "{":
            depth += 1
            if pending_mod is not None:
                stack.append((depth, pending_mod))
                pending_mod = None
            k += 1
            continue
        if t.text == "}":
            if stack and stack[-1][0] == depth:
                stack.pop()
            depth -= 1
            k += 1
            continue
        if t.text == "use":
            paths, k = parse_use_tree(toks, k + 1, [])
            for p in paths:
                target = resolve(p, here, files, mf.module)
                if target is not None and not in_tests:
                    yield target, t.line
            continue
        prev = toks[k - 1].text if k else ""
        if t.kind == "ident" and prev != "::" and k + 1 < len(toks) and toks[k + 1].text == "::":
            segs, j = [t.text], k + 1
            while j + 1 < len(toks) and toks[j].text == "::" and toks[j + 1].kind == "ident":
                segs.append(toks[j + 1].text)
                j += 2
            target = resolve(segs, here, files, mf.module)
            if target is not None and not in_tests:
                yield target, t.line
            k = j
            continue
        k += 1


# --------------------------------------------------------------- graph --


def name_of(module: tuple[str, ...]) -> str:
    return "::".join(module) if module else ROOT


def sccs(nodes: list[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    out.append(sorted(comp))
    return out


def check_crate(root: Path, top_level: bool, show_edges: bool, with_tests: bool = False) -> bool:
    """Prints the crate's cycles; True when there is none."""
    files = load_crate(root)

    def node(m: tuple[str, ...]) -> str:
        return name_of(m[:1] if top_level else m)

    nodes = sorted({node(m) for m in files})
    edges: dict[str, set[str]] = {}
    why: dict[tuple[str, str], tuple[Path, int]] = {}
    for mf in files.values():
        a = node(mf.module)
        for target, line in references(mf, files, with_tests):
            b = node(target)
            if a == b:
                continue
            edges.setdefault(a, set()).add(b)
            why.setdefault((a, b), (mf.path, line))
    label = f"{root} ({'top-level modules' if top_level else 'one node per file'})"
    if show_edges:
        print(f"{label}: edges")
        for a in nodes:
            for b in sorted(edges.get(a, ())):
                path, line = why[(a, b)]
                print(f"  {a} -> {b}    ({path}:{line})")
    cyclic = [c for c in sccs(nodes, edges) if len(c) > 1]
    if not cyclic:
        print(f"{label}: {len(nodes)} modules, no cycle")
        return True
    for comp in cyclic:
        print(f"{label}: cycle of {len(comp)} modules: {', '.join(comp)}")
        members = set(comp)
        for a in comp:
            for b in sorted(edges.get(a, set()) & members):
                path, line = why[(a, b)]
                print(f"  {a} -> {b}    ({path}:{line})")
    return False


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Print import cycles (strongly connected components) between a crate's modules."
    )
    ap.add_argument("src", nargs="+", type=Path, help="a crate's src directory")
    ap.add_argument(
        "--top-level",
        action="store_true",
        help="one node per top-level module (submodule files merged into it)",
    )
    ap.add_argument("--edges", action="store_true", help="also print every edge")
    ap.add_argument(
        "--with-tests",
        action="store_true",
        help="count the imports of test modules (`tests`, `loom_model`) too",
    )
    args = ap.parse_args()
    clean = True
    for src in args.src:
        roots = [src / r for r in ("lib.rs", "main.rs") if (src / r).is_file()]
        if not roots:
            print(f"{src}: no lib.rs or main.rs", file=sys.stderr)
            return 2
        for root in roots:
            clean &= check_crate(root, args.top_level, args.edges, args.with_tests)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Rewrites a .cu file into C++ for the CUDA emulator (tests/cuda_emu/README.md).

Two constructs of CUDA C++ that a host compiler cannot parse are rewritten; the rest compiles
against the emulator's headers as it is:
  kernel<<<grid, block[, smem[, stream]]>>>(args...);
      -> ::emu::launch(kernel, dim3(grid), dim3(block), smem, stream, args...);
  extern __shared__ T name[];
      -> T* const name = static_cast<T*>(::emu::dynamic_smem());
A #line directive keeps compiler messages pointing at the .cu file.

usage: translate.py IN.cu OUT.cpp
"""
import re
import sys

SHARED = re.compile(r"extern\s+__shared__\s+(?:alignas\(\s*\d+\s*\)\s+|__align__\(\s*\d+\s*\)\s+)?([A-Za-z_][\w:<>, ]*?)\s+([A-Za-z_]\w*)\s*\[\s*\]\s*;")


def split_top(s):
    """Splits s at the commas outside (), [], {} and <> that look like template brackets."""
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def callee_start(src, end):
    """Index where the expression naming the kernel (before <<<) begins."""
    i = end
    while i > 0 and src[i - 1].isspace():
        i -= 1
    while i > 0:
        c = src[i - 1]
        if c.isalnum() or c == "_" or c == ":":
            i -= 1
        elif c in "]>":
            close, open_ = c, "[" if c == "]" else "<"
            depth = 0
            while i > 0:
                i -= 1
                if src[i] == close:
                    depth += 1
                elif src[i] == open_:
                    depth -= 1
                    if depth == 0:
                        break
        else:
            break
    return i


def matching(src, i, open_, close):
    """Index just past the bracket that closes src[i] (== open_)."""
    depth = 0
    for j in range(i, len(src)):
        if src[j] == open_:
            depth += 1
        elif src[j] == close:
            depth -= 1
            if depth == 0:
                return j + 1
    raise SystemExit("translate.py: unbalanced %s at offset %d" % (open_, i))


def rewrite_launches(src):
    out, pos = [], 0
    while True:
        a = src.find("<<<", pos)
        if a < 0:
            out.append(src[pos:])
            return "".join(out)
        b = src.find(">>>", a)
        start = callee_start(src, a)
        kernel = src[start:a].strip()
        cfg = split_top(src[a + 3:b])
        if not kernel or len(cfg) < 2 or len(cfg) > 4:
            raise SystemExit("translate.py: cannot read the launch at offset %d: %r" % (a, src[start:b + 3]))
        cfg += ["0", "nullptr"][len(cfg) - 2:]
        p = b + 3
        while src[p].isspace():
            p += 1
        if src[p] != "(":
            raise SystemExit("translate.py: no argument list after the launch at offset %d" % a)
        q = matching(src, p, "(", ")")
        args = src[p + 1:q - 1].strip()
        # Newlines kept, so the line numbers after the launch stay right.
        call = "::emu::launch(%s, dim3(%s), dim3(%s), size_t(%s), %s%s)" % (
            kernel, cfg[0], cfg[1], cfg[2], cfg[3], (", " + args) if args else "")
        call += "\n" * (src[start:q].count("\n") - call.count("\n"))
        out.append(src[pos:start])
        out.append(call)
        pos = q


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    src = open(sys.argv[1], encoding="utf-8").read()
    src = SHARED.sub(lambda m: "%s* const %s = static_cast<%s*>(::emu::dynamic_smem());" % (m.group(1), m.group(2), m.group(1)), src)
    src = rewrite_launches(src)
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write('#line 1 "%s"\n' % sys.argv[1])
        f.write(src)


if __name__ == "__main__":
    main()

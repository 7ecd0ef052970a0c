#!/usr/bin/env python3
"""cu2cpp.py: the emulated build's only source transformation (dev/emu/emu.h says why).

    python3 dev/emu/cu2cpp.py OUTDIR FILE...

writes OUTDIR/FILE for each .cu/.cuh FILE, with `#line 1 "FILE"` first so that messages name the
real file, and on the same lines as the original:
  k<T><<<g, b, smem, stream>>>(args)  ->  emu_launch(k<T>, "k<T>", __FILE__, __LINE__, g, b, smem, stream)(args)
  __shared__ float a[32], b[32];      ->  the same, then emu_shared_note(&a, sizeof(a)); ... (48 KiB check)
Strings, character literals and comments are left alone. A file is rewritten only when its
output changes, so make rebuilds only what changed.
"""
import os
import re
import sys


def code_mask(src):
    """a list, True where src[i] is code (not inside a string, char literal or comment)"""
    mask = [True] * len(src)
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
        elif c in "\"'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            j += 1
        else:
            i += 1
            continue
        for k in range(i, min(j, n)):
            mask[k] = False
        i = j
    return mask


def kernel_start(src, end):
    """the start of the kernel expression that ends just before src[end] (name, template args)"""
    i = end
    while i > 0 and src[i - 1] in " \t":
        i -= 1
    if src[i - 1] == ">":  # template arguments: back to the matching '<'
        depth = 0
        while i > 0:
            i -= 1
            if src[i] == ">":
                depth += 1
            elif src[i] == "<":
                depth -= 1
                if depth == 0:
                    break
    while i > 0 and (src[i - 1].isalnum() or src[i - 1] in "_:"):
        i -= 1
    return i


def rewrite_launches(src):
    mask = code_mask(src)
    out, last, i = [], 0, 0
    while True:
        i = src.find("<<<", i)
        if i < 0:
            break
        if not mask[i]:
            i += 3
            continue
        j = src.find(">>>", i + 3)
        while j >= 0 and not mask[j]:
            j = src.find(">>>", j + 3)
        if j < 0:
            sys.exit(f"cu2cpp.py: unterminated <<< at offset {i}")
        start = kernel_start(src, i)
        kernel = src[start:i].strip()
        name = " ".join(kernel.split())
        out.append(src[last:start])
        out.append(f'emu_launch({kernel}, "{name}", __FILE__, __LINE__, {src[i + 3:j]})')
        last = i = j + 3
    out.append(src[last:])
    return "".join(out)


SHARED = re.compile(r"^(\s+)__shared__\s+([^;]*);(.*)$")


def note_shared(line):
    """a __shared__ declaration inside a function: note each variable's size after it"""
    m = SHARED.match(line)
    if not m:
        return line
    notes = []
    for part in split_top(m.group(2)):
        ids = re.findall(r"([A-Za-z_]\w*)\s*(?=\[|=|$)", part.strip())
        if ids:
            notes.append(f"emu_shared_note(&{ids[-1]}, sizeof({ids[-1]}));")
    return f"{m.group(1)}__shared__ {m.group(2)}; {' '.join(notes)}{m.group(3)}"


def split_top(s):
    parts, depth, cur = [], 0, ""
    for c in s:
        if c in "([{<":
            depth += 1
        elif c in ")]}>":
            depth -= 1
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    parts.append(cur)
    return parts


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    outdir = sys.argv[1]
    for path in sys.argv[2:]:
        with open(path) as f:
            src = f.read()
        body = rewrite_launches(src)
        body = "\n".join(note_shared(l) for l in body.split("\n"))
        text = f'#line 1 "{path}"\n' + body
        dst = os.path.join(outdir, path)
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        if os.path.exists(dst):
            with open(dst) as f:
                if f.read() == text:
                    continue
        with open(dst, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()

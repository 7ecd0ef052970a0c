"""compare_state.py A/state.bin B/state.bin MAX_FRACTION: compare the 8-bit optimizer codes of two
checkpoints (checkpoint.h's state.bin: a header, a table of named blobs, the blobs, a hash).

Two runs that sum the same gradients in another order (data parallel vs one process, another BLAS)
quantize values that differ by fp32 rounding. A value then gets another code only when it sits
within that rounding of a decision boundary (the midpoint between two map entries), and then the
codes are neighbours. So after ONE update (no quantized state read back yet) the codes must agree
except for a small fraction, and every disagreement must be one code apart. A wrong reduction
(a rank's gradient lost, a wrong normalization) moves most codes, and by more than one.

Prints one line: "ok ..." or "bad ..." (the caller counts it). Standard library only."""
import struct, sys


def read_state(path):
    b = open(path, "rb").read()
    magic, _version, n = struct.unpack("<3i", b[:12])
    if magic != 20241129:
        sys.exit(f"bad {path}: not a state.bin (magic {magic})")
    off, table = 1024, []
    for _ in range(n):
        name = b[off:off + 64].split(b"\0")[0].decode()
        (nbytes,) = struct.unpack("<q", b[off + 64:off + 72])
        table.append((name, nbytes))
        off += 72
    blobs = {}
    for name, nbytes in table:
        blobs[name] = b[off:off + nbytes]
        off += nbytes
    return blobs


def main():
    a, b, max_frac = read_state(sys.argv[1]), read_state(sys.argv[2]), float(sys.argv[3])
    codes = [k for k in a if k.startswith(("qm.", "qv."))]
    if not codes or sorted(a) != sorted(b):
        print(f"bad {len(codes)} 8-bit state entries; entries equal: {sorted(a) == sorted(b)}")
        return
    total = differ = far = 0
    for k in codes:
        x, y = a[k], b[k]
        total += len(x)
        for p, q in zip(x, y):
            if p != q:
                differ += 1
                far += abs(p - q) > 1
    frac = differ / total
    good = frac <= max_frac and far == 0
    print(("ok " if good else "bad ") + f"{differ} of {total} codes differ ({frac:.1e}, bound {max_frac:g}), "
          f"{far} by more than one code (bound 0)")


if __name__ == "__main__":  # check_weight8.py imports read_state
    main()

#!/bin/bash
# dev/gpu/pack.sh: gather the shared libraries that the GPU programs built here need and a lent GPU
# machine's image may lack, into one folder to carry there (dev/gpu/README.md).
#
#   dev/gpu/pack.sh                      # ./train_llamacu ./test_llamacu and the dev/cuda programs -> .gpu/lib
#   PACK_DIR=/tmp/x dev/gpu/pack.sh ./train_llamacu
#
# For each library `ldd` names (and, in turn, the libraries those need):
#   - the C/C++ runtime (libc, libm, libdl, librt, libpthread, ld-linux, libstdc++, libgcc_s): left
#     out, every Linux image has them (the device's are newer than Debian 12's, which is fine)
#   - CUDA's (libcublas*, libcusolver*, libcusparse*, libnvJitLink*, libcudart*, libcudnn*, libnccl*):
#     left out, far too large to carry (cuDNN ~500 MB, NCCL ~200 MB); the device has them in its
#     CUDA toolkit or in PyTorch's nvidia-* wheels, and dev/gpu/device_env.sh finds them there
#   - OpenBLAS: replaced by Debian's reference BLAS + LAPACK (same sonames libblas.so.3 and
#     liblapack.so.3, 8 MB instead of 44; the programs use OpenBLAS only through weak symbols, and
#     the GPU tests' CPU side is small: slower, same results within the tests' tolerances)
#   - anything else (libcjson, libgomp, libgfortran, an MPI build's libmpi and its helpers): copied
# Prints what it copied and the folder's size (it counts toward the 64 MiB a device call carries).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PACK_DIR="${PACK_DIR:-.gpu/lib}"
REF_BLAS="${REF_BLAS:-/usr/lib/x86_64-linux-gnu/blas/libblas.so.3}"
REF_LAPACK="${REF_LAPACK:-/usr/lib/x86_64-linux-gnu/lapack/liblapack.so.3}"

bins=("$@")
if [ "${#bins[@]}" -eq 0 ]; then
    for b in ./train_llamacu ./test_llamacu dev/cuda/*; do
        [ -f "$b" ] && [ -x "$b" ] && bins+=("$b")
    done
fi
[ "${#bins[@]}" -gt 0 ] || { echo "error: no GPU program to pack: build them first (make GPU_COMPUTE_CAPABILITY=90 train_llamacu test_llamacu; make -C dev/cuda GPU_COMPUTE_CAPABILITY=90)" >&2; exit 1; }
mkdir -p "$PACK_DIR"

skip_name() {
    case "$1" in
        linux-vdso*|ld-linux*|libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|libstdc++.so*|libgcc_s.so*) return 0 ;;
        libcublas*|libcusolver*|libcusparse*|libnvJitLink*|libcudart*|libcudnn*|libnccl*|libcuda.so*) return 0 ;;
    esac
    return 1
}

declare -A seen=()
queue=("${bins[@]}")
while [ "${#queue[@]}" -gt 0 ]; do
    obj="${queue[0]}"
    queue=("${queue[@]:1}")
    while read -r name _ path _; do
        [ -n "$name" ] || continue
        skip_name "$name" && continue
        [ -z "${seen[$name]:-}" ] || continue
        seen[$name]=1
        if [ "$path" = "not" ] || [ -z "$path" ]; then
            echo "warning: $obj needs $name, which is not found here either" >&2
            continue
        fi
        case "$path" in
            *openblas*)
                case "$name" in
                    libblas.so.3) src="$REF_BLAS" ;;
                    liblapack.so.3) src="$REF_LAPACK" ;;
                    *) continue ;; # libopenblas.so.0 itself: not needed once both are replaced
                esac ;;
            *) src="$path" ;;
        esac
        [ -f "$src" ] || { echo "error: $src (for $name) does not exist: install libblas3/liblapack3 or set REF_BLAS/REF_LAPACK" >&2; exit 1; }
        cp -L "$src" "$PACK_DIR/$name"
        echo "  $name <- $src ($(du -kL "$src" | cut -f1) KiB)"
        queue+=("$PACK_DIR/$name")
    done < <(ldd "$obj" 2>/dev/null | sed -n 's/^[[:space:]]*\([^ ]*\) => \([^ ]*\).*/\1 => \2 x/p')
done
echo "packed for: ${bins[*]}"
echo "$PACK_DIR: $(du -sh "$PACK_DIR" | cut -f1)"

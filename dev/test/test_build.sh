#!/usr/bin/env bash
# test_build.sh: the CPU sources compile against every cblas.h a Debian/Ubuntu user may have, with
# gcc and with clang. /usr/include/x86_64-linux-gnu/cblas.h is an alternative: netlib's
# (libblas-dev) on a plain machine, OpenBLAS's once any libopenblas*-dev is installed, and OpenBLAS's
# pulls in <complex.h>, whose macro I once broke memplan.h. The rest of make test builds with one
# compiler against whichever header this machine points to, so each variant is compiled here
# (-fsyntax-only, with the header forced into every source: seconds), then train_llama is linked
# with clang and against OpenBLAS's header, and runs.
# EXTRA_BLAS_INCLUDES="DIR ...": more folders holding a cblas.h (unpacked -dev packages, say).
source "$(dirname "$0")/testlib.sh"
inc=/usr/include/x86_64-linux-gnu
dirs=()
if [ -f $inc/cblas-netlib.h ]; then # netlib's header under the name the sources include
    mkdir "$tmp/netlib" && ln -s $inc/cblas-netlib.h "$tmp/netlib/cblas.h" && dirs+=("$tmp/netlib")
fi
# openblas64-*: the 64-bit-index builds install theirs as cblas64.h, never what <cblas.h> finds
for d in $inc/openblas-*/ ${EXTRA_BLAS_INCLUDES:-}; do [ -f "$d/cblas.h" ] && dirs+=("${d%/}"); done
openblas=""
for d in "${dirs[@]}"; do [ -f "$d/openblas_config.h" ] && { openblas=$d; break; }; done
[ -n "$openblas" ] || bad "no OpenBLAS cblas.h under $inc/openblas-*/: run \`make deps\` (or install libopenblas-openmp-dev)"
clang=$(command -v clang-14 || command -v clang)
[ -n "$clang" ] || bad "no clang: run \`make deps\` (or install clang-14)"
mpi=""; command -v mpicc >/dev/null 2>&1 && mpi="-DUSE_MPI $(mpicc --showme:compile)"
flags="-fopenmp -ffp-contract=off -Wall -Wextra -Wno-unused-function -I."
sources=(train_llama.c test_llama.c dev/test/*.c dev/fuzz/*.c)
for cc in "${CC:-gcc}" $clang; do
    for d in "${dirs[@]}"; do
        nbad=0 first=""
        for src in "${sources[@]}"; do
            # shellcheck disable=SC2086
            out=$($cc -fsyntax-only $flags $mpi -I"$d" -include cblas.h "$src" 2>&1) ||
                { nbad=$((nbad+1)); [ -n "$first" ] || first="$src: $(grep -m1 error <<<"$out")"; }
        done
        name="$(basename "$cc") with $(basename "$d")/cblas.h"
        if [ $nbad = 0 ]; then ok "$name: ${#sources[@]} sources compile"
        else bad "$name: $nbad of ${#sources[@]} sources fail, the first $first"; fi
    done
done
# a real link and run: clang (its own OpenMP runtime), and gcc against OpenBLAS's header
libs="-lcjson ${BLAS_LIBS:--lblas} ${LAPACK_LIBS:--llapack} -lm"
for build in "$clang -I." "${CC:-gcc} -I$openblas"; do
    [ -n "$openblas" ] && [ -n "$clang" ] || break
    # shellcheck disable=SC2086
    if out=$($build -O0 $flags train_llama.c -o "$tmp/train_llama" $libs 2>&1) && "$tmp/train_llama" --help >/dev/null 2>&1; then
        ok "$build: train_llama links and runs --help"
    else bad "$build: train_llama: $(grep -m1 -E 'error|undefined' <<<"$out")"; fi
done
summary

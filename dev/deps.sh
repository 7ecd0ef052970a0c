#!/usr/bin/env bash
# deps.sh: the Debian/Ubuntu packages galore.c needs, in one place.
#   bash dev/deps.sh install      `make deps`: apt-get install what is missing (through sudo when
#                                 not root); one line saying what to do where neither works
#   bash dev/deps.sh check build  what `make` needs (a C compiler, cJSON, CBLAS, LAPACK): compiles a
#                                 probe with the Makefile's CC / BLAS_LIBS / LAPACK_LIBS; one line per
#                                 missing piece naming its package and `make deps`, exit 1
#   bash dev/deps.sh check test   also what `make test` needs (python3, MPI, clang-14 + libFuzzer,
#                                 OpenBLAS's cblas.h for dev/test/test_build.sh)
# The checks probe the toolchain, not dpkg, so a machine with these libraries from elsewhere (another
# distribution, BLAS_LIBS=...) passes them.
set -u
# package : why
BUILD_PKGS="make gcc libc6-dev libcjson-dev libblas-dev liblapack-dev libopenblas0-openmp"
# libopenblas-openmp-dev: OpenBLAS's own cblas.h (it becomes what <cblas.h> finds), which a user
# with libopenblas-dev builds against; test_build.sh compiles against it and netlib's
# python3-sentencepiece: dev/test/test_route.sh trains a tokenizer as the README's route does
TEST_PKGS="python3 python3-sentencepiece openmpi-bin libopenmpi-dev clang-14 libclang-rt-14-dev libopenblas-openmp-dev"

install() {
    local need="" pkg
    for pkg in $BUILD_PKGS $TEST_PKGS; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
    done
    if [ -z "$need" ]; then echo "make deps: every package is installed"; return 0; fi
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo"
        else echo "error: make deps: not root and no sudo: as root, run: apt-get install -y$need" >&2; return 1; fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: make deps: no apt-get (not Debian/Ubuntu): install the equivalents of:$need" >&2; return 1
    fi
    echo "make deps: installing:$need"
    $sudo apt-get update -qq || { echo "error: make deps: apt-get update failed (network? proxy?)" >&2; return 1; }
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null ||
        { echo "error: make deps: apt-get install$need failed (see apt-get's message above)" >&2; return 1; }
    echo "make deps: done"
}

# probe SOURCE LIBS...: does SOURCE compile and link with the Makefile's compiler?
probe() {
    local src=$1; shift
    printf '%b' "$src" | ${CC:-gcc} -x c - -o /dev/null "$@" >/dev/null 2>&1
}

check() {
    local what=$1 miss=0 cc=${CC:-gcc}
    say() { echo "error: missing $1: run \`make deps\` (or install $2)" >&2; miss=1; }
    if ! command -v "$cc" >/dev/null 2>&1; then say "the C compiler '$cc'" "gcc"
    else
        # the fast path: one probe with everything; on failure, one probe per piece to name it
        if ! probe '#include <cjson/cJSON.h>\n#include <cblas.h>\nvoid sgesdd_(void);\nint main(void){cJSON_Delete(0);cblas_sdot(0,0,1,0,1);sgesdd_();return 0;}' \
                -lcjson ${BLAS_LIBS:--lblas} ${LAPACK_LIBS:--llapack} -lm; then
            probe '#include <cjson/cJSON.h>\nint main(void){cJSON_Delete(0);return 0;}' -lcjson || say "cJSON (cjson/cJSON.h, -lcjson)" "libcjson-dev"
            probe '#include <cblas.h>\nint main(void){cblas_sdot(0,0,1,0,1);return 0;}' ${BLAS_LIBS:--lblas} -lm || say "CBLAS (cblas.h, ${BLAS_LIBS:--lblas})" "libblas-dev libopenblas0-openmp"
            probe 'void sgesdd_(void);\nint main(void){sgesdd_();return 0;}' ${BLAS_LIBS:--lblas} ${LAPACK_LIBS:--llapack} -lm || say "LAPACK (${LAPACK_LIBS:--llapack})" "liblapack-dev"
            [ $miss = 1 ] || say "a working compile + link of cJSON, CBLAS and LAPACK together" "libcjson-dev libblas-dev liblapack-dev"
        fi
    fi
    if [ "$what" = test ]; then
        command -v python3 >/dev/null 2>&1 || say "python3 (the shell tests' comparisons)" "python3"
        command -v mpirun >/dev/null 2>&1 || say "mpirun (the data-parallel tests)" "openmpi-bin"
        command -v mpicc >/dev/null 2>&1 || say "mpicc (train_llama built with MPI)" "libopenmpi-dev"
        local clang; clang=$(command -v clang-14 || command -v clang)
        if [ -z "$clang" ]; then say "clang-14 (the fuzzers)" "clang-14"
        elif ! printf 'int LLVMFuzzerTestOneInput(const unsigned char*d, unsigned long n){return 0;}' |
               "$clang" -x c - -fsanitize=fuzzer,address -o /dev/null >/dev/null 2>&1; then
            say "libFuzzer for $clang" "libclang-rt-14-dev"
        fi
        ls /usr/include/*/openblas-*/cblas.h >/dev/null 2>&1 ||
            say "OpenBLAS's cblas.h (the build test against it)" "libopenblas-openmp-dev"
    fi
    return $miss
}

case "${1:-}" in
    install) install ;;
    check) check "${2:-build}" ;;
    *) echo "usage: bash dev/deps.sh install | check build|test" >&2; exit 2 ;;
esac

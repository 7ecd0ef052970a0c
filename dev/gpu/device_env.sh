# shellcheck shell=bash
# dev/gpu/device_env.sh: source it on a lent GPU machine, in the repository root, before the GPU
# tests and benchmarks (dev/gpu/README.md):
#
#   source dev/gpu/device_env.sh
#
# 1. Python: installs the carried wheels .whl/*.whl (galore-torch, bitsandbytes) into /tmp/site
#    and puts it on PYTHONPATH; the image's own python3 already has torch and transformers.
# 2. Libraries: puts each carried .gpu/*/ folder (dev/gpu/pack.sh) first on LD_LIBRARY_PATH, then, for
#    each library the GPU programs still cannot find (typically cuDNN and NCCL, which the image
#    has only inside PyTorch's nvidia-* wheels), the folder where the image has it. Only missing
#    ones are added, so PyTorch keeps loading its own copies.
#    libnvrtc too (cuDNN opens it at run time, so ldd does not list it).
# 3. Prints the card, the python packages, and anything still missing.
# It only sets variables and installs into /tmp: safe to source more than once.

if [ -d .whl ] && ls .whl/*.whl > /dev/null 2>&1; then
    if python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl; then
        case ":${PYTHONPATH:-}:" in *":/tmp/site:"*) ;; *) export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}" ;; esac
    else
        echo "device_env: installing .whl/*.whl failed" >&2
    fi
fi

for gpu_env_dir in "$PWD"/.gpu/*/; do
    [ -d "$gpu_env_dir" ] || continue
    gpu_env_dir="${gpu_env_dir%/}"
    case ":${LD_LIBRARY_PATH:-}:" in *":$gpu_env_dir:"*) ;; *) export LD_LIBRARY_PATH="$gpu_env_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;; esac
done
gpu_env_missing() {
    local b
    for b in ./train_llamacu ./test_llamacu; do
        [ -x "$b" ] && ldd "$b" 2> /dev/null | awk '/not found/ { print $1 }'
    done | sort -u
}
for gpu_env_lib in $(gpu_env_missing); do
    gpu_env_path="$(find /usr/local /opt /usr/lib /usr/lib64 -name "$gpu_env_lib" -print -quit 2> /dev/null)"
    if [ -n "$gpu_env_path" ]; then
        LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(dirname "$gpu_env_path")"
        export LD_LIBRARY_PATH
        echo "device_env: $gpu_env_lib from $(dirname "$gpu_env_path")"
    fi
done
# libnvrtc: cuDNN's fused attention compiles its kernels at run time with NVRTC, which it opens
# with dlopen, so ldd never lists it; where the loader cannot find it, the attention graphs fail to
# build and train_llamacu takes the (slower) cuBLAS attention. Add the image's copy (PyTorch's
# nvidia-cuda-nvrtc wheel) when it is not on the path already.
gpu_env_has_nvrtc() {
    ldconfig -p 2> /dev/null | grep -q 'libnvrtc\.so' && return 0
    local d
    for d in ${LD_LIBRARY_PATH//:/ }; do ls "$d"/libnvrtc.so* > /dev/null 2>&1 && return 0; done
    return 1
}
if ! gpu_env_has_nvrtc; then
    gpu_env_path="$(find /usr/local /opt /usr/lib /usr/lib64 -name 'libnvrtc.so.1[3-9]*' -print -quit 2> /dev/null)"
    [ -n "$gpu_env_path" ] || gpu_env_path="$(find /usr/local /opt /usr/lib /usr/lib64 -name 'libnvrtc.so*' -print -quit 2> /dev/null)"
    if [ -n "$gpu_env_path" ]; then
        LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$(dirname "$gpu_env_path")"
        export LD_LIBRARY_PATH
        echo "device_env: libnvrtc (for cuDNN's fused attention) from $(dirname "$gpu_env_path")"
    else
        echo "device_env: no libnvrtc found: cuDNN's fused attention cannot build; train_llamacu will use the cuBLAS attention" >&2
    fi
fi
unset gpu_env_lib gpu_env_path gpu_env_dir

nvidia-smi -L 2> /dev/null || echo "device_env: nvidia-smi -L failed: no GPU visible" >&2
python3 -c 'import torch, transformers; print("python3:", torch.__version__, "cuda", torch.version.cuda, "| transformers", transformers.__version__)' 2> /dev/null ||
    echo "device_env: python3 has no torch/transformers" >&2
python3 -c 'import galore_torch, bitsandbytes; print("bitsandbytes", bitsandbytes.__version__, "| galore_torch ok")' 2> /dev/null ||
    echo "device_env: galore_torch / bitsandbytes do not import (carry .whl: dev/gpu/README.md)" >&2
if [ -n "$(gpu_env_missing)" ]; then
    echo "device_env: still missing: $(gpu_env_missing | tr '\n' ' ')(carry them in .gpu/lib: dev/gpu/pack.sh)" >&2
fi

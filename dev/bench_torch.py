# bench_torch.py: the reference trainer the GPU benchmarks compare train_llamacu against.
#
# PyTorch + Hugging Face LlamaForCausalLM + galore-torch + bitsandbytes, set up the way the
# official GaLore code (jiaweizzhao/GaLore torchrun_main.py) sets up its runs, written here from
# galore.md and that script's behaviour:
#   - the model is HF LlamaForCausalLM (sdpa attention), untied, our configs (llama.h), weights in
#     bf16 (the paper's pure-bf16 setting: bf16 weights, gradients and optimizer states, no fp32
#     master copy), HF init N(0, 0.02); the loss is model(input_ids, labels=input_ids).loss, as
#     the official loop (HF shifts the labels and upcasts the logits to fp32 for the loss)
#   - GaLore parameters: the weight of every nn.Linear whose module name contains "attn" or "mlp"
#     (q/k/v/o, gate/up/down); the rest (embeddings, lm_head, norms) form the plain group
#   - adam: torch.optim.Adam; adamw: torch.optim.AdamW (Table 11's "AdamW"); adam8bit:
#     bnb.optim.Adam8bit; galore_adamw: GaLoreAdamW; galore_adamw8bit: GaLoreAdamW8bit; wd 0
#   - --per-layer 1: the official per-layer trick (its galore_adamw8bit_per_layer), for every
#     optimizer kind: one optimizer per parameter, stepped from register_post_accumulate_grad_hook
#     as soon as that parameter's gradient is final, then the gradient is freed (zero_grad), so
#     gradients never exist for the whole model at once. Non-GaLore parameters get the plain
#     counterpart (bnb Adam8bit under galore_adamw8bit, as the official code). Unlike the official
#     code, --update-proj-gap is NOT doubled in per-layer mode (galore.md: that doubling works
#     around a double scheduler step; one optimizer step per training step here, as train_llamacu)
#   - --recompute 1: model.gradient_checkpointing_enable() (the official --activation_checkpointing)
#   - constant lr (no scheduler: it does not change the cost of a step), no gradient clipping
#     (the official default, and per-layer mode cannot clip)
#
# bitsandbytes >= 0.4x argument shift (dev/ref/README.md, make_galore_reference.py): galore-torch
# 1.0 passes (..., min_8bit_size, percentile_clipping=100, block_wise=True) positionally to
# Optimizer2State, whose newer signature is (..., min_8bit_size, max_unorm, skip_zeros): so
# max_unorm = 100 and skip_zeros = True. With max_unorm > 0 the 32-bit kernel caps the update
# relative to ||p||, which is 0 for GaLore's zeroed low-rank stand-in: GaLore matrices whose
# low-rank state is under 4096 elements get no update at all. As the reference script, this
# benchmark resets them to max_unorm 0, skip_zeros False (what the paper's bitsandbytes did with
# those arguments) and says so in its output; --fix-bnb-args 0 measures the package as installed.
#
# Measured: wall time of each step (host clock around forward + backward + optimizer, after a
# device synchronize on both sides), tokens/s = B*T / step time, as the median over the steps
# after --warmup-steps-excluded (the first steps build kernels and plans, and step 1 of a GaLore
# run computes every projector by SVD); memory: torch.cuda.max_memory_allocated and
# max_memory_reserved, and the device's own count (cudaMemGetInfo via torch.cuda.mem_get_info)
# sampled after each step, minus what was in use right after the CUDA context was created: the
# same instrument train_llamacu's "peak (+N)" figure uses, so the two are comparable.
# Prints a few human lines on stderr and one JSON object as the last line of stdout (and to
# --json FILE).
#
#   python3 dev/bench_torch.py --model llama_1b --optimizer galore_adamw8bit --rank 512 --per-layer 1 \
#       --batch 1 --seq 256 --steps 20
#   python dev/bench_torch.py --device cpu --model llama_tiny --optimizer galore_adamw \
#       --rank 64 --batch 2 --seq 64 --steps 5 --warmup-steps-excluded 1     # CPU smoke test
#
# Needs torch, transformers; galore-torch for galore_*; bitsandbytes for *8bit. On --device cpu,
# an 8-bit optimizer that bitsandbytes cannot run there is skipped with a message (exit 0, JSON
# {"skipped": reason}); on a GPU every failure is an error.
import argparse
import inspect
import json
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARD_MAGIC = 20240520
OPTIMIZERS = ("adamw", "adam", "adam8bit", "galore_adamw", "galore_adamw8bit")

# llama.h's LLAMA_PRESETS: hidden, intermediate, heads, kv heads, layers, vocab, max positions
PRESETS = {
    "llama_tiny": (256, 688, 4, 4, 4, 4096, 1024),
    "llama_60m": (512, 1376, 8, 8, 8, 32000, 1024),
    "llama_130m": (768, 2048, 12, 12, 12, 32000, 1024),
    "llama_350m": (1024, 2736, 16, 16, 24, 32000, 1024),
    "llama_1b": (2048, 5461, 32, 32, 24, 32000, 1024),
    "llama_7b": (4096, 11008, 32, 32, 32, 32000, 2048),
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Skip(Exception):
    """an optimizer this device cannot run (8-bit bitsandbytes on the CPU): reported, not an error"""


def make_config(name):
    from transformers import LlamaConfig
    if name in PRESETS:
        C, H, NH, NKV, L, V, maxT = PRESETS[name]
        cfg = LlamaConfig(vocab_size=V, hidden_size=C, intermediate_size=H, num_hidden_layers=L,
                          num_attention_heads=NH, num_key_value_heads=NKV, max_position_embeddings=maxT,
                          rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False,
                          attention_bias=False, mlp_bias=False, hidden_act="silu", use_cache=False)
    elif os.path.isfile(name):
        cfg = LlamaConfig.from_json_file(name)
        cfg.use_cache = False
    else:
        sys.exit(f"--model {name}: not a built-in name ({', '.join(PRESETS)}) nor a config.json file")
    cfg._attn_implementation = "sdpa"
    return cfg


def read_shard(path):
    # llm.c token shard: 256 int32 header [magic, version, count], then count uint16 tokens
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        sys.exit(f"--data {path}: cannot read it ({e.strerror}); hint: leave --data out for random tokens")
    header = np.frombuffer(data[:1024], dtype=np.int32)
    if len(data) < 1024 or header[0] != SHARD_MAGIC or header[1] != 1 or 1024 + 2 * int(header[2]) > len(data):
        sys.exit(f"--data {path}: not an llm.c token shard (magic {SHARD_MAGIC}, version 1); "
                 "hint: leave --data out for random tokens")
    return np.frombuffer(data[1024:1024 + 2 * int(header[2])], dtype=np.uint16).astype(np.int64)


def bnb_args_shifted():
    # True when the installed bitsandbytes no longer has percentile_clipping/block_wise in
    # Optimizer2State, so galore-torch's positional arguments land in max_unorm/skip_zeros
    from bitsandbytes.optim.optimizer import Optimizer2State
    names = inspect.signature(Optimizer2State.__init__).parameters
    return "percentile_clipping" not in names and "max_unorm" in names


def galore_8bit(params_groups, lr, fix):
    from galore_torch import GaLoreAdamW8bit
    opt = GaLoreAdamW8bit(params_groups, lr=lr, weight_decay=0.0)
    if fix and bnb_args_shifted():
        # the shift described at the top: restore "no update-norm cap, no zero skipping"
        if not (opt.args.max_unorm == 100 and opt.args.skip_zeros is True):
            sys.exit(f"bitsandbytes: expected the shifted arguments max_unorm 100, skip_zeros True, found "
                     f"{opt.args.max_unorm}, {opt.args.skip_zeros}: check galore-torch/bitsandbytes versions")
        opt.args.max_unorm = 0.0
        opt.args.skip_zeros = False
    return opt


def one_optimizer(kind, params, galore, a):
    """the optimizer of `kind` over `params` (a list); galore: these are GaLore matrices"""
    lr = a.lr
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=0.0)
    if kind == "adam8bit":
        import bitsandbytes as bnb
        return bnb.optim.Adam8bit(params, lr=lr, weight_decay=0.0)
    group = {"params": params}
    if galore:
        group.update(rank=a.rank, update_proj_gap=a.update_proj_gap, scale=a.galore_scale, proj_type=a.proj_type)
    if kind == "galore_adamw":
        from galore_torch import GaLoreAdamW
        return GaLoreAdamW([group], lr=lr, weight_decay=0.0, no_deprecation_warning=True)
    if kind == "galore_adamw8bit":
        if not galore:  # the official per-layer code: plain bnb 8-bit Adam for the non-GaLore tensors
            import bitsandbytes as bnb
            return bnb.optim.Adam8bit(params, lr=lr, weight_decay=0.0)
        return galore_8bit([group], lr, a.fix_bnb_args)
    raise ValueError(kind)


def build_optimizers(model, a):
    """(whole-model optimizer or None, {param: optimizer} for per-layer or None, GaLore params)"""
    galore_params = []
    if a.optimizer.startswith("galore"):
        for name, mod in model.named_modules():
            if isinstance(mod, nn.Linear) and any(k in name for k in ("attn", "mlp")):
                galore_params.append(mod.weight)
    gids = {id(p) for p in galore_params}
    params = [p for p in model.parameters() if p.requires_grad]
    if not a.per_layer:
        if a.optimizer == "galore_adamw":
            from galore_torch import GaLoreAdamW
            regular = [p for p in params if id(p) not in gids]
            groups = [{"params": regular},
                      {"params": galore_params, "rank": a.rank, "update_proj_gap": a.update_proj_gap,
                       "scale": a.galore_scale, "proj_type": a.proj_type}]
            return GaLoreAdamW(groups, lr=a.lr, weight_decay=0.0, no_deprecation_warning=True), None, galore_params
        if a.optimizer == "galore_adamw8bit":
            regular = [p for p in params if id(p) not in gids]
            groups = [{"params": regular},
                      {"params": galore_params, "rank": a.rank, "update_proj_gap": a.update_proj_gap,
                       "scale": a.galore_scale, "proj_type": a.proj_type}]
            return galore_8bit(groups, a.lr, a.fix_bnb_args), None, galore_params
        return one_optimizer(a.optimizer, params, False, a), None, galore_params
    per = {}
    for p in params:
        per[p] = one_optimizer(a.optimizer, [p], id(p) in gids, a)

    def hook(p):
        # the parameter's gradient is final (all of it accumulated): update now, free the gradient
        if p.grad is None:
            return
        per[p].step()
        per[p].zero_grad(set_to_none=True)

    for p in params:
        p.register_post_accumulate_grad_hook(hook)
    return None, per, galore_params


def device_used_mib(dev):
    free, total = torch.cuda.mem_get_info(dev)
    return (total - free) / 1048576.0


def run(a):
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no CUDA device (torch.cuda.is_available() is False); "
                 "hint: --device cpu for the smoke test")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    if not cuda and a.optimizer.endswith("8bit"):
        # GaLoreAdamW8bit calls torch.cuda.synchronize() after every tensor, which raises without a GPU
        torch.cuda.synchronize = lambda *args, **kw: None
    if a.optimizer.endswith("8bit"):
        try:
            import bitsandbytes  # noqa: F401
        except Exception as e:  # noqa: BLE001 (any import failure: a missing wheel or no native library)
            if cuda:
                sys.exit(f"--optimizer {a.optimizer}: bitsandbytes does not import ({e}); see dev/gpu/README.md for the wheels")
            raise Skip(f"bitsandbytes does not import here ({e})")
    if a.optimizer.startswith("galore"):
        try:
            import galore_torch  # noqa: F401
        except ImportError as e:
            sys.exit(f"--optimizer {a.optimizer}: galore_torch does not import ({e}); pip install galore-torch==1.0 "
                     "(dev/gpu/README.md: carrying the wheel to a machine without network)")

    import transformers
    from transformers import LlamaForCausalLM
    transformers.logging.set_verbosity_error()
    cfg = make_config(a.model)
    B, T, V = a.batch, a.seq, cfg.vocab_size
    if T > cfg.max_position_embeddings:
        sys.exit(f"--seq {T}: more than the model's max_position_embeddings {cfg.max_position_embeddings}")

    base_mib = None
    if cuda:
        torch.cuda.set_device(dev)
        torch.zeros(1, device=dev)  # creates the context: the baseline below includes it, as train_llamacu's
        torch.cuda.synchronize(dev)
        base_mib = device_used_mib(dev)

    # the model: built directly on the device in the run's dtype (HF init draws N(0, 0.02) in it)
    torch.manual_seed(a.seed)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[a.dtype]
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    with torch.device(dev):
        model = LlamaForCausalLM(cfg)
    torch.set_default_dtype(old)
    model.train()
    if a.recompute:
        # transformers 5.2x renames it (the old name warns); the image's 5.17 may have only the old one
        (getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable)()
    n_params = sum(p.numel() for p in model.parameters())
    opt, per, galore_params = build_optimizers(model, a)
    watch = galore_params[0] if galore_params else next(model.parameters())
    watch0 = watch.detach().float().clone()

    # data: random tokens (seeded), or consecutive micro-batches of a shard as train_llama --shuffle 0
    if a.data:
        tokens = read_shard(a.data if os.path.exists(a.data) else os.path.join(ROOT, a.data))  # or repo-relative
        if len(tokens) < B * T + 1:
            sys.exit(f"--data {a.data}: {len(tokens)} tokens, fewer than one {B} x {T} micro-batch")
        if int(tokens.max()) >= V:
            sys.exit(f"--data {a.data}: token id {int(tokens.max())} >= vocab {V}")
        nb = (len(tokens) - 1) // (B * T)

        def batch(k):
            k %= nb
            return torch.from_numpy(tokens[k * B * T: k * B * T + B * T].reshape(B, T)).to(dev)
    else:
        gen = torch.Generator().manual_seed(a.seed + 1)
        pool = [torch.randint(0, V, (B, T), generator=gen) for _ in range(min(a.steps, 8))]

        def batch(k):
            return pool[k % len(pool)].to(dev)

    if cuda:
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    ms, losses, used = [], [], []
    for step in range(a.steps):
        x = batch(step)
        if cuda:
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        if opt is not None:
            opt.step()
            opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize(dev)
        ms.append((time.perf_counter() - t0) * 1e3)
        losses.append(loss.item())
        if cuda:
            used.append(device_used_mib(dev))
        if step < 3 or step + 1 == a.steps or (step + 1) % 10 == 0:
            log(f"step {step + 1}/{a.steps} | loss {losses[-1]:.4f} | {ms[-1]:.1f} ms | {B * T / ms[-1] * 1e3:.0f} tok/s"
                + (f" | device {used[-1]:.0f} MiB" if cuda else ""))
    del loss

    timed = ms[a.warmup_steps_excluded:]
    med = statistics.median(timed)
    change = (watch.detach().float() - watch0).abs().max().item()
    res = {
        "engine": "torch", "torch": torch.__version__, "transformers": transformers.__version__,
        "galore_torch": _version("galore-torch"), "bitsandbytes": _version("bitsandbytes"),
        "device": torch.cuda.get_device_name(dev) if cuda else "cpu",
        "model": a.model, "params": n_params, "dtype": a.dtype, "optimizer": a.optimizer, "per_layer": a.per_layer,
        "rank": a.rank if a.optimizer.startswith("galore") else None,
        "update_proj_gap": a.update_proj_gap if a.optimizer.startswith("galore") else None,
        "recompute": a.recompute, "batch": B, "seq": T, "steps": a.steps,
        "warmup_steps_excluded": a.warmup_steps_excluded,
        "bnb_args_fixed": bool(a.fix_bnb_args and bnb_args_shifted()) if a.optimizer == "galore_adamw8bit" else None,
        "data": a.data or "random",
        "tokens_per_step": B * T,
        "tokens_per_s": B * T / med * 1e3,
        "tokens_per_s_mean": B * T / statistics.mean(timed) * 1e3,
        "step_ms_median": med, "step_ms_min": min(timed), "step_ms_max": max(timed),
        "first_step_ms": ms[0], "step_ms": [round(t, 3) for t in ms],
        "loss_first": losses[0], "loss_last": losses[-1],
        "watched_weight_max_change": change,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "max_memory_allocated_mib": torch.cuda.max_memory_allocated(dev) / 1048576.0 if cuda else None,
        "max_memory_reserved_mib": torch.cuda.max_memory_reserved(dev) / 1048576.0 if cuda else None,
        "device_used_baseline_mib": base_mib,
        "device_used_peak_mib": max(used) if cuda else None,
        "device_peak_over_baseline_mib": max(used) - base_mib if cuda else None,
    }
    if not all(np.isfinite(losses)):
        log("warning: a non-finite loss: the timings are of a diverged run")
    if change == 0.0 and a.steps > 1:
        # the failure mode of the bnb argument shift: a GaLore matrix that never moves
        log("warning: the watched weight did not change over the run: the optimizer does not update it")
    return res


def _version(dist):
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:  # noqa: BLE001 (not installed)
        return None


def main():
    ap = argparse.ArgumentParser(description="reference trainer (PyTorch + HF + galore-torch + bitsandbytes) for the GPU benchmarks")
    ap.add_argument("--model", default="llama_tiny", help=f"built-in ({', '.join(PRESETS)}) or a HF config.json")
    ap.add_argument("--optimizer", default="adamw", choices=OPTIMIZERS)
    ap.add_argument("--rank", type=int, default=128, help="GaLore rank")
    ap.add_argument("--update-proj-gap", type=int, default=200, help="GaLore T (not doubled in per-layer mode)")
    ap.add_argument("--galore-scale", type=float, default=0.25)
    ap.add_argument("--proj-type", default="std")
    ap.add_argument("--per-layer", type=int, default=0, choices=(0, 1), help="1: one optimizer per tensor, stepped from its gradient hook")
    ap.add_argument("--recompute", type=int, default=0, choices=(0, 1), help="1: HF gradient checkpointing (activation recomputation)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup-steps-excluded", type=int, default=3, help="first steps left out of the median")
    ap.add_argument("--lr", type=float, default=1e-3, help="constant learning rate")
    ap.add_argument("--dtype", default="bf16", choices=("bf16", "fp32"), help="weights, gradients and optimizer states")
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    ap.add_argument("--data", default="", help="llm.c token shard read in order (default: random tokens)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--fix-bnb-args", type=int, default=1, choices=(0, 1),
                    help="1: undo galore-torch 1.0's argument shift into newer bitsandbytes (see the top of this file)")
    ap.add_argument("--json", default="", help="also write the JSON result to this file")
    a = ap.parse_args()
    if a.steps <= a.warmup_steps_excluded:
        sys.exit(f"--steps {a.steps} must exceed --warmup-steps-excluded {a.warmup_steps_excluded}")
    if a.batch < 1 or a.seq < 1 or a.rank < 1 or a.update_proj_gap < 1:
        sys.exit("--batch, --seq, --rank and --update-proj-gap must be positive")
    try:
        res = run(a)
    except Skip as e:
        log(f"skipped: --optimizer {a.optimizer} on --device {a.device}: {e}")
        res = {"engine": "torch", "optimizer": a.optimizer, "device": a.device, "skipped": str(e)}
    except Exception as e:  # noqa: BLE001
        # bitsandbytes' 8-bit kernels may have no CPU implementation: a skip there, an error on a GPU
        if a.device == "cpu" and a.optimizer.endswith("8bit"):
            log(f"skipped: --optimizer {a.optimizer} on --device cpu: bitsandbytes failed there ({type(e).__name__}: {e})")
            res = {"engine": "torch", "optimizer": a.optimizer, "device": "cpu", "skipped": f"{type(e).__name__}: {e}"}
        else:
            raise
    if "skipped" not in res:
        log(f"{res['device']} | {res['model']} {res['params'] / 1e6:.2f}M | {res['optimizer']}"
            f"{' per-layer' if a.per_layer else ''}{' recompute' if a.recompute else ''} | {a.batch} x {a.seq} | "
            f"median {res['tokens_per_s']:.0f} tok/s ({res['step_ms_median']:.1f} ms) over steps "
            f"{a.warmup_steps_excluded + 1}..{a.steps}"
            + (f" | max allocated {res['max_memory_allocated_mib']:.0f} MiB, reserved {res['max_memory_reserved_mib']:.0f} MiB, "
               f"device peak +{res['device_peak_over_baseline_mib']:.0f} MiB" if res["max_memory_allocated_mib"] is not None else "")
            + (" | bitsandbytes argument shift fixed" if res.get("bnb_args_fixed") else ""))
    line = json.dumps(res)
    if a.json:
        with open(a.json, "w") as f:
            f.write(line + "\n")
    print(line, flush=True)


if __name__ == "__main__":
    main()

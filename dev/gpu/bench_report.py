# bench_report.py: the tables of scripts/bench_table11.sh and scripts/bench_7b.sh, from the logs
# those scripts leave in their LOGDIR. Python standard library only (make test runs it on
# fabricated logs, without torch or a GPU).
#
# What it reads, per run TAG:
#   ours_TAG.out     train_llamacu's console: "device 0: NAME | ...", "GPU memory plan: X GiB
#                    (weights + optimizer state Y GiB)", and the end-of-run line "GPU memory: plan
#                    P GiB | measured: A GiB in use before allocating (...), B after (+C), peak D (+E, ...)"
#                    (read in GiB, kept in MiB here)
#   ours_TAG.jsonl   train_llamacu --log: one {"step", "ms", "tokens_per_s", ...} per step
#   torch_TAG.json   dev/bench_torch.py --json
#   plan_TAG.out     (7B) train_llamacu --memory-plan 1: the "total" and "weights + optimizer state" rows
# Peak memory, both engines: the device's count (cudaMemGetInfo) at its high-water mark sampled
# after every step, minus what was in use right after the CUDA context was created (ours: E,
# "peak (+E)"; torch: device_peak_over_baseline_mib). Same instrument, same sampling points, and
# it counts what each program and its libraries hold, the caching allocator's reserve included.
#
#   python3 dev/gpu/bench_report.py table11 --dir LOGDIR --skip 5 --rows "adamw:0 adamw:1" [--meta k=v ...]
#   python3 dev/gpu/bench_report.py 7b --dir LOGDIR --skip 3 --rows "b1 b16rc" [--meta k=v ...]
#   python3 dev/gpu/bench_report.py ours LOGDIR/ours_TAG.out LOGDIR/ours_TAG.jsonl --skip 5   (one run, as JSON)
# Prints markdown; exits 1 when a run's figures are missing (a failed or unparsable run).
import argparse
import json
import os
import re
import statistics
import sys

GIB = 1024.0  # MiB per GiB

# galore.md, Table 11 (llama_1b, 256-token batch, one A100 in the paper): tokens/s, memory (G)
PAPER_T11 = {
    ("adamw", 0): (1256.98, 13.60), ("adam8bit", 0): (1569.89, 9.54), ("galore_adamw8bit", 0): (1109.38, 7.95),
    ("adamw", 1): (1354.37, 9.63), ("adam8bit", 1): (1205.31, 6.93), ("galore_adamw8bit", 1): (1019.63, 5.63),
}


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return None


def parse_ours(console_path, log_path, skip):
    """train_llamacu's figures for one run; a field it cannot find is None"""
    r = {"device": None, "plan_mib": None, "state_mib": None, "baseline_mib": None, "peak_mib": None,
         "peak_over_baseline_mib": None, "tokens_per_s": None, "step_ms_median": None, "first_step_ms": None,
         "steps_logged": 0}
    text = _read(console_path) or ""
    m = re.search(r"^device \d+: (.+?) \| compute", text, re.M)
    if m:
        r["device"] = m.group(1).strip()
    m = re.search(r"^GPU memory plan: ([0-9.]+) GiB \(weights \+ optimizer state ([0-9.]+) GiB\)", text, re.M)
    if m:
        r["plan_mib"], r["state_mib"] = GIB * float(m.group(1)), GIB * float(m.group(2))
    m = re.search(r"^GPU memory: plan ([0-9.]+) GiB \| measured: ([0-9.]+) GiB in use before allocating[^,]*, "
                  r"([0-9.]+) after \(\+(-?[0-9.]+)\), peak ([0-9.]+) \(\+(-?[0-9.]+)", text, re.M)
    if m:
        r["plan_mib"] = r["plan_mib"] if r["plan_mib"] is not None else GIB * float(m.group(1))
        r["baseline_mib"], r["peak_mib"], r["peak_over_baseline_mib"] = (GIB * float(m.group(2)), GIB * float(m.group(5)),
                                                                         GIB * float(m.group(6)))
    steps = []
    for line in (_read(log_path) or "").splitlines():
        try:
            j = json.loads(line)
        except ValueError:
            continue
        if "tokens_per_s" in j and "ms" in j:
            steps.append(j)
    r["steps_logged"] = len(steps)
    if steps:
        r["first_step_ms"] = steps[0]["ms"]
    timed = [s for s in steps if s["step"] > skip]
    if timed:
        r["tokens_per_s"] = statistics.median(s["tokens_per_s"] for s in timed)
        r["step_ms_median"] = statistics.median(s["ms"] for s in timed)
    return r


def parse_torch(path):
    text = _read(path)
    if not text:
        return None
    try:
        j = json.loads(text.strip().splitlines()[-1])
    except ValueError:
        return None
    return None if "skipped" in j else j


def parse_plan(path):
    """train_llamacu --memory-plan 1: (total MiB, weights + optimizer state MiB), printed in GiB"""
    text = _read(path) or ""
    t = re.search(r"^\s+total\s+([0-9.]+) GiB", text, re.M)
    s = re.search(r"^\s+weights \+ optimizer state \(paper's estimate\)\s+([0-9.]+) GiB", text, re.M)
    return (GIB * float(t.group(1)) if t else None, GIB * float(s.group(1)) if s else None)


def fnum(x, fmt="{:.0f}"):
    return "n/a" if x is None else fmt.format(x)


def gib(mib):
    return fnum(None if mib is None else mib / GIB, "{:.2f}")


def ratio(a, b):
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def meta_lines(meta, ours_dev, torch_runs):
    tv = next((t for t in torch_runs if t), None)
    sw = "n/a"
    if tv:
        sw = (f"torch {tv.get('torch')}, transformers {tv.get('transformers')}, galore-torch {tv.get('galore_torch')}, "
              f"bitsandbytes {tv.get('bitsandbytes')}")
    card = meta.get("card") or "n/a"
    return [f"card: {card} (train_llamacu saw: {ours_dev or 'n/a'}; torch saw: {tv.get('device') if tv else 'n/a'})",
            f"date {meta.get('date', 'n/a')} | commit {meta.get('commit', 'n/a')} | {sw}"]


def table11(a, meta):
    rows, ok, ours_dev, torch_runs = [], True, None, []
    for spec in a.rows.split():
        opt, pl = spec.split(":")
        pl = int(pl)
        tag = f"{opt}_pl{pl}"
        o = parse_ours(os.path.join(a.dir, f"ours_{tag}.out"), os.path.join(a.dir, f"ours_{tag}.jsonl"), a.skip)
        t = parse_torch(os.path.join(a.dir, f"torch_{tag}.json"))
        ours_dev = ours_dev or o["device"]
        torch_runs.append(t)
        tt = t.get("tokens_per_s") if t else None
        tp = t.get("device_peak_over_baseline_mib") if t else None
        ta = t.get("max_memory_allocated_mib") if t else None
        if (a.ours and (o["tokens_per_s"] is None or o["peak_over_baseline_mib"] is None)) or (a.torch and (tt is None or tp is None)):
            ok = False
        paper = PAPER_T11.get((opt, pl))
        rows.append(f"| {opt} | {'yes' if pl else 'no'} | {fnum(o['tokens_per_s'])} | {fnum(tt)} | **{ratio(o['tokens_per_s'], tt)}** | "
                    f"{gib(o['peak_over_baseline_mib'])} | {gib(tp)} | **{ratio(o['peak_over_baseline_mib'], tp)}** | {gib(ta)} | "
                    f"{gib(o['plan_mib'])} | {fnum(o['first_step_ms'])} / {fnum(t.get('first_step_ms') if t else None)} | "
                    f"{f'{paper[0]:.0f} / {paper[1]:.2f}' if paper else 'n/a'} |")
    out = [f"### Table 11 setting: {meta.get('model', 'llama_1b')}, batch {meta.get('batch', '?')} x {meta.get('seq', '?')} tokens, "
           f"GaLore rank {meta.get('rank', '?')}, T {meta.get('gap', '?')}, alpha 0.25, bf16", ""]
    out += [s + "  " for s in meta_lines(meta, ours_dev, torch_runs)]
    out += [f"tok/s: median over steps {a.skip + 1}..{meta.get('steps', '?')}; peak: device memory over the post-context "
            "baseline, sampled after each step (bench_report.py); torch max alloc: torch.cuda.max_memory_allocated; "
            "paper: Table 11 on an A100 (another card: for scale only, not a ratio)", ""]
    out.append("| optimizer | per-layer | ours tok/s | torch tok/s | tok/s ours/torch | ours peak GiB | torch peak GiB | "
               "peak ours/torch | torch max alloc GiB | our plan GiB | step 1 ms ours / torch | paper tok/s / G |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    out += rows
    if not ok:
        out += ["", f"some runs failed or could not be parsed (n/a above): see the logs in {meta.get('logdir', a.dir)}"]
    return "\n".join(out) + "\n", ok


GOALS_7B = {"b1": 20.0, "b16rc": 24.0}
SETTINGS_7B = {"b1": "batch 1 x 256", "b16rc": "batch 16 x 256, --recompute 1"}


def report_7b(a, meta):
    rows, ok, ours_dev, torch_runs, flags = [], True, None, [], []
    for tag in a.rows.split():
        o = parse_ours(os.path.join(a.dir, f"ours_{tag}.out"), os.path.join(a.dir, f"ours_{tag}.jsonl"), a.skip)
        t = parse_torch(os.path.join(a.dir, f"torch_{tag}.json"))
        plan_total, plan_state = parse_plan(os.path.join(a.dir, f"plan_{tag}.out"))
        ours_dev = ours_dev or o["device"]
        torch_runs.append(t)
        tt = t.get("tokens_per_s") if t else None
        tp = t.get("device_peak_over_baseline_mib") if t else None
        peak = o["peak_over_baseline_mib"]
        if (a.ours and (peak is None or o["tokens_per_s"] is None or plan_total is None)) or (a.torch and (tt is None or tp is None)):
            ok = False
        goal = GOALS_7B.get(tag)
        verdict = "n/a" if peak is None or goal is None else ("PASS" if peak / GIB <= goal else "FAIL")
        within = "n/a"
        plan_run = o["plan_mib"] or plan_total  # the run's own plan has the queried SVD workspace
        if peak is not None and plan_run:
            dev = (peak - plan_run) / plan_run
            within = f"{dev * 100:+.1f}% ({'within' if abs(dev) <= 0.03 else 'OUTSIDE'} 3%)"
        flags.append(f"- {SETTINGS_7B.get(tag, tag)}: goal {fnum(goal, '{:.0f}')} GiB: **{verdict}** "
                     f"(ours {gib(peak)} GiB over the context; {gib(o['peak_mib'])} GiB in use on the card at the peak)")
        rows.append(f"| {SETTINGS_7B.get(tag, tag)} | {gib(plan_total)} ({gib(plan_state)}) | {gib(peak)} | {within} | "
                    f"{gib(tp)} | **{ratio(peak, tp)}** | {fnum(o['tokens_per_s'])} | {fnum(tt)} | **{ratio(o['tokens_per_s'], tt)}** | "
                    f"{fnum(o['first_step_ms'])} / {fnum(t.get('first_step_ms') if t else None)} | {verdict} |")
    out = [f"### llama_7b, galore_adamw8bit, rank {meta.get('rank', 1024)}, T {meta.get('gap', 500)}, per-layer updates, bf16", ""]
    out += [s + "  " for s in meta_lines(meta, ours_dev, torch_runs)]
    out += [f"tok/s: median over steps {a.skip + 1}..{meta.get('steps', '?')}; peak: device memory over the post-context "
            "baseline, sampled after each step; plan: train_llamacu --memory-plan 1 (total, and weights + optimizer state); "
            "measured vs plan: against the plan the run prints at startup (with cuSOLVER's queried workspace); "
            "paper: 22.72 GB measured by the official script at batch 1 (0.37 s/it), 22.8 G at batch 16 with checkpointing", ""]
    out.append("| setting | our plan GiB (state) | ours peak GiB | measured vs plan | torch peak GiB | peak ours/torch | "
               "ours tok/s | torch tok/s | tok/s ours/torch | step 1 ms ours / torch | goal |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    out += rows
    out += [""] + flags
    if not ok:
        out += ["", f"some runs failed or could not be parsed (n/a above): see the logs in {meta.get('logdir', a.dir)}"]
    return "\n".join(out) + "\n", ok


def main():
    ap = argparse.ArgumentParser(description="tables of the GPU benchmarks from their logs")
    ap.add_argument("what", choices=("table11", "7b", "ours"))
    ap.add_argument("paths", nargs="*", help="ours: CONSOLE JSONL")
    ap.add_argument("--dir", default=".")
    ap.add_argument("--rows", default="")
    ap.add_argument("--skip", type=int, default=3, help="first steps left out of the median")
    ap.add_argument("--meta", action="append", default=[], help="k=v shown in the heading (card, date, commit, model, ...)")
    ap.add_argument("--engines", default="ours torch", help="the engines that ran: a missing figure of another is not a failure")
    a = ap.parse_args()
    a.ours, a.torch = "ours" in a.engines.split(), "torch" in a.engines.split()
    if a.what == "ours":
        if len(a.paths) != 2:
            sys.exit("ours: give CONSOLE and JSONL")
        print(json.dumps(parse_ours(a.paths[0], a.paths[1], a.skip)))
        return
    meta = dict(kv.split("=", 1) for kv in a.meta if "=" in kv)
    text, ok = (table11 if a.what == "table11" else report_7b)(a, meta)
    sys.stdout.write(text)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

"""
Plot and tabulate training runs of train_llama / train_llamacu.

Reads the JSONL logs that --log writes (per step: {"step","loss","grad_norm","lr","ms",
"tokens_per_s"}; evals: {"step","val_loss","val_ppl"}), from run folders (RUN/log.jsonl, as
scripts/common.sh lays them out) or from log paths, and
  - draws one PNG with two panels: training loss and validation perplexity vs tokens (or
    steps), one colour per run, labelled by what the run is: the model and optimizer (and
    GaLore rank) from the log's first line {"run": {...}}, which the trainer writes; logs
    without it (older ones) are labelled by their folder or file name;
  - prints a table of each run's final val loss / perplexity next to the paper's number
    (GaLore arXiv 2403.03507, Table 2 for 60M-1B, Table 3 for 7B) when the run's model and
    optimizer match one (from the log's run line, else RUN/command.txt, else the run's name).

    python dev/plot_runs.py runs/llama60m_galore runs/llama60m_adam --out cmp.png
    python dev/plot_runs.py --no-plot runs/*          # only the table

Needs matplotlib (pip install matplotlib) for the PNG; the table needs nothing.
"""

import argparse
import json
import math
import os
import re
import sys

# Table 2 (validation perplexity at the end of training), keyed by (size, method)
PAPER_TABLE2 = {
    ("60m", "full"): 34.06, ("60m", "galore"): 34.88,
    ("130m", "full"): 25.08, ("130m", "galore"): 25.36,
    ("350m", "full"): 18.80, ("350m", "galore"): 18.95,
    ("1b", "full"): 15.56, ("1b", "galore"): 15.64,
}
# Table 3 (7B): perplexity at 40K / 80K / 120K / 150K steps
PAPER_TABLE3 = {
    "galore8bit": {40000: 17.94, 80000: 15.39, 120000: 14.95, 150000: 14.65},
    "adam8bit": {40000: 18.09, 80000: 15.47, 120000: 14.83, 150000: 14.61},
}


def read_log(path):
    """Returns (train, evals, run): train = {step: record}, evals = {step: record}; later lines win
    (a resumed run truncates its log, but be robust to an appended one too); run = the log's
    {"run": {...}} record (model, optimizer, rank, ...), or {} when it has none."""
    train, evals, run = {}, {}, {}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                print(f"{path}:{lineno}: not JSON, skipped (a line cut by a crash?)", file=sys.stderr)
                continue
            if isinstance(rec.get("run"), dict):
                run = rec["run"]
            if "step" not in rec:
                continue
            if "val_loss" in rec:
                evals[rec["step"]] = rec
            elif rec.get("loss") is not None and not rec.get("skipped"):
                train[rec["step"]] = rec
    return train, evals, run


def resolve(arg):
    """A run folder or a log path -> (name, log path, run folder or None)."""
    if os.path.isdir(arg):
        log = os.path.join(arg, "log.jsonl")
        if not os.path.exists(log):
            cands = sorted(p for p in os.listdir(arg) if p.endswith(".jsonl"))
            if not cands:
                sys.exit(f"{arg}: no log.jsonl (or other .jsonl) in this folder; pass the log path")
            log = os.path.join(arg, cands[0])
        return os.path.basename(os.path.normpath(arg)), log, arg
    if not os.path.exists(arg):
        sys.exit(f"{arg}: no such run folder or log file")
    base = os.path.basename(arg)
    parent = os.path.dirname(os.path.abspath(arg))
    name = os.path.basename(parent) if base == "log.jsonl" else os.path.splitext(base)[0]
    return name, arg, parent if base == "log.jsonl" else None


def run_identity(name, run_dir, run=None):
    """(size, optimizer) from the log's run line, else command.txt's --model/--optimizer, else the name."""
    text = name.lower()
    model, optim = (run or {}).get("model"), (run or {}).get("optimizer")
    model, optim = (model.lower() if model else None), (optim.lower() if optim else None)
    if optim is None and run_dir and os.path.exists(os.path.join(run_dir, "command.txt")):
        cmd = open(os.path.join(run_dir, "command.txt")).read().split()
        for i, tok in enumerate(cmd[:-1]):
            if tok == "--model":
                model = cmd[i + 1].lower()
            elif tok == "--optimizer":
                optim = cmd[i + 1].lower()
    m = re.search(r"(?:llama[_-]?)?(60m|130m|350m|1b|7b)(?![a-z0-9])", model or text)
    size = m.group(1) if m else None
    if optim is None:  # guess from the name
        if "galore" in text:
            optim = "galore_adamw8bit" if "8bit" in text else "galore_adamw"
        elif "8bit" in text:
            optim = "adam8bit"
        elif "adam" in text or "full" in text:
            optim = "adam"
    return size, optim


def paper_number(size, optim, last_eval_step):
    """(perplexity, label) the paper reports for this model/optimizer, or (None, "")."""
    if size is None or optim is None:
        return None, ""
    if size == "7b":
        key = "galore8bit" if optim == "galore_adamw8bit" else "adam8bit" if optim == "adam8bit" else None
        if key is None:
            return None, ""
        table = PAPER_TABLE3[key]
        # the milestone at or below the run's last eval (the run may still be going)
        reached = [s for s in table if s <= (last_eval_step or 0)]
        s = max(reached) if reached else 150000
        return table[s], f"Table 3 @{s // 1000}K ({'8-bit GaLore' if key == 'galore8bit' else '8-bit Adam'})"
    method = "galore" if optim.startswith("galore") else "full"
    v = PAPER_TABLE2.get((size, method))
    return (v, f"Table 2 {size.upper()} {'GaLore' if method == 'galore' else 'full-rank'}") if v else (None, "")


def run_label(name, run):
    """what the run is, from its log: "llama_60m galore_adamw r128" (the name when the log has no run line)"""
    if not run.get("optimizer"):
        return name
    label = f"{run.get('model', '?')} {run['optimizer']}"
    if run.get("rank"):
        label += f" r{run['rank']}"
    return label


def summarize(name, log, run_dir):
    train, evals, run = read_log(log)
    steps = sorted(train)
    cum, toks = 0.0, {}
    for s in steps:  # tokens trained per step = tokens/s x seconds (pad targets excluded)
        r = train[s]
        cum += r.get("tokens_per_s", 0.0) * r.get("ms", 0.0) / 1000.0
        toks[s] = cum
    tps = sorted(train[s]["tokens_per_s"] for s in steps[1:] if "tokens_per_s" in train[s]) or [float("nan")]
    secs = sum(train[s].get("ms", 0.0) for s in steps) / 1000.0
    size, optim = run_identity(name, run_dir, run)
    last = max(evals) if evals else None
    pp, plabel = paper_number(size, optim, last)
    tail = [train[s]["loss"] for s in steps[-50:]]
    return dict(name=run_label(name, run), folder=name, train=train, evals=evals, steps=steps, toks=toks,
                tok_at=lambda s: toks.get(s, toks[max(k for k in steps if k <= s)] if any(k <= s for k in steps) else 0.0),
                median_tps=tps[len(tps) // 2], train_secs=secs, size=size, optim=optim,
                final_val=evals[last] if last is not None else None, last_eval=last,
                train_tail=sum(tail) / len(tail) if tail else float("nan"), paper=pp, paper_label=plabel)


def print_table(runs):
    hdr = f"{'run':<28} {'optimizer':<17} {'steps':>7} {'tokens':>9} {'tok/s':>7} {'train':>7} {'val loss':>9} {'val ppl':>9}  paper ppl"
    print(hdr)
    print("-" * len(hdr))
    for r in runs:
        fv = r["final_val"]
        vl = f"{fv['val_loss']:.4f}" if fv else "-"
        vp = f"{fv['val_ppl']:.2f}" if fv else "-"
        ntok = r["toks"][r["steps"][-1]] if r["steps"] else 0.0
        tok = f"{ntok / 1e9:.2f}B" if ntok >= 1e9 else f"{ntok / 1e6:.2f}M"
        paper = f"{r['paper']:.2f} ({r['paper_label']})" if r["paper"] else "-"
        nsteps = r["steps"][-1] if r["steps"] else 0
        print(f"{r['name']:<28} {str(r['optim'] or '?'):<17} {nsteps:>7} {tok:>9} {r['median_tps']:>7.0f} "
              f"{r['train_tail']:>7.4f} {vl:>9} {vp:>9}  {paper}")
    print("train = mean training loss of the last 50 steps; val = the last evaluation; tok/s = median step")


def smooth_curve(values, window):
    """Centered moving average (shrinking at the ends): unlike an EMA it does not lag behind
    the fast early drop of the loss."""
    h = max(0, int(window) // 2)
    pre = [0.0]
    for v in values:
        pre.append(pre[-1] + v)
    out = []
    for i in range(len(values)):
        a, b = max(0, i - h), min(len(values), i + h + 1)
        out.append((pre[b] - pre[a]) / (b - a))
    return out


def plot(runs, out, xkind, title, smooth):
    try:
        import matplotlib
    except ImportError:  # one line, not a traceback: the table above is already printed
        sys.exit("error: dev/plot_runs.py: the PNG needs matplotlib: pip install matplotlib (--no-plot prints the table only)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    scale, xlabel = (1e6, "tokens (millions)") if xkind == "tokens" else (1.0, "optimizer step")
    for i, r in enumerate(runs):
        c = colors[i % len(colors)]
        xs = [(r["toks"][s] if xkind == "tokens" else s) / scale for s in r["steps"]]
        ys = [r["train"][s]["loss"] for s in r["steps"]]
        ax1.plot(xs, ys, color=c, alpha=0.18, linewidth=0.6)
        win = smooth if smooth > 0 else max(1, len(ys) // 25)
        ax1.plot(xs, smooth_curve(ys, win), color=c, linewidth=1.6, label=r["name"])
        es = sorted(r["evals"])
        if es:
            ex = [(r["tok_at"](s) if xkind == "tokens" else s) / scale for s in es]
            ey = [r["evals"][s]["val_ppl"] for s in es]
            fv = r["final_val"]
            ax2.plot(ex, ey, color=c, marker="o", markersize=3.5, linewidth=1.6,
                     label=f"{r['name']} ({fv['val_ppl']:.1f})")
            if r["paper"]:
                ax2.axhline(r["paper"], color=c, linestyle=":", linewidth=1.0)
    # zoom the loss panel on the part after the first steps' drop
    all_y = [r["train"][s]["loss"] for r in runs for s in r["steps"][len(r["steps"]) // 10:]]
    if all_y:
        lo, hi = min(all_y), max(all_y)
        ax1.set_ylim(lo - 0.05 * (hi - lo), hi + 0.25 * (hi - lo))
    ax1.set_title("training loss (faint: per step; solid: moving average)")
    ax1.set_xlabel(xlabel)
    ax1.set_ylabel("cross-entropy loss")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    any_paper = any(r["paper"] for r in runs)
    ax2.set_title("validation perplexity (legend: final" + ("; dotted: paper)" if any_paper else ")"))
    ax2.set_xlabel(xlabel)
    ax2.set_ylabel("perplexity (log scale)")
    ax2.set_yscale("log")
    from matplotlib.ticker import ScalarFormatter
    for axis in (ax2.yaxis,):
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(ScalarFormatter())
    ev = [r["evals"][s]["val_ppl"] for r in runs for s in r["evals"]]
    if ev:  # skip the first eval's huge perplexity if it squashes the rest
        tail = sorted(ev)[: max(1, int(len(ev) * 0.9))]
        ax2.set_ylim(min(ev) * 0.93, max(tail) * 1.15)
    ax2.grid(alpha=0.3, which="both")
    ax2.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run folders (with log.jsonl) or JSONL log files")
    ap.add_argument("--out", default="runs.png", help="PNG to write [runs.png]")
    ap.add_argument("--x", choices=["tokens", "steps"], default="tokens", help="x axis [tokens]")
    ap.add_argument("--title", default="", help="figure title")
    ap.add_argument("--smooth", type=int, default=0, help="moving-average window of the training loss in steps (0: 4%% of the run) [0]")
    ap.add_argument("--no-plot", action="store_true", help="only print the table")
    args = ap.parse_args()
    runs = []
    for a in args.runs:
        name, log, run_dir = resolve(a)
        r = summarize(name, log, run_dir)
        if not r["steps"] and not r["evals"]:
            print(f"{log}: no step or eval lines yet, skipped", file=sys.stderr)
            continue
        runs.append(r)
    if not runs:
        sys.exit("nothing to plot: every log was empty")
    labels = [r["name"] for r in runs]
    for r in runs:  # two runs of the same model and optimizer: tell them apart by their folder
        if labels.count(r["name"]) > 1:
            r["name"] = f"{r['name']} ({r['folder']})"
    print_table(runs)
    if not args.no_plot:
        plot(runs, args.out, args.x, args.title, args.smooth)


if __name__ == "__main__":
    main()

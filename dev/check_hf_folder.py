"""
A folder train_llama saved (a run's --out, a checkpoint, a fine-tune) opened by transformers, as a
user would: AutoTokenizer.from_pretrained(DIR) and AutoModelForCausalLM.from_pretrained(DIR).
generate(). Checks that
  - the tokenizer loads and encodes each prompt to the ids train_llama's --prompt prints;
  - greedy generate() (its stop: generation_config.json's eos) gives the tokens that
    `train_llama --steps 0 --temperature 0` gives (both in fp32; the first difference is reported);
  - generate() stops on the eos of config.json / generation_config.json, which the tokenizer's eos is.

Usage: python dev/check_hf_folder.py DIR [--bin ./train_llama] [--prompt TEXT ...] [--new 24]
Needs torch and transformers (dev only; dev/test/test_hf.sh runs it where they are installed).
"""
import argparse
import json
import os
import re
import subprocess
import sys


def ours(bin_, d, args):
    out = subprocess.run([bin_, "--init", d, "--steps", "0", "--out", "", "--seq", "128", "--threads", "2"] + args,
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"FAIL {bin_} {' '.join(args)}: {out.stderr.strip()[-300:]}")
    return out.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--bin", default="./train_llama")
    ap.add_argument("--prompt", nargs="+", default=["It is a truth universally acknowledged", "Hello world, 1234 naïve café"])
    ap.add_argument("--new", type=int, default=24)
    a = ap.parse_args()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    tok = AutoTokenizer.from_pretrained(a.dir)
    model = AutoModelForCausalLM.from_pretrained(a.dir, dtype=torch.float32)
    gen = GenerationConfig.from_pretrained(a.dir)
    gen.do_sample, gen.max_new_tokens = False, a.new  # greedy, the folder's eos
    cfg = json.load(open(os.path.join(a.dir, "config.json")))
    eos = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
    bad = []
    cfg_eos = cfg.get("eos_token_id") if isinstance(cfg.get("eos_token_id"), list) else [cfg.get("eos_token_id")]
    if tok.eos_token_id not in eos or not set(cfg_eos) <= set(eos):
        bad.append(f"eos: tokenizer {tok.eos_token_id}, generation_config {gen.eos_token_id}, config {cfg.get('eos_token_id')}")
    for text in a.prompt:
        ids = tok(text)["input_ids"]
        got = ours(a.bin, a.dir, ["--prompt", text, "--sample-len", "1", "--temperature", "0"])
        m = re.search(r"^prompt: \d+ tokens: (.*)$", got, re.M)
        mine = [int(x) for x in m.group(1).split()] if m else None
        if mine != ids:
            bad.append(f"prompt {text!r}: transformers {ids}, train_llama {mine}")
            continue
        # greedy continuations: ours as ids (no tokenizer: no stop), cut after the first eos
        with torch.no_grad():
            hf = model.generate(torch.tensor([ids]), generation_config=gen, attention_mask=torch.ones(1, len(ids), dtype=torch.long))[0].tolist()[len(ids):]
        got = ours(a.bin, a.dir, ["--prompt-ids", " ".join(map(str, ids)), "--tokenizer", "/nonexistent", "--sample-len", str(a.new),
                                  "--temperature", "0"])
        mine = [int(x) for x in re.search(r"^sample ids: (.*)$", got, re.M).group(1).split()][len(ids):]
        for k, t in enumerate(mine):
            if t in eos:
                mine = mine[:k + 1]
                break
        if hf != mine:
            k = next((i for i, (x, y) in enumerate(zip(hf, mine)) if x != y), min(len(hf), len(mine)))
            bad.append(f"greedy after {text!r}: first difference at new token {k}: transformers {hf[k:k + 5]}, train_llama {mine[k:k + 5]}")
        else:
            print(f"ok   {text!r}: {len(ids)} ids as train_llama's --prompt; greedy generate() = train_llama --temperature 0 "
                  f"({len(hf)} tokens{', ends with eos' if hf and hf[-1] in eos else ''}): {tok.decode(hf)!r}")
    for b in bad:
        print("FAIL", b)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()

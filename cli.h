// cli.h: the run's settings and ONE table of options that both the parser and --help read,
// so the help text cannot disagree with the parser. Shared by the CPU and GPU programs.
#ifndef CLI_H
#define CLI_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <math.h>
#include "utils.h"

#define PATHLEN 1024
#define CLI_MAX_OPTIONS 96 // room in Settings.given; CLI_OPTIONS has fewer (checked in cli_parse)

typedef struct {
    // model and data
    char model[PATHLEN];       // built-in name or config.json
    char init[PATHLEN];        // safetensors to start from ("" = random init)
    char train[PATHLEN];       // glob of train shards
    char val[PATHLEN];         // glob of val shards ("" = no eval)
    char tokenizer[PATHLEN];   // tokenizer.bin / tokenizer.json / a folder: decodes samples, encodes --prompt
    char vocab[16];            // the model's vocab_size: "" the config's, a number, or "auto" (the tokenizer's)
    int vocab_multiple;        // --vocab auto rounds up to a multiple of this
    int batch;                 // B: sequences per micro-batch
    int seq;                   // T: tokens per sequence
    int grad_accum;            // micro-batches per optimizer step
    int shuffle;
    // schedule and optimizer
    int steps;
    float lr;
    int warmup;
    float min_lr_ratio;
    char schedule[16];         // cosine | constant
    char optimizer[32];        // adamw | adam | galore_adamw | adam8bit | galore_adamw8bit | fira_adamw | apollo_adamw | apollo_mini | apollo_adamw8bit | fira_adamw8bit
    int rank;                  // GaLore r
    int update_proj_gap;       // GaLore T
    float galore_scale;        // GaLore alpha
    char proj_type[16];        // std | reverse_std | left | right
    // --- APOLLO ---
    float apollo_scale;        // the package's scale (< 0: the optimizer's default)
    char scale_type[16];       // auto | channel | tensor
    // --- end APOLLO ---
    int per_layer;             // update each tensor inside backward
    float weight_decay;
    float beta1, beta2;
    float eps;                 // < 0: the optimizer's own convention (see --help)
    float grad_clip;           // <= 0: off
    // run
    int64_t seed;
    char out[PATHLEN];
    char log[PATHLEN];
    int save_every;
    int keep;                  // complete checkpoints kept (0: all)
    int resume;
    int overwrite;             // a fresh run may replace the run already in --out
    int allow_changes;         // a resume may change the schedule / optimizer hyperparameters
    int max_bad_steps;
    char save_dtype[8];        // auto | f32 | bf16 (run_setup resolves auto)
    char save_shard_size[24];  // "5GB": the final model and checkpoints are sharded above this
    int64_t save_shard_bytes;  // save_shard_size parsed by run_setup (not an option itself)
    char init_config[PATHLEN]; // the --init config.json the model came from ("" for --model); set by run_setup, not an option
    int eval_every;
    int64_t eval_tokens;
    int sample_every;
    int sample_len;
    float temperature;         // sampling: 0 greedy
    int top_k;                 // sampling: 0 off
    float top_p;               // sampling: 1 off
    int threads;
    int print_every;
    char prompt_ids[PATHLEN];  // --steps 0: token ids whose continuation is sampled
    char prompt[4096];         // --steps 0: text (encoded by --tokenizer) whose continuation is sampled
    char dump_logits[PATHLEN]; // --steps 0: the first val batch's logits go to this file
    char memory_plan[8];       // "1" / "json": print the memory plan and exit ("0": train)
    char gpu_mem_text[24];     // --gpu-mem as typed: "24", "24G", "24GB", "24GiB"
    float gpu_mem;             // GiB of the GPU the plan is checked against (0: no check; run_setup parses gpu_mem_text)
    int recompute;             // recompute layer activations in backward instead of keeping them
    char weights[8];           // auto | bf16 | fp32 | int8 (weight8.h); auto: the engine's own (GPU bf16, CPU fp32)
    int weight_group;          // int8: elements per scale and zero point (contiguous in the row-major weight)
    int weight_int8_embed;     // int8: 1 quantizes the embedding and lm_head too
    char svd[16];              // GaLore projector: auto | exact | randomized
    char proj[16];             // GaLore projector source: svd | random (GoLore)
    char dist_init[PATHLEN];   // how ranks find each other without MPI: "" | file:PATH | tcp:HOST:PORT
    // GPU program only (the CPU program accepts and ignores them)
    int master_weights;        // fp32 master weights and fp32 moments
    int stochastic_rounding;   // stochastic rounding of the bf16 update
    int device;                // CUDA device index
    int attn_fallback;         // GPU attention: 0 cuDNN where it works, 1 cuBLAS, 2 cuDNN only with a deterministic backward
    unsigned char given[CLI_MAX_OPTIONS]; // given[i]: the user typed CLI_OPTIONS[i] (cli_given)
} Settings;

typedef enum { OPT_INT, OPT_INT64, OPT_FLOAT, OPT_STR, OPT_CHOICE } OptType;

typedef struct {
    const char* name;      // long option without the dashes
    OptType type;
    size_t offset;         // into Settings
    size_t size;           // for strings: the buffer size
    const char* def;       // default, as it would be typed
    const char* choices;   // for OPT_CHOICE: "a|b|c"
    const char* help;
} OptSpec;

#define OPT_S(field) offsetof(Settings, field), sizeof(((Settings*)0)->field)

static const OptSpec CLI_OPTIONS[] = {
    {"model", OPT_STR, OPT_S(model), "llama_tiny", NULL,
     "built-in config (llama_tiny, llama_60m, llama_130m, llama_350m, llama_1b, llama_7b), a HF config.json or a HF model folder (its config.json; the weights come with --init); with --init and no --model, the config.json beside the init file"},
    {"init", OPT_STR, OPT_S(init), "", NULL, "start from these weights instead of random init: a Hugging Face model folder (model.safetensors, or shards with model.safetensors.index.json; F32/BF16/F16) or one of its files; without --model, the folder's config.json is the model"},
    {"train", OPT_STR, OPT_S(train), "dev/data/tinytext/train_*.bin", NULL, "glob of training token shards"},
    {"val", OPT_STR, OPT_S(val), "dev/data/tinytext/val_*.bin", NULL, "glob of validation token shards (\"\" = no eval)"},
    {"tokenizer", OPT_STR, OPT_S(tokenizer), "dev/data/tinytext/tokenizer.bin", NULL, "tokenizer that decodes samples and encodes --prompt: a tokenizer.bin (dev/data/export_tokenizer.py), a Hugging Face tokenizer.json, or a folder holding one; with --init DIR and no --tokenizer, DIR's own if it has one; when training, else the one beside the --train shards (dev/data writes it there; a different one there is an error); copied into every saved folder (the default missing: samples print as token ids; a --tokenizer given that is missing is an error)"},
    {"vocab", OPT_STR, OPT_S(vocab), "", NULL, "the model's vocab_size instead of the config's: a number, or auto: the tokenizer's pieces (the one beside the --train shards, or --tokenizer), rounded up to --vocab-multiple (\"\": the config's)"},
    {"vocab-multiple", OPT_INT, OPT_S(vocab_multiple), "1", NULL, "--vocab auto rounds the tokenizer's size up to a multiple of this (64 suits the GPU's matmuls)"},
    {"batch", OPT_INT, OPT_S(batch), "16", NULL, "B: sequences per micro-batch"},
    {"seq", OPT_INT, OPT_S(seq), "128", NULL, "T: tokens per sequence (<= max_position_embeddings)"},
    {"grad-accum", OPT_INT, OPT_S(grad_accum), "1", NULL, "micro-batches summed into one optimizer step"},
    {"shuffle", OPT_INT, OPT_S(shuffle), "1", NULL, "1: seeded shuffle of sequences each epoch; 0: read the shards in order"},
    {"steps", OPT_INT, OPT_S(steps), "300", NULL, "optimizer steps (0: only evaluate)"},
    {"lr", OPT_FLOAT, OPT_S(lr), "3e-3", NULL, "peak learning rate"},
    {"warmup", OPT_INT, OPT_S(warmup), "30", NULL, "linear warmup steps (the first update has lr 0, as in the GaLore scripts)"},
    {"min-lr-ratio", OPT_FLOAT, OPT_S(min_lr_ratio), "0.1", NULL, "cosine floor as a fraction of --lr"},
    {"schedule", OPT_CHOICE, OPT_S(schedule), "cosine", "cosine|constant", "lr schedule after warmup"},
    {"optimizer", OPT_CHOICE, OPT_S(optimizer), "adamw", "adamw|adam|galore_adamw|adam8bit|galore_adamw8bit|fira_adamw|apollo_adamw|apollo_mini|apollo_adamw8bit|fira_adamw8bit",
     "adamw: torch.optim.AdamW; adam: torch.optim.Adam (L2 decay), the GaLore scripts' full-rank baseline; galore_adamw: galore-torch GaLoreAdamW (HF AdamW + projector); adam8bit: bitsandbytes blockwise 8-bit Adam; galore_adamw8bit: GaLoreAdamW8bit; fira_adamw: fira's FiraAdamW (GaLoreAdamW plus the norm-scaled residual outside the subspace, with the norm-growth limiter; takes the GaLore flags); "
     "apollo_adamw: apollo-torch APOLLOAdamW (random projection, channel-wise scaling of the raw gradient, norm-growth limiter); apollo_mini: APOLLO-Mini (rank 1, tensor-wise, scale 128); apollo_adamw8bit: APOLLO with 8-bit blockwise low-rank moments; fira_adamw8bit: fira_adamw with its low-rank moments kept as galore_adamw8bit keeps them (8-bit blockwise)"},
    {"rank", OPT_INT, OPT_S(rank), "128", NULL, "GaLore rank r (above min(m, n) keeps every direction)"},
    {"update-proj-gap", OPT_INT, OPT_S(update_proj_gap), "200", NULL, "GaLore T: the projector is recomputed by SVD at steps 1, T+1, 2T+1, ..."},
    {"galore-scale", OPT_FLOAT, OPT_S(galore_scale), "0.25", NULL, "GaLore alpha: scales the projected-back update of GaLore matrices"},
    {"proj-type", OPT_CHOICE, OPT_S(proj_type), "std", "std|reverse_std|left|right", "GaLore side: std projects the smaller dimension (right basis when m >= n)"},
    // --- APOLLO ---
    {"apollo-scale", OPT_FLOAT, OPT_S(apollo_scale), "-1", NULL, "APOLLO scale (apollo-torch's `scale`): the update is multiplied by sqrt(scale); -1 picks 1 (apollo_adamw, apollo_adamw8bit) or 128 (apollo_mini)"},
    {"scale-type", OPT_CHOICE, OPT_S(scale_type), "auto", "auto|channel|tensor", "APOLLO scaling of the raw gradient: channel (a factor per row or column, the one the projection keeps) or tensor (one factor); auto: channel, tensor for apollo_mini"},
    // --- end APOLLO ---
    {"per-layer", OPT_INT, OPT_S(per_layer), "0", NULL,
     "1: update each tensor inside backward as soon as its gradient is final; gradient memory is the largest update group's (a matmul's weights: q|k|v, gate|up, ... or the embedding); gives up global norm clipping (--grad-clip must be 0)"},
    {"weight-decay", OPT_FLOAT, OPT_S(weight_decay), "0", NULL, "weight decay, applied to every tensor"},
    {"beta1", OPT_FLOAT, OPT_S(beta1), "0.9", NULL, "Adam beta1"},
    {"beta2", OPT_FLOAT, OPT_S(beta2), "0.999", NULL, "Adam beta2"},
    {"eps", OPT_FLOAT, OPT_S(eps), "-1", NULL, "Adam epsilon; -1 picks the optimizer's own: 1e-8 (torch, bitsandbytes), 1e-6 for galore_adamw (galore-torch's HF AdamW)"},
    {"grad-clip", OPT_FLOAT, OPT_S(grad_clip), "1.0", NULL, "clip the global gradient norm to this (0: off; off by default with --per-layer)"},
    {"seed", OPT_INT64, OPT_S(seed), "42", NULL, "seed for init, shuffling and sampling"},
    {"out", OPT_STR, OPT_S(out), "out", NULL, "run folder: checkpoints OUT/ckpt_N/ and the final model.safetensors + config.json (\"\" = none)"},
    {"log", OPT_STR, OPT_S(log), "OUT/log.jsonl", NULL, "JSONL log: one object per optimizer step, eval results as their own lines (OUT: the --out folder; \"\" = none; --steps 0 logs only when given)"},
    {"save-every", OPT_INT, OPT_S(save_every), "0", NULL, "write a checkpoint (weights + full training state) every N steps, and at the end (0: only at the end)"},
    {"keep", OPT_INT, OPT_S(keep), "2", NULL, "complete checkpoints to keep, newest first (0: all)"},
    {"resume", OPT_INT, OPT_S(resume), "0", NULL, "1: continue from the newest complete checkpoint in --out (bitwise as if never stopped); starts fresh when there is none; nothing to do when it is at --steps or past"},
    {"overwrite", OPT_INT, OPT_S(overwrite), "0", NULL, "1: a fresh run (no --resume 1) may replace the checkpoints and model already in --out (they are deleted first); 0: it is refused"},
    {"allow-changes", OPT_INT, OPT_S(allow_changes), "0", NULL, "1: --resume 1 may change --lr, the schedule or other optimizer hyperparameters saved in the checkpoint (0: refused, naming them)"},
    {"max-bad-steps", OPT_INT, OPT_S(max_bad_steps), "5", NULL, "a non-finite loss or gradient skips the update; stop after this many in a row"},
    {"save-dtype", OPT_CHOICE, OPT_S(save_dtype), "auto", "auto|f32|bf16", "dtype of the final exported model; auto: bf16 when every --init tensor is BF16, else f32 (checkpoints are always f32, for exact resume)"},
    {"save-shard-size", OPT_STR, OPT_S(save_shard_size), "5GB", NULL,
     "the final model and checkpoints' weights are split into model-0000K-of-0000N.safetensors + model.safetensors.index.json above this size (transformers' max_shard_size; units B, KB, MB, GB = 10^3.., KiB, MiB, GiB = 2^10..; 0: never)"},
    {"eval-every", OPT_INT, OPT_S(eval_every), "100", NULL, "evaluate val loss every N steps, and at the end (0: only at the end)"},
    {"eval-tokens", OPT_INT64, OPT_S(eval_tokens), "10000000", NULL, "val tokens per evaluation (the paper's 10M; capped at the val set; always the same ones)"},
    {"sample-every", OPT_INT, OPT_S(sample_every), "0", NULL, "print a decoded sample every N steps (0: only at the end)"},
    {"sample-len", OPT_INT, OPT_S(sample_len), "64", NULL, "tokens per sample, at most (a sample ends after the tokenizer's eos; 0: no samples)"},
    {"temperature", OPT_FLOAT, OPT_S(temperature), "1", NULL, "samples: the logits are divided by this before the draw (0: greedy, the most likely token, no draw; the draws follow --seed)"},
    {"top-k", OPT_INT, OPT_S(top_k), "0", NULL, "samples: draw only among the k most likely tokens (0: all)"},
    {"top-p", OPT_FLOAT, OPT_S(top_p), "1", NULL, "samples: draw only among the most likely tokens whose probabilities sum to p (nucleus sampling, after --top-k; 1: all)"},
    {"threads", OPT_INT, OPT_S(threads), "0", NULL, "CPU threads for OpenMP and BLAS (0: all cores)"},
    {"print-every", OPT_INT, OPT_S(print_every), "1", NULL, "print a console line every N steps (the log gets every step)"},
    {"prompt-ids", OPT_STR, OPT_S(prompt_ids), "", NULL, "with --steps 0: token ids (space or comma separated, e.g. sentencepiece's encode of a text) whose continuation of --sample-len tokens is sampled and printed"},
    {"prompt", OPT_STR, OPT_S(prompt), "", NULL, "with --steps 0: text, encoded by --tokenizer as its library would (plus the bos a tokenizer.json's post-processor adds), whose continuation of --sample-len tokens is sampled and printed"},
    {"dump-logits", OPT_STR, OPT_S(dump_logits), "", NULL, "with --steps 0: write the first val batch's inputs and fp32 logits to this file (see README: to compare with transformers)"},
    {"memory-plan", OPT_CHOICE, OPT_S(memory_plan), "0", "0|1|json", "1: print the memory plan (weights, gradients, optimizer state, activations, workspaces) for this config and flags, and exit, without touching a GPU; json: the same as JSON"},
    {"gpu-mem", OPT_STR, OPT_S(gpu_mem_text), "0", NULL, "the GPU's memory in GiB (24, 24G, 24GB and 24GiB all mean 24 GiB, as cards are sold); implies --memory-plan 1: prints whether the GPU plan plus the CUDA context fits, and if not, the settings you did not pin that make it fit, cheapest first"},
    {"weights", OPT_CHOICE, OPT_S(weights), "auto", "auto|bf16|fp32|int8",
     "how the weights are stored: int8 keeps the projected matrices (q/k/v/o, gate/up/down) as 8-bit codes with an fp32 scale and an 8-bit zero point per --weight-group elements, requantized after each update with seeded stochastic rounding (Q-GaLore / Q-APOLLO); auto: bf16 on the GPU, fp32 on the CPU"},
    {"weight-group", OPT_INT, OPT_S(weight_group), "128", NULL, "--weights int8: elements per scale and zero point, contiguous along each row (the input dimension)"},
    {"weight-int8-embed", OPT_INT, OPT_S(weight_int8_embed), "0", NULL, "--weights int8: 1 also stores the embedding and lm_head as INT8 (0: they keep the engine's float weights)"},
    {"recompute", OPT_INT, OPT_S(recompute), "0", NULL,
     "1: keep only each layer's input in forward and recompute the rest of its activations in backward (less memory, ~1/3 more compute; results are identical)"},
    {"svd", OPT_CHOICE, OPT_S(svd), "auto", "auto|exact|randomized",
     "GaLore projector refresh: exact (full economy SVD, as galore-torch), randomized (range finder with power iterations; rank << dims), auto (picked per matrix shape, see galore.h)"},
    {"proj", OPT_CHOICE, OPT_S(proj), "svd", "svd|random",
     "GaLore projector source at each refresh: svd (the gradient's top singular vectors, --svd says how), random (GoLore: an orthonormalized seeded Gaussian basis from --seed, the tensor and the refresh, the same on every rank and engine)"},
    {"dist-init", OPT_STR, OPT_S(dist_init), "", NULL,
     "data parallel without MPI: file:PATH (a shared file) or tcp:HOST:PORT (rank 0's address) to exchange the NCCL id, with RANK / WORLD_SIZE / LOCAL_RANK (or Slurm's) in the environment; \"\": MPI when launched by mpirun, else one process"},
    {"master-weights", OPT_INT, OPT_S(master_weights), "0", NULL, "GPU: 1 keeps fp32 master weights and fp32 Adam moments (0: pure bf16 weights and moments, as the GaLore paper)"},
    {"stochastic-rounding", OPT_INT, OPT_S(stochastic_rounding), "0", NULL, "GPU: 1 rounds the bf16 results of each update stochastically (seeded, reproducible)"},
    {"device", OPT_INT, OPT_S(device), "0", NULL, "GPU: CUDA device index"},
    {"attn-fallback", OPT_INT, OPT_S(attn_fallback), "0", NULL, "GPU: 1 uses the cuBLAS attention path even where cuDNN's fused attention works; 2 uses cuDNN only with a deterministic backward (bitwise-reproducible runs), else the cuBLAS path"},
};
#define CLI_NUM_OPTIONS ((int)(sizeof(CLI_OPTIONS) / sizeof(CLI_OPTIONS[0])))

static const OptSpec* cli_find(const char* name) {
    for (int i = 0; i < CLI_NUM_OPTIONS; i++) if (strcmp(CLI_OPTIONS[i].name, name) == 0) return &CLI_OPTIONS[i];
    return NULL;
}

// what other trainers call our flags (HF Trainer, nanoGPT, torchrun scripts, galore-torch's
// torchrun_main.py): too far from ours for the edit distance, so named here (dashes; a name is
// compared with its underscores as dashes)
static const char* const CLI_ALIASES[][2] = {
    {"learning-rate", "lr"}, {"max-lr", "lr"}, {"lr-scheduler", "schedule"}, {"scheduler", "schedule"},
    {"lr-scheduler-type", "schedule"}, {"max-steps", "steps"}, {"num-training-steps", "steps"}, {"num-steps", "steps"},
    {"max-iters", "steps"}, {"iters", "steps"}, {"total-batch-size", "batch"}, {"batch-size", "batch"},
    {"micro-batch-size", "batch"}, {"per-device-train-batch-size", "batch"}, {"seq-len", "seq"},
    {"max-seq-len", "seq"}, {"max-length", "seq"}, {"sequence-length", "seq"}, {"context-length", "seq"},
    {"block-size", "seq"}, {"gradient-accumulation-steps", "grad-accum"}, {"gradient-accumulation", "grad-accum"},
    {"warmup-steps", "warmup"}, {"num-warmup-steps", "warmup"}, {"output-dir", "out"}, {"save-dir", "out"},
    {"save-steps", "save-every"}, {"save-interval", "save-every"}, {"eval-steps", "eval-every"}, {"eval-interval", "eval-every"},
    {"max-grad-norm", "grad-clip"}, {"clip-grad-norm", "grad-clip"}, {"gradient-clipping", "grad-clip"}, {"wd", "weight-decay"},
    {"galore-rank", "rank"}, {"proj-gap", "update-proj-gap"}, {"num-threads", "threads"}, {"resume-from-checkpoint", "resume"},
    {"model-config", "model"}, {"model-name-or-path", "init"}, {"tokenizer-name", "tokenizer"}, {"train-data", "train"},
    {"val-data", "val"}, {"optim", "optimizer"}, {"gradient-checkpointing", "recompute"}, {"activation-checkpointing", "recompute"},
};

// cli_unknown: dies on an unknown option, naming ours when it is a likely typo (str_closest) or
// another trainer's name for it (CLI_ALIASES)
__attribute__((noreturn)) static void cli_unknown(const char* name) {
    char names[2048] = "", dashed[64], best[64];
    for (int i = 0; i < CLI_NUM_OPTIONS; i++) { strcat(names, i ? "|" : ""); strcat(names, CLI_OPTIONS[i].name); }
    snprintf(dashed, sizeof dashed, "%s", name);
    for (char* c = dashed; *c; c++) if (*c == '_') *c = '-';
    for (size_t i = 0; i < sizeof CLI_ALIASES / sizeof CLI_ALIASES[0]; i++)
        if (strcmp(dashed, CLI_ALIASES[i][0]) == 0) die("unknown option '--%s'; did you mean --%s? see --help", name, CLI_ALIASES[i][1]);
    if (str_closest(names, name, best, sizeof best)) die("unknown option '--%s'; did you mean --%s? see --help", name, best);
    die("unknown option '--%s'; see --help", name);
}

static int choice_ok(const char* choices, const char* v) {
    size_t n = strlen(v);
    const char* p = choices;
    while (*p) {
        const char* bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

// cli_set: parse one value into the settings; a bad value dies naming the flag
static void cli_set(Settings* s, const OptSpec* o, const char* v) {
    char* base = (char*)s + o->offset;
    char* end = NULL;
    errno = 0;
    switch (o->type) {
        case OPT_INT: {
            long x = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || errno != 0 || x < 0 || x > 2147483647L)
                die("--%s %s: expected a non-negative integer; see --help", o->name, v);
            *(int*)base = (int)x;
            break;
        }
        case OPT_INT64: {
            long long x = strtoll(v, &end, 10);
            if (*v == '\0' || *end != '\0' || errno != 0) die("--%s %s: expected an integer; see --help", o->name, v);
            *(int64_t*)base = (int64_t)x;
            break;
        }
        case OPT_FLOAT: {
            float x = strtof(v, &end);
            if (*v == '\0' || *end != '\0' || errno != 0 || !isfinite(x)) die("--%s %s: expected a number; see --help", o->name, v);
            *(float*)base = x;
            break;
        }
        case OPT_STR:
            if (strlen(v) >= o->size) die("--%s: value longer than %zu characters", o->name, o->size - 1);
            snprintf(base, o->size, "%s", v);
            break;
        case OPT_CHOICE:
            if (!choice_ok(o->choices, v)) {
                char best[64];
                if (str_closest(o->choices, v, best, sizeof best)) die("--%s %s: did you mean %s? expected one of %s", o->name, v, best, o->choices);
                die("--%s %s: expected one of %s", o->name, v, o->choices);
            }
            snprintf(base, o->size, "%s", v);
            break;
    }
}

static void cli_defaults(Settings* s) {
    memset(s, 0, sizeof *s);
    for (int i = 0; i < CLI_NUM_OPTIONS; i++) cli_set(s, &CLI_OPTIONS[i], CLI_OPTIONS[i].def);
}

// cli_help_wrapped: text word-wrapped to 100 columns, the first line after a 32-column lhs, the
// rest indented to it (a word longer than a line gets a line of its own)
static void cli_help_wrapped(const char* lhs, const char* text) {
    const int indent = 32, width = 100;
    printf("  %-29s ", lhs);
    int col = indent;
    if ((int)strlen(lhs) > indent - 3) { printf("\n%*s", indent, ""); }
    const char* p = text;
    while (*p) {
        while (*p == ' ') p++;
        int len = 0;
        while (p[len] && p[len] != ' ') len++;
        if (len == 0) break;
        if (col > indent && col + 1 + len > width) { printf("\n%*s", indent, ""); col = indent; }
        else if (col > indent) { putchar(' '); col++; }
        printf("%.*s", len, p);
        col += len;
        p += len;
    }
    putchar('\n');
}

static void cli_help(const char* prog, const char* about) {
    printf("usage: %s [--option value ...]\n%s\n\noptions (default in brackets):\n", prog, about);
    for (int i = 0; i < CLI_NUM_OPTIONS; i++) {
        const OptSpec* o = &CLI_OPTIONS[i];
        char lhs[64], text[2048], list[512];
        size_t nl = 0; // "a, b, c": wraps where "a|b|c" cannot
        for (const char* c = o->choices ? o->choices : ""; *c && nl + 3 < sizeof list; c++) {
            if (*c == '|') { list[nl++] = ','; list[nl++] = ' '; } else list[nl++] = *c;
        }
        list[nl] = '\0';
        // a choice's values are listed in full in the text (a long list, e.g. --optimizer's, does not fit the column)
        int long_choices = o->type == OPT_CHOICE && strlen(o->choices) > 20;
        snprintf(lhs, sizeof lhs, "--%s %s", o->name, o->type == OPT_CHOICE ? (long_choices ? "NAME" : o->choices) : o->type == OPT_STR ? "S" : o->type == OPT_FLOAT ? "X" : "N");
        snprintf(text, sizeof text, "%s%s%s%s [%s]", long_choices ? "one of " : "", long_choices ? list : "", long_choices ? ". " : "",
                 o->help, o->def);
        cli_help_wrapped(lhs, text);
    }
    cli_help_wrapped("--help", "print this and exit");
}

// cli_parse: --name value or --name=value; unknown flags and missing values die. *help is set
// when --help was given (the caller prints and exits).
static void cli_parse(Settings* s, int argc, char** argv, int* help) {
    if (CLI_NUM_OPTIONS > CLI_MAX_OPTIONS) die("internal: %d options, room for %d in Settings.given", CLI_NUM_OPTIONS, CLI_MAX_OPTIONS);
    cli_defaults(s);
    *help = 0;
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { *help = 1; continue; }
        if (strncmp(a, "--", 2) != 0) {
            // a second value after --train/--val/--init: most likely an unquoted glob the shell expanded
            if (i >= 3 && (strcmp(argv[i - 2], "--train") == 0 || strcmp(argv[i - 2], "--val") == 0))
                die("unexpected argument '%s' after %s %s: the shell expanded an unquoted glob; quote it: %s 'DIR/*.bin'", a, argv[i - 2], argv[i - 1], argv[i - 2]);
            die("unexpected argument '%s'; options are --name value, see --help", a);
        }
        char name[64];
        const char* eq = strchr(a + 2, '=');
        size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        if (len >= sizeof name) die("unknown option '%s'; see --help", a);
        memcpy(name, a + 2, len); name[len] = '\0';
        const OptSpec* o = cli_find(name);
        if (o == NULL) cli_unknown(name);
        const char* v = eq ? eq + 1 : NULL;
        if (v == NULL) {
            if (i + 1 >= argc) die("--%s needs a value; see --help", name);
            v = argv[++i];
        }
        cli_set(s, o, v);
        s->given[o - CLI_OPTIONS] = 1;
    }
}

// cli_given: whether the user typed this flag (the settings' own record; cli_was_given reads argv)
static int cli_given(const Settings* s, const char* name) {
    const OptSpec* o = cli_find(name);
    return o != NULL && s->given[o - CLI_OPTIONS];
}

// cli_parse_gib: --gpu-mem's "24", "24G", "24GB", "24GiB" -> 24 (GiB: a "24GB" card has 24 GiB)
static float cli_parse_gib(const char* v) {
    char* end = NULL;
    errno = 0;
    float x = strtof(v, &end);
    if (end == v || errno != 0 || !isfinite(x) || x < 0 ||
        !(strcmp(end, "") == 0 || strcmp(end, "G") == 0 || strcmp(end, "GB") == 0 || strcmp(end, "GiB") == 0))
        die("--gpu-mem %s: expected the GPU's memory in GiB, such as 24, 24G, 24GB or 24GiB", v);
    return x;
}

// cli_was_given: whether the user typed this flag (for defaults that depend on other flags)
static int cli_was_given(int argc, char** argv, const char* name) {
    size_t n = strlen(name);
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        if (strncmp(a, "--", 2) == 0 && strncmp(a + 2, name, n) == 0 && (a[2 + n] == '\0' || a[2 + n] == '=')) return 1;
    }
    return 0;
}

// cli_parse_bytes: "5GB", "500MB", "2GiB", "123" (bytes); dies naming the flag otherwise
static int64_t cli_parse_bytes(const char* v, const char* flag) {
    char* end = NULL;
    errno = 0;
    double x = strtod(v, &end);
    static const struct { const char* unit; double mult; } units[] = {
        {"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
        {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
    };
    if (end != v && errno == 0 && x >= 0 && isfinite(x)) {
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            if (strcmp(end, units[i].unit) == 0 && x * units[i].mult < 9e18) return (int64_t)(x * units[i].mult);
        }
    }
    die("--%s %s: expected a size such as 5GB, 500MB, 2GiB or a byte count (0: never shard)", flag, v);
    return 0;
}

// lr_lambda: the GaLore scripts' schedule (galore.md): linear warmup from 0, then cosine to
// min_ratio of the peak at step N; the update at 0-indexed step s uses lambda(s)
static double lr_lambda(int s, int warmup, int N, double min_ratio, int cosine) {
    if (s < warmup) return (double)s / (double)warmup;
    if (!cosine) return 1.0;
    if (N <= warmup) return 1.0;
    double progress = (double)(s - warmup) / (double)(N - warmup);
    if (progress > 1.0) progress = 1.0;
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + cos(M_PI * progress));
}

#endif // CLI_H

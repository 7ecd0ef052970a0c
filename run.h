// run.h: a training run, the same on every engine. The CPU program (train_llama.c) and the GPU
// program (train_llama.cu) differ in where the arithmetic happens; everything else is here, once:
// settings and config resolution, the data, the step loop with its schedule, console lines and
// JSONL log, skipping non-finite steps, evaluation, samples, checkpoints and exact resume.
// An engine plugs in through the Engine table of callbacks.
#ifndef RUN_H
#define RUN_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <math.h>
#include <time.h>
#include <stdarg.h>
#include <signal.h>
#include "utils.h"
#include "rand.h"
#include "llama.h"
#include "cli.h"
#include "galore.h"
#include "dataloader.h"
#include "tokenizer.h"
#include "sample.h"
#include "hf_folder.h"
#include "checkpoint.h"
#include "dist.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void format_duration(char* buf, size_t n, double s) {
    if (s < 0 || !isfinite(s)) { snprintf(buf, n, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
    else if (t >= 60) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%lds", t);
}

// ----------------------------------------------------------------------------
// settings

// warn: one line on stderr for a flag that does nothing or is likely a mistake (the run goes on)
__attribute__((format(printf, 1, 2)))
static void run_warn(const char* fmt, ...) {
    fflush(stdout);
    fprintf(stderr, "warning: ");
    va_list ap; va_start(ap, fmt); vfprintf(stderr, fmt, ap); va_end(ap);
    fprintf(stderr, "\n");
}

// run_resolve_init: --init names a Hugging Face model folder (model.safetensors, or shards with
// model.safetensors.index.json) or one of its files; it must exist before the config.json that goes
// with it is read, so the message names what is missing
static void run_resolve_init(const Settings* s) {
    struct stat st;
    if (stat(s->init, &st) != 0)
        die("--init %s: %s; pass a model folder (model.safetensors or model.safetensors.index.json) or a .safetensors file", s->init, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        char a[PATHLEN + 48], b[PATHLEN + 48];
        snprintf(a, sizeof a, "%s/model.safetensors", s->init);
        snprintf(b, sizeof b, "%s/model.safetensors.index.json", s->init);
        if (!file_exists(a) && !file_exists(b))
            die("--init %s: a folder without model.safetensors or model.safetensors.index.json; pass a Hugging Face model folder, or the folder a run's --out wrote", s->init);
    } else if (!S_ISREG(st.st_mode)) {
        die("--init %s: not a regular file or a folder; pass a model folder or a .safetensors file", s->init);
    }
}

// ----------------------------------------------------------------------------
// the run's own settings: OUT/args.json holds the flags a run was given (as typed, the last of
// each), so that `--resume 1 --out DIR` alone continues it: the saved flags are replayed before
// the command line's, which override them (and must agree with the checkpoint, run_resume).
// Not saved: the flags that say what to do with a run, not what it is.
static const char* const RUN_ARGS_UNSAVED[] = {"resume", "overwrite", "allow-changes", "out", "memory-plan", "gpu-mem", "device", "dist-init"};
static char* run_args_text = NULL; // the JSON run_main writes into OUT/args.json (run_setup makes it)

static int run_arg_saved(const char* name) {
    for (size_t i = 0; i < sizeof RUN_ARGS_UNSAVED / sizeof RUN_ARGS_UNSAVED[0]; i++)
        if (strcmp(name, RUN_ARGS_UNSAVED[i]) == 0) return 0;
    return 1;
}

// run_args_json: {"args": {"name": "value", ...}} of the flags in argv (cli_parse accepted them)
static char* run_args_json(int argc, char** argv) {
    cJSON* root = cJSON_CreateObject();
    cJSON* a = cJSON_AddObjectToObject(root, "args");
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0) continue;
        char name[64];
        const char* eq = strchr(argv[i] + 2, '=');
        size_t len = eq ? (size_t)(eq - (argv[i] + 2)) : strlen(argv[i] + 2);
        if (len >= sizeof name) continue;
        memcpy(name, argv[i] + 2, len); name[len] = '\0';
        if (cli_find(name) == NULL) continue; // --help
        const char* v = eq ? eq + 1 : argv[++i];
        if (!run_arg_saved(name)) continue;
        cJSON_DeleteItemFromObjectCaseSensitive(a, name); // the last one counts, as in cli_parse
        cJSON_AddStringToObject(a, name, v);
    }
    char* text = cJSON_Print(root);
    cJSON_Delete(root);
    if (text == NULL) die("internal: cannot format the run's settings (out of memory?)");
    return text;
}

// run_args_replay: --resume 1 with OUT/args.json: *argv becomes argv[0], the saved flags, then the
// command line's; the settings are parsed again from it
static void run_args_replay(Settings* s, int* argc, char*** argv) {
    char path[PATHLEN + 16];
    snprintf(path, sizeof path, "%s/args.json", s->out);
    FILE* f = fopen(path, "rb");
    if (f == NULL) return; // a run of an older galore.c: the command line alone
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char* text = (char*)mallocCheck((size_t)n + 1);
    freadCheck(text, 1, (size_t)n, f, path);
    text[n] = '\0';
    fclose(f);
    cJSON* root = cJSON_Parse(text);
    free(text);
    cJSON* a = root ? cJSON_GetObjectItemCaseSensitive(root, "args") : NULL;
    if (!cJSON_IsObject(a)) die("%s: not a galore.c args.json ({\"args\": {...}}); remove it to resume with the flags given", path);
    int na = cJSON_GetArraySize(a);
    char** av = (char**)mallocCheck(sizeof(char*) * (size_t)(2 * na + *argc + 1));
    int k = 0;
    av[k++] = (*argv)[0];
    char shown[2048] = "";
    for (cJSON* it = a->child; it; it = it->next) {
        if (!cJSON_IsString(it) || cli_find(it->string) == NULL || !run_arg_saved(it->string))
            die("%s: entry \"%s\" is not a flag of this program with a string value; remove it to resume with the flags given", path, it->string);
        size_t ln = strlen(it->string) + 3;
        av[k] = (char*)mallocCheck(ln);
        snprintf(av[k++], ln, "--%s", it->string);
        av[k++] = strdup(it->valuestring);
        size_t used = strlen(shown);
        const char* v = it->valuestring;
        int quote = !v[0] || strpbrk(v, " *?[") != NULL; // as it would be typed
        if (used + 1 < sizeof shown) snprintf(shown + used, sizeof shown - used, " --%s %s%s%s", it->string, quote ? "'" : "", v, quote ? "'" : "");
    }
    cJSON_Delete(root);
    for (int i = 1; i < *argc; i++) av[k++] = (*argv)[i];
    av[k] = NULL;
    printf("resume: the run's settings from %s:%s (flags given now must agree)\n", path, na ? shown : " none");
    *argc = k; *argv = av; // kept for the program's life: the settings point into it
    int help = 0;
    cli_parse(s, *argc, *argv, &help);
}

// run_tokenizers_same: whether two tokenizer files give the same text for every id (a
// tokenizer.bin and the tokenizer.json or .model it came from are the same tokenizer); 1 also when
// either does not load (nothing to compare)
static int run_tokenizers_same(const char* a, const char* b) {
    if (strcmp(a, b) == 0) return 1;
    Tokenizer x, y;
    if (!tokenizer_init(&x, a)) return 1;
    if (!tokenizer_init(&y, b)) { tokenizer_free(&x); return 1; }
    int same = x.vocab_size == y.vocab_size && x.eos_id == y.eos_id;
    for (int i = 0; same && i < x.vocab_size; i++)
        same = x.surface_len[i] == y.surface_len[i] && memcmp(x.surface[i], y.surface[i], (size_t)x.surface_len[i]) == 0;
    tokenizer_free(&x); tokenizer_free(&y);
    return same;
}

// run_resolve_tokenizer: which tokenizer decodes samples, encodes --prompt and goes into every
// saved folder: --tokenizer when given, else the --init folder's, else (training) the one beside
// the --train shards, which dev/data writes there, else the default. The data's ids mean its
// tokenizer's pieces, so a different one beside the shards is an error naming both.
static void run_resolve_tokenizer(Settings* s, int argc, char** argv) {
    char found[PATHLEN + 32];
    const char* why = cli_was_given(argc, argv, "tokenizer") ? "--tokenizer" : NULL;
    if (!why && s->init[0]) {
        char dir[PATHLEN];
        snprintf(dir, sizeof dir, "%s", s->init);
        if (!st_is_dir(dir)) { char* slash = strrchr(dir, '/'); if (slash) *slash = '\0'; else snprintf(dir, sizeof dir, "."); }
        if (tokenizer_find(dir, found, sizeof found) && strlen(found) < PATHLEN) { snprintf(s->tokenizer, PATHLEN, "%.*s", PATHLEN - 1, found); why = "--init's folder"; }
    }
    glob_t g;
    memset(&g, 0, sizeof g);
    int matched = s->steps > 0 && glob(s->train, 0, NULL, &g) == 0 && g.gl_pathc > 0;
    char dir[PATHLEN];
    if (matched) snprintf(dir, sizeof dir, "%s", g.gl_pathv[0]);
    globfree(&g);
    if (matched) { // (no match: the dataloader names --train)
        char* slash = strrchr(dir, '/');
        if (slash) *slash = '\0'; else snprintf(dir, sizeof dir, ".");
        if (tokenizer_find(dir, found, sizeof found) && strlen(found) < PATHLEN) {
            if (!why) { snprintf(s->tokenizer, PATHLEN, "%.*s", PATHLEN - 1, found); why = "beside the --train shards"; }
            else if (!run_tokenizers_same(s->tokenizer, found))
                die("%s %s and %s beside the --train shards are different tokenizers: the shards' ids would mean other pieces; "
                    "pass the tokenizer the data was made with (or data made with this one)", strcmp(why, "--tokenizer") == 0 ? "--tokenizer" : "the --init folder's",
                    s->tokenizer, found);
        }
    }
    if (why && strcmp(why, "--tokenizer") != 0 && strcmp(s->memory_plan, "json") != 0) printf("tokenizer: %s (%s)\n", s->tokenizer, why); // json: stdout is the plan
}

// run_check_data_tokenizer: shards whose header or ids contradict the tokenizer were made with
// another one: an id the tokenizer cannot give, or 16-bit ids from a tokenizer with more pieces
static void run_check_data_tokenizer(const DataLoader* dl, const char* flag, const char* glob_, const Tokenizer* tok, const char* path) {
    if (dl->max_id >= tok->vocab_size)
        die("%s %s: token id %lld, but tokenizer %s has %d pieces: the shards were made with another tokenizer; pass the one they "
            "were made with (--tokenizer), or remake the shards with this one", flag, glob_, (long long)dl->max_id, path, tok->vocab_size);
    if (dl->shards[0].width == 2 && tok->vocab_size > 65536)
        die("%s %s: 16-bit shards, but tokenizer %s has %d pieces (its ids need 32 bits): the shards were made with another "
            "tokenizer; pass the one they were made with (--tokenizer)", flag, glob_, path, tok->vocab_size);
}

// run_save_folder: a model folder as Hugging Face and --init read it: config.json, the weights,
// generation_config.json and the run's tokenizer (hf_folder.h)
static void run_save_folder(const Settings* s, const LlamaConfig* c, const ParamTable* pt, const float* params, const char* dir, int dtype) {
    llama_save(c, pt, params, dir, dtype, s->save_shard_bytes);
    Tokenizer tok;
    int have = s->tokenizer[0] && tokenizer_init(&tok, s->tokenizer);
    char file[PATHLEN + 32];
    if (have && !tokenizer_find(s->tokenizer, file, sizeof file)) file[0] = '\0';
    hf_folder_complete(dir, s->init_config, have ? file : "", have ? &tok : NULL);
    if (have) tokenizer_free(&tok);
}

// run_set_vocab: --vocab N, or auto: the tokenizer's pieces rounded up to --vocab-multiple (a
// model pretrained from scratch on data made with its own tokenizer)
static void run_set_vocab(const Settings* s, LlamaConfig* config) {
    long v;
    if (strcmp(s->vocab, "auto") == 0) {
        Tokenizer tok;
        if (!s->tokenizer[0] || !tokenizer_init(&tok, s->tokenizer))
            die("--vocab auto: no tokenizer at '%s'; pass --tokenizer, or --train shards with their tokenizer beside them (dev/data/prepare.py writes it)", s->tokenizer);
        if (s->vocab_multiple < 1) die("--vocab-multiple %d: must be at least 1", s->vocab_multiple);
        v = ((long)tok.vocab_size + s->vocab_multiple - 1) / s->vocab_multiple * s->vocab_multiple;
        printf("vocab: %ld (%s has %d pieces%s)\n", v, s->tokenizer, tok.vocab_size, s->vocab_multiple > 1 ? ", rounded up to a multiple of --vocab-multiple" : "");
        tokenizer_free(&tok);
    } else {
        char* end;
        errno = 0;
        v = strtol(s->vocab, &end, 10);
        if (*end || end == s->vocab || errno || v < 1 || v > TOKENIZER_MAX_VOCAB) die("--vocab %s: expected auto or a vocabulary size in [1, %d]", s->vocab, TOKENIZER_MAX_VOCAB);
    }
    if (s->init[0] && v != config->V) die("--vocab %s: %ld, but --init's model has vocab_size %d; --vocab sets the size of a model trained from scratch", s->vocab, v, config->V);
    config->V = (int)v;
}

// run_setup: parse the command line, resolve the config (--model, else the config.json beside
// --init), validate, fill the optimizer config. Returns 0 when --help was printed.
static int run_setup(int argc, char** argv, const char* about, Settings* s, LlamaConfig* config, OptimConfig* oc) {
    int help = 0;
    cli_parse(s, argc, argv, &help);
    if (help) { cli_help(argv[0], about); return 0; }
    if (s->resume && s->out[0] && s->steps > 0) run_args_replay(s, &argc, &argv);
    run_args_text = run_args_json(argc, argv);
    if (s->init[0]) run_resolve_init(s);
    run_resolve_tokenizer(s, argc, argv);
    if (cli_was_given(argc, argv, "tokenizer") && s->tokenizer[0] && !file_exists(s->tokenizer))
        die("--tokenizer %s: no such file; pass a tokenizer.bin, a tokenizer.json or a folder holding one (--tokenizer \"\": samples print as token ids)", s->tokenizer);
    if (cli_was_given(argc, argv, "prompt") && !s->prompt[0]) die("--prompt: empty text; pass the text to continue (or --prompt-ids)");
    if (s->init[0] && !cli_was_given(argc, argv, "model")) {
        char path[PATHLEN + 32];
        llama_init_config_path(s->init, path, sizeof path);
        if (!file_exists(path))
            die("--init %s: no config.json %s (%s); pass --model (a built-in name or a config.json)", s->init, st_is_dir(s->init) ? "in the folder" : "beside it", path);
        llama_config_from_json(config, path);
        snprintf(s->init_config, PATHLEN, "%.*s", PATHLEN - 1, path);
    } else {
        llama_config_resolve(config, s->model);
        char w[PATHLEN + 32];
        snprintf(w, sizeof w, "%.*s/model.safetensors", PATHLEN - 1, s->model);
        if (!s->init[0] && st_is_dir(s->model) && file_exists(w))
            printf("note: --model %s takes the folder's config.json only: the weights start random; pass --init %s to start from its weights\n", s->model, s->model);
    }
    if (s->vocab[0]) run_set_vocab(s, config);
    // --log: OUT/log.jsonl unless given (there dev/plot_runs.py looks); an evaluation-only run
    // (--steps 0) logs only where told, so that it never replaces a training run's log
    if (!cli_was_given(argc, argv, "log")) {
        if (s->out[0] && s->steps > 0) snprintf(s->log, PATHLEN, "%.*s/log.jsonl", PATHLEN - 16, s->out);
        else s->log[0] = '\0';
    }
    // the saved model keeps the user's layout: sharded above --save-shard-size, bf16 if --init was
    if (strcmp(s->save_dtype, "auto") == 0)
        snprintf(s->save_dtype, sizeof s->save_dtype, "%s", s->init[0] && llama_weights_dtype(config, s->init) == ST_BF16 ? "bf16" : "f32");
    s->save_shard_bytes = cli_parse_bytes(s->save_shard_size, "save-shard-size");
    s->gpu_mem = cli_parse_gib(s->gpu_mem_text);
    if (s->gpu_mem > 0 && strcmp(s->memory_plan, "0") == 0) { // a card size is a question about the plan, not a run
        printf("note: --gpu-mem %s: printing the memory plan (--memory-plan 1) instead of training\n", s->gpu_mem_text);
        snprintf(s->memory_plan, sizeof s->memory_plan, "1");
    }
    if (s->batch < 1) die("--batch %d: must be at least 1", s->batch);
    if (s->seq < 1 || s->seq > config->maxT) die("--seq %d: must be between 1 and max_position_embeddings %d", s->seq, config->maxT);
    if (s->grad_accum < 1) die("--grad-accum %d: must be at least 1", s->grad_accum);
    if (s->shuffle > 1) die("--shuffle %d: must be 0 or 1", s->shuffle);
    if (!(s->lr >= 0.0f)) die("--lr %g: must be non-negative", s->lr);
    if (s->min_lr_ratio < 0.0f || s->min_lr_ratio > 1.0f) die("--min-lr-ratio %g: must be in [0, 1]", s->min_lr_ratio);
    if (s->beta1 < 0.0f || s->beta1 >= 1.0f || s->beta2 < 0.0f || s->beta2 >= 1.0f) die("--beta1/--beta2: must be in [0, 1)");
    if (s->per_layer > 1) die("--per-layer %d: must be 0 or 1", s->per_layer);
    if (s->resume > 1) die("--resume %d: must be 0 or 1", s->resume);
    if (s->overwrite > 1) die("--overwrite %d: must be 0 or 1", s->overwrite);
    if (s->allow_changes > 1) die("--allow-changes %d: must be 0 or 1", s->allow_changes);
    if (s->recompute > 1) die("--recompute %d: must be 0 or 1", s->recompute);
    if (s->master_weights > 1) die("--master-weights %d: must be 0 or 1", s->master_weights);
    if (s->stochastic_rounding > 1) die("--stochastic-rounding %d: must be 0 or 1", s->stochastic_rounding);
    if (s->weight_group < 1) die("--weight-group %d: must be at least 1 (q-galore's default is 128)", s->weight_group);
    if (s->weight_int8_embed > 1) die("--weight-int8-embed %d: must be 0 or 1", s->weight_int8_embed);
    if (s->weight_int8_embed && strcmp(s->weights, "int8") != 0) die("--weight-int8-embed 1 needs --weights int8");
    if (s->master_weights && strcmp(s->weights, "int8") == 0)
        die("--weights int8 with --master-weights 1: fp32 masters would keep the full-precision copy INT8 weights exist to drop; pass one of them");
    if (s->attn_fallback < 0 || s->attn_fallback > 2) die("--attn-fallback %d: must be 0, 1 or 2", s->attn_fallback);
    if (s->resume && !s->out[0]) die("--resume 1 needs --out, the folder holding the checkpoints");
    if (s->eval_tokens < 1) die("--eval-tokens %lld: must be at least 1 (pass --val \"\" for no evaluation)", (long long)s->eval_tokens);
    if (s->max_bad_steps < 1) die("--max-bad-steps %d: must be at least 1", s->max_bad_steps);
    if (!(s->galore_scale > 0.0f)) die("--galore-scale %g: must be positive (GaLore's alpha scales the update)", s->galore_scale);
    if (s->steps > 0 && (s->prompt_ids[0] || s->prompt[0] || s->dump_logits[0]))
        die("--%s: inspects a model without training; pass --steps 0 and --init (a model.safetensors, a run folder or a checkpoint folder OUT/ckpt_N)",
            s->prompt_ids[0] ? "prompt-ids" : s->prompt[0] ? "prompt" : "dump-logits");
    if (s->prompt_ids[0] && s->prompt[0]) die("--prompt and --prompt-ids: pass one of them");
    if ((s->prompt_ids[0] || s->prompt[0]) && s->sample_len < 1)
        die("--%s: needs --sample-len of at least 1 (the tokens to generate)", s->prompt[0] ? "prompt" : "prompt-ids");
    if (!(s->temperature >= 0.0f)) die("--temperature %g: must be non-negative (0: greedy)", s->temperature);
    if (!(s->top_p > 0.0f && s->top_p <= 1.0f)) die("--top-p %g: must be in (0, 1] (1: off)", s->top_p);
    // sampling from a model (--steps 0 --prompt) evaluates only when --val is given
    if (s->steps == 0 && (s->prompt_ids[0] || s->prompt[0]) && !cli_was_given(argc, argv, "val")) s->val[0] = '\0';
    if (s->dump_logits[0] && !s->val[0]) die("--dump-logits %s: needs --val, the batch whose logits it writes", s->dump_logits);
    memset(oc, 0, sizeof *oc);
    oc->kind = optim_kind_from_name(s->optimizer);
    oc->beta1 = s->beta1; oc->beta2 = s->beta2; oc->weight_decay = s->weight_decay;
    oc->eps = s->eps >= 0.0f ? s->eps : OPTIM_DEFAULT_EPS[oc->kind];
    oc->rank = s->rank; oc->update_proj_gap = s->update_proj_gap; oc->scale = s->galore_scale;
    oc->proj_type = proj_type_from_name(s->proj_type);
    oc->svd = svd_from_name(s->svd); // the parser accepted only auto|exact|randomized
    oc->projector = projector_from_name(s->proj); // svd|random, likewise
    oc->seed = (uint64_t)s->seed;
    oc->w8_group = strcmp(s->weights, "int8") == 0 ? s->weight_group : 0;
    oc->w8_embed = oc->w8_group ? s->weight_int8_embed : 0;
    if (!oc->w8_group && cli_was_given(argc, argv, "weight-group"))
        run_warn("--weight-group %d has no effect without --weights int8", s->weight_group);
    if (optim_is_galore(oc->kind) && (s->rank < 1 || s->update_proj_gap < 1))
        die("--rank %d / --update-proj-gap %d: GaLore needs both at least 1", s->rank, s->update_proj_gap);
    // --- APOLLO ---
    if (optim_is_apollo(oc->kind)) {
        int mini = oc->kind == OPTIM_APOLLO_MINI;
        if (mini) {
            if (cli_was_given(argc, argv, "rank") && s->rank != 1) run_warn("--rank %d: apollo_mini is rank 1 (pass --optimizer apollo_adamw for rank %d)", s->rank, s->rank);
            oc->rank = 1;
        }
        oc->apollo_scale = s->apollo_scale != -1.0f ? s->apollo_scale : mini ? APOLLO_MINI_SCALE : 1.0f; // -1: the package's
        if (!(oc->apollo_scale > 0.0f)) die("--apollo-scale %g: must be positive (the update is multiplied by its square root)", s->apollo_scale);
        oc->scale_type = strcmp(s->scale_type, "channel") == 0 ? APOLLO_SCALE_CHANNEL : strcmp(s->scale_type, "tensor") == 0 ? APOLLO_SCALE_TENSOR
                         : mini ? APOLLO_SCALE_TENSOR : APOLLO_SCALE_CHANNEL;
        if (oc->rank < 1 || s->update_proj_gap < 1)
            die("--rank %d / --update-proj-gap %d: APOLLO needs both at least 1", oc->rank, s->update_proj_gap);
    } else if (cli_was_given(argc, argv, "apollo-scale") || cli_was_given(argc, argv, "scale-type")) {
        run_warn("--apollo-scale / --scale-type have no effect with --optimizer %s (they apply to apollo_adamw, apollo_mini, apollo_adamw8bit)", s->optimizer);
    }
    // --- end APOLLO ---
    if (s->per_layer) {
        // the global norm is only known after the last tensor's update: no clipping
        if (cli_was_given(argc, argv, "grad-clip") && s->grad_clip > 0.0f)
            die("--grad-clip %g with --per-layer: the global gradient norm is not known until every tensor is updated; pass --grad-clip 0", s->grad_clip);
        s->grad_clip = 0.0f;
    }
    // flags that do nothing here, or likely do not do what was meant: a warning each
    static const char* const galore_flags[] = {"rank", "update-proj-gap", "proj-type", "galore-scale", "svd", "proj"};
    for (int i = 0; i < 6; i++)
        if (!optim_is_galore(oc->kind) && !(optim_is_apollo(oc->kind) && i < 3)) // APOLLO reads the first three
            if (cli_was_given(argc, argv, galore_flags[i]))
                run_warn("--%s has no effect with --optimizer %s (GaLore flags apply to galore_adamw, galore_adamw8bit, fira_adamw and fira_adamw8bit; APOLLO reads --rank, --update-proj-gap, --proj-type)", galore_flags[i], s->optimizer);
    if (oc->projector == PROJECTOR_RANDOM && cli_was_given(argc, argv, "svd"))
        run_warn("--svd %s has no effect with --proj random (the projector is a random basis, no SVD is taken)", s->svd);
    if (optim_is_galore(oc->kind)) {
        // a matrix whose min(m, n) <= rank keeps every direction: its moments are as large as
        // AdamW's, plus the projector
        ParamTable pt;
        param_table_build(&pt, config);
        int n_full = 0, n_mat = 0;
        int64_t below = -1; // a rank that projects every matrix: below the smallest min(m, n)
        for (int i = 0; i < pt.n; i++) {
            TensorLayout l;
            tensor_layout(&l, &pt.info[i], oc);
            if (l.side == SIDE_NONE) continue;
            n_mat++;
            int64_t k = l.m < l.n ? l.m : l.n;
            if (l.r == k) n_full++;
            if (below < 0 || k < below) below = k;
            // fira: the channels of R (fira_channel_cols) must be channels of G too; a forced left
            // side keeping every column (r = n < m) makes R's rows the channels, which G lacks
            if (optim_is_fira(oc->kind) && !fira_channel_cols(&l) && l.srows != l.m)
                die("--proj-type %s --rank %d with --optimizer %s: the %lld x %lld matrix %s keeps all %lld columns on the left side, "
                    "so Fira's per-channel scale has no channel of the gradient to act on; pass a smaller --rank or --proj-type std",
                    s->proj_type, s->rank, s->optimizer, (long long)l.m, (long long)l.n, pt.info[i].name, (long long)l.n);
        }
        param_table_free(&pt);
        if (n_full > 0)
            run_warn("--rank %d is at least min(m, n) of %d of the %d GaLore matrices: those keep every direction and hold more optimizer state "
                 "than AdamW (moments plus a projector); a rank below %lld projects them all", s->rank, n_full, n_mat, (long long)below);
    }
    if (s->steps > 0 && s->warmup >= s->steps)
        run_warn("--warmup %d is not shorter than --steps %d: the learning rate never reaches --lr %g", s->warmup, s->steps, s->lr);
    return 1;
}

// run_print_galore: the GaLore line of the startup banner (both engines): rank, schedule, and how
// the refreshes compute the projector (--svd), matrix by matrix as tensor_layout picks it.
// exact_name: the engine's exact SVD ("LAPACK sgesdd", "cuSOLVER gesvdj").
static void run_print_galore(const LlamaConfig* c, const OptimConfig* oc, const Settings* s, const char* exact_name) {
    if (optim_is_apollo(oc->kind)) { // --- APOLLO ---
        printf("apollo: rank %d | seeded Gaussian projection redrawn every %d steps | %s-wise scaling of the raw gradient | scale %g | "
               "norm-growth limiter %g | proj type %s%s\n", oc->rank, oc->update_proj_gap, APOLLO_SCALE_NAMES[oc->scale_type],
               oc->apollo_scale, FIRA_GAMMA, s->proj_type, s->per_layer ? " | per-layer updates" : "");
        return;
    }
    if (!optim_is_galore(oc->kind)) {
        if (s->per_layer) printf("per-layer updates\n");
        return;
    }
    ParamTable pt;
    param_table_build(&pt, c);
    int n_exact = 0, n_rand = 0;
    for (int i = 0; i < pt.n; i++) {
        TensorLayout l;
        tensor_layout(&l, &pt.info[i], oc);
        if (l.side == SIDE_NONE) continue;
        if (l.svd == SVD_RANDOMIZED) n_rand++; else n_exact++;
    }
    param_table_free(&pt);
    const char* fira = !optim_is_fira(oc->kind) ? ""
                       : optim_is_8bit(oc->kind) ? " | fira: norm-scaled residual, limiter gamma 1.01, full-gradient accumulation, 8-bit low-rank moments"
                       : " | fira: norm-scaled residual, limiter gamma 1.01, full-gradient accumulation";
    if (oc->projector == PROJECTOR_RANDOM)
        printf("galore: rank %d | projector refresh every %d steps: random orthonormal basis (GoLore, --proj random, seed %llu) for %d matrices | "
               "scale %g | proj type %s%s%s\n", oc->rank, oc->update_proj_gap, (unsigned long long)oc->seed, n_exact + n_rand, oc->scale, s->proj_type,
               fira, s->per_layer ? " | per-layer updates" : "");
    else
        printf("galore: rank %d | projector refresh every %d steps: %s for %d matrices, randomized range finder for %d (--svd %s) | "
               "scale %g | proj type %s%s%s\n", oc->rank, oc->update_proj_gap, exact_name, n_exact, n_rand, s->svd, oc->scale, s->proj_type,
               fira, s->per_layer ? " | per-layer updates" : "");
}

// run_print_dist: the data-parallel line of the startup banner (both engines); how: the engine's
// transport ("gradients summed over MPI", "NCCL ...")
static void run_print_dist(const Dist* d, const Settings* s, const OptimConfig* oc, const char* how) {
    if (!d->active) return;
    const char* what = optim_is_apollo(oc->kind) ? "full gradients (APOLLO scales the raw gradient, so it needs all of it)"
                       : !optim_is_galore(oc->kind) ? "full gradients"
                       : optim_is_fira(oc->kind) ? "full gradients (Fira's residual needs the full summed gradient)"
                       : s->grad_clip > 0.0f && !s->per_layer
                       ? "GaLore matrices as full gradients (--grad-clip needs their norm; --grad-clip 0 sends R = P^T G between refreshes)"
                       : "GaLore matrices as R = P^T G between refreshes";
    printf("data parallel: %d processes (%s) | %s | batch %d x %d per rank, %d x %d per step%s | %s\n", d->world, d->method, how, s->batch,
           s->seq, d->world * s->batch * s->grad_accum, s->seq, s->grad_accum > 1 ? " (with accumulation)" : "", what);
}

// run_append_comm: the data-parallel part of a step line, after the engine's own (buf holds it):
// the bytes all-reduced this step and what full gradients would have been
static void run_append_comm(char* buf, size_t n, double bytes, double full) {
    size_t k = strlen(buf);
    if (k + 1 >= n) return;
    snprintf(buf + k, n - k, " | all-reduce %.2f MiB (full gradients %.2f MiB: %.0f%% saved)", bytes / 1048576.0, full / 1048576.0,
             full > 0 ? 100.0 * (1.0 - bytes / full) : 0.0);
}

// ----------------------------------------------------------------------------
// the training state every engine keeps in a checkpoint, besides its own entries

typedef struct {
    int64_t step;          // training steps done
    int64_t updates;       // optimizer updates done (skipped steps do not count)
    int64_t epoch, batch;  // train loader position
    int64_t sample_rng;    // sampling RNG state (bits of the uint64)
    int64_t refreshes;     // SVDs done
    int64_t bad_in_a_row;  // consecutive skipped steps
    int64_t reserved;
} Progress;

// the settings a resumed run must share with the saved one (others, like --lr or --steps, may change)
// (the number of ranks: each rank's loader position means other samples at another world size)
#define FP_N 22
static const char* const FP_NAMES[FP_N] = {
    "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "num_hidden_layers",
    "vocab_size", "--optimizer", "--rank", "--update-proj-gap", "--proj-type", "--batch", "--seq", "--grad-accum",
    "--per-layer", "--shuffle", "--seed", "the number of processes (data-parallel ranks)", "--svd", "--proj",
    "--scale-type", // APOLLO
    "--weights int8's --weight-group (0: float weights)", "--weight-int8-embed", // INT8 weights: the codes are the weights
};

static void fingerprint(int64_t* fp, const LlamaConfig* c, const OptimConfig* oc, const Settings* s, int world) {
    int g = optim_has_projector(oc->kind), a = optim_is_apollo(oc->kind);
    int64_t v[FP_N] = {c->C, c->H, c->NH, c->NKV, c->L, c->V, oc->kind, g ? oc->rank : 0, g ? oc->update_proj_gap : 0,
                       g ? oc->proj_type : 0, s->batch, s->seq, s->grad_accum, s->per_layer, s->shuffle, s->seed, world,
                       optim_is_galore(oc->kind) ? oc->svd : 0, optim_is_galore(oc->kind) ? oc->projector : 0, a ? oc->scale_type : 0,
                       oc->w8_group, oc->w8_embed};
    memcpy(fp, v, sizeof v);
}

// the schedule and optimizer hyperparameters: a resume may change them only with --allow-changes 1
// (a changed --lr or schedule is a different run from the step on); --steps counts under the
// cosine schedule, whose shape it sets (constant: extending a run changes nothing before)
#define HP_N 12
static const char* const HP_NAMES[HP_N] = {"--lr", "--warmup", "--min-lr-ratio", "--schedule", "--steps", "--weight-decay",
                                           "--beta1", "--beta2", "--eps", "--grad-clip", "--galore-scale", "--apollo-scale"};

static void hyperparams(double* hp, const OptimConfig* oc, const Settings* s) {
    int cosine = strcmp(s->schedule, "cosine") == 0;
    double v[HP_N] = {s->lr, (double)s->warmup, cosine ? s->min_lr_ratio : 0.0, (double)cosine, cosine ? (double)s->steps : 0.0, oc->weight_decay, oc->beta1,
                      oc->beta2, oc->eps, s->grad_clip, optim_is_galore(oc->kind) ? oc->scale : 0.0,
                      optim_is_apollo(oc->kind) ? oc->apollo_scale : 0.0};
    memcpy(hp, v, sizeof v);
}

// hyperparams_diff: "--lr 0.003 -> 0.001, ..." for the entries that differ; returns how many
static int hyperparams_diff(const double* saved, const double* now, char* buf, size_t cap) {
    int n = 0;
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < HP_N && k + 1 < cap; i++) {
        if (saved[i] == now[i]) continue;
        if (i == 3) k += snprintf(buf + k, cap - k, "%s--schedule %s -> %s", n ? ", " : "", saved[i] ? "cosine" : "constant", now[i] ? "cosine" : "constant");
        else k += snprintf(buf + k, cap - k, "%s%s %g -> %g", n ? ", " : "", HP_NAMES[i], saved[i], now[i]);
        n++;
    }
    return n;
}

// log_truncate: on resume, drop the lines of steps after the checkpoint (the crashed run logged
// them, the resumed run logs them again); written atomically like everything else
static void log_truncate(const char* path, int64_t step) {
    FILE* f = fopen(path, "rb");
    if (f == NULL) return;
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%.1000s.tmp", path);
    FILE* g = fopenCheck(tmp, "wb");
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        const char* p = strstr(line, "\"step\": ");
        long long st = p ? atoll(p + 8) : 0;
        if (st <= step && strchr(line, '\n')) fputs(line, g);
    }
    fclose(f);
    file_commit(g, tmp, path);
}

// ----------------------------------------------------------------------------
// the engine interface

typedef struct {
    void* ctx;
    // one optimizer step over grad_accum micro-batches read from dl; see train_step in train_llama.c
    float (*train_step)(void* ctx, DataLoader* dl, float lr, int* inputs, int* targets, float* norm, int* skipped, int64_t* n_targets);
    // forward only: the mean loss of (B, T) inputs/targets and the number of targets it counted
    float (*forward_loss)(void* ctx, const int* inputs, const int* targets, int B, int T, int* n_valid);
    // forward only: logits (B, T, V) fp32 on the host of (B, T) inputs (--dump-logits)
    void (*forward_logits)(void* ctx, const int* inputs, int B, int T, float* logits);
    // forward only: the fp32 logits (V,) of the token after tokens[0..n) (generation)
    void (*next_logits)(void* ctx, const int* tokens, int n, float* logits);
    int max_seq;          // the longest sequence next_logits() can take
    // the weights on the host: CPU, the parameters themselves; GPU, a copy (release frees it)
    float* (*params_to_host)(void* ctx);
    void (*params_release)(void* ctx, float* host);
    void (*params_from_host)(void* ctx, const float* host); // after a resume wrote into params_to_host's buffer
    // the engine's own checkpoint entries (optimizer state), and the hooks around reading and
    // writing them (the GPU stages device buffers through the host)
    int (*state_entries)(void* ctx, StateEntry* e, int cap);
    void (*state_before_save)(void* ctx);
    void (*state_after_load)(void* ctx);
    void (*state_done)(void* ctx);
    void (*get_progress)(void* ctx, Progress* pr); // updates, refreshes
    void (*set_progress)(void* ctx, const Progress* pr);
    // the part of the console line that is the engine's: "GFLOP/s | mem" or "MFU | GPU mem"
    void (*step_extra)(void* ctx, double tokens_per_s, char* buf, size_t n);
    const char* skip_hint;  // advice when the run stops on non-finite steps
    void (*done_report)(void* ctx); // printed at the end, e.g. peak memory (may be NULL)
} Engine;

// ----------------------------------------------------------------------------
// checkpoints through an engine

// optimizer_state_entries: the optimizer's checkpoint entries, the same names on every engine so
// that either resumes the other's: which tensors have a projector, then per tensor its moments
// (fp32 m./v., or 8-bit qm./qv. with absmax_m./absmax_v.), projector (proj.) and the norm-growth
// limiter's state of Fira and APOLLO (limiter.N), following tensor_layout. The pointer tables are
// host memory (the GPU passes its staging buffers).
static int optimizer_state_entries(StateEntry* e, int cap, int n_tensors, const TensorLayout* lay, int* has_proj,
                                   float** m, float** v, uint8_t** qm, uint8_t** qv, float** absmax_m, float** absmax_v,
                                   float** proj, float** lim) {
    int n = 0;
    #define ADD(ptr, bytes, ...) do { if (n >= cap) die("internal: too many state entries"); \
        snprintf(e[n].name, STATE_NAME_LEN, __VA_ARGS__); e[n].data = (void*)(ptr); e[n].nbytes = (int64_t)(bytes); n++; } while (0)
    ADD(has_proj, sizeof(int) * n_tensors, "has_proj");
    for (int i = 0; i < n_tensors; i++) {
        const TensorLayout* l = &lay[i];
        if (l->state == STATE_8BIT) {
            ADD(qm[i], l->snumel, "qm.%d", i);
            ADD(qv[i], l->snumel, "qv.%d", i);
            ADD(absmax_m[i], sizeof(float) * l->nblocks, "absmax_m.%d", i);
            ADD(absmax_v[i], sizeof(float) * l->nblocks, "absmax_v.%d", i);
        } else {
            ADD(m[i], sizeof(float) * l->snumel, "m.%d", i);
            ADD(v[i], sizeof(float) * l->snumel, "v.%d", i);
        }
        if (l->proj_numel) ADD(proj[i], sizeof(float) * l->proj_numel, "proj.%d", i);
        if (l->limiter) ADD(lim[i], sizeof(float) * l->limiter, "limiter.%d", i); // Fira's and APOLLO's
    }
    #undef ADD
    return n;
}

#define RUN_MAX_ENTRIES 4096

// run_save: every rank calls it. Data parallel keeps a full replica on every rank, updated alike
// from the same summed gradients: the replicas are checked to be identical (a hash of the weights,
// on the host copy that rank 0 then saves), then rank 0 writes the checkpoint (the optimizer state
// is replicated too, and the loader position is the same on every rank)
static void run_save(const Engine* e, Dist* d, const Settings* s, const LlamaConfig* c, const OptimConfig* oc, const DataLoader* dl,
                     const Rng* rng, int64_t step, int64_t bad_in_a_row) {
    ParamTable pt;
    param_table_build(&pt, c);
    float* hp = e->params_to_host(e->ctx);
    if (d->world > 1) {
        uint64_t h = fnv1a(FNV_SEED, hp, sizeof(float) * pt.total);
        if (!dist_same_u64(d, h))
            die("step %lld: the weights differ between the %d ranks (rank %d hash %016llx); the replicas diverged, nothing was saved; "
                "hint: report this with the command line", (long long)step, d->world, d->rank, (unsigned long long)h);
    }
    if (d->rank != 0) { e->params_release(e->ctx, hp); param_table_free(&pt); return; }
    char tmpdir[1100], path[1200], why[512];
    checkpoint_begin(tmpdir, sizeof tmpdir, s->out, step);
    run_save_folder(s, c, &pt, hp, tmpdir, ST_F32); // f32 always: resume is exact
    e->params_release(e->ctx, hp);
    param_table_free(&pt);
    // the weights' file as written (read back: what a resume will read), hashed into the state
    uint64_t model_hash;
    if (!weights_hash(tmpdir, &model_hash, path, sizeof path, why, sizeof why)) die("%s: %s", path, why);
    double hpar[HP_N];
    hyperparams(hpar, oc, s);
    Progress pr;
    memset(&pr, 0, sizeof pr);
    e->get_progress(e->ctx, &pr);
    pr.step = step; pr.epoch = dl->epoch; pr.batch = dl->batch_in_epoch;
    pr.sample_rng = (int64_t)rng->state; pr.bad_in_a_row = bad_in_a_row;
    int64_t fp[FP_N];
    fingerprint(fp, c, oc, s, d->world);
    StateEntry* ent = (StateEntry*)mallocCheck(sizeof(StateEntry) * RUN_MAX_ENTRIES);
    snprintf(ent[0].name, STATE_NAME_LEN, "progress"); ent[0].data = &pr; ent[0].nbytes = sizeof pr;
    snprintf(ent[1].name, STATE_NAME_LEN, "fingerprint"); ent[1].data = fp; ent[1].nbytes = sizeof fp;
    snprintf(ent[2].name, STATE_NAME_LEN, "hyperparams"); ent[2].data = hpar; ent[2].nbytes = sizeof hpar;
    snprintf(ent[3].name, STATE_NAME_LEN, "model_hash"); ent[3].data = &model_hash; ent[3].nbytes = sizeof model_hash;
    e->state_before_save(e->ctx);
    int n = 4 + e->state_entries(e->ctx, ent + 4, RUN_MAX_ENTRIES - 4);
    snprintf(path, sizeof path, "%.1000s/state.bin", tmpdir);
    state_write(path, ent, n);
    e->state_done(e->ctx);
    free(ent);
    checkpoint_commit(tmpdir, s->out, step, s->keep);
}

// run_resume: restore the newest complete checkpoint of --out; returns 0 if there is none
static int run_resume(const Engine* e, const Dist* d, const Settings* s, const LlamaConfig* c, const OptimConfig* oc, DataLoader* dl,
                      Rng* rng, Progress* pr) {
    int64_t steps[4096];
    int n = checkpoint_list(s->out, steps, 4096);
    if (n == 0) return 0;
    char dir[1100], path[1200], why[512];
    checkpoint_path(dir, sizeof dir, s->out, steps[0], "");
    snprintf(path, sizeof path, "%.1000s/state.bin", dir);
    // the fingerprint first, alone, so that a settings mismatch gets a message naming the flag
    int64_t fp_now[FP_N], fp_saved[FP_N];
    fingerprint(fp_now, c, oc, s, d->world);
    StateEntry fpe;
    snprintf(fpe.name, STATE_NAME_LEN, "fingerprint"); fpe.data = fp_saved; fpe.nbytes = sizeof fp_saved;
    if (!state_read(path, &fpe, 1, why, sizeof why)) die("%s: %s; hint: remove %s to resume from an older checkpoint", path, why, dir);
    char diff[2048] = "";
    int ndiff = 0;
    for (int k = 0; k < FP_N; k++)
        if (fp_saved[k] != fp_now[k]) {
            size_t used = strlen(diff);
            if (k == 6 && fp_saved[k] >= 0 && fp_saved[k] < OPTIM_NUM_KINDS) // the optimizer by name
                snprintf(diff + used, sizeof diff - used, "%s--optimizer %s -> %s", ndiff++ ? ", " : "", OPTIM_NAMES[fp_saved[k]], OPTIM_NAMES[fp_now[k]]);
            else
                snprintf(diff + used, sizeof diff - used, "%s%s %lld -> %lld", ndiff++ ? ", " : "", FP_NAMES[k], (long long)fp_saved[k], (long long)fp_now[k]);
        }
    double hp_now[HP_N], hp_saved[HP_N];
    hyperparams(hp_now, oc, s);
    uint64_t model_hash = 0;
    StateEntry* ent = (StateEntry*)mallocCheck(sizeof(StateEntry) * RUN_MAX_ENTRIES);
    snprintf(ent[0].name, STATE_NAME_LEN, "progress"); ent[0].data = pr; ent[0].nbytes = sizeof *pr;
    snprintf(ent[1].name, STATE_NAME_LEN, "hyperparams"); ent[1].data = hp_saved; ent[1].nbytes = sizeof hp_saved;
    snprintf(ent[2].name, STATE_NAME_LEN, "model_hash"); ent[2].data = &model_hash; ent[2].nbytes = sizeof model_hash;
    int ne = 3 + e->state_entries(e->ctx, ent + 3, RUN_MAX_ENTRIES - 3);
    if (ndiff > 0) { // every disagreement at once, the hyperparameters' too (those only with --allow-changes 1)
        StateEntry he;
        snprintf(he.name, STATE_NAME_LEN, "hyperparams"); he.data = hp_saved; he.nbytes = sizeof hp_saved;
        char hdiff[1024] = "";
        if (!s->allow_changes && state_read(path, &he, 1, why, sizeof why)) hyperparams_diff(hp_saved, hp_now, hdiff, sizeof hdiff);
        die("%s: this resume changes %s%s%s: the saved run cannot continue with them; resume with the run's own settings "
            "(--resume 1 --out DIR alone: its args.json has them) on as many processes, or start a new --out", path, diff, hdiff[0] ? ", " : "", hdiff);
    }
    if (!state_read(path, ent, ne, why, sizeof why)) {
        // APOLLO's limiter state was one "limiter" entry for all tensors before it became limiter.N
        // (Fira's layout): such a state has every entry up to limiter.0 and lacks it
        if (optim_is_apollo(oc->kind) && strstr(why, "entry limiter.") && strstr(why, "is missing"))
            die("%s: an APOLLO state of an older galore.c (one \"limiter\" entry, not limiter.N per tensor): finish the run with that version, or start a new --out", path);
        die("%s: %s; hint: remove %s to resume from an older checkpoint", path, why, dir);
    }
    free(ent);
    if (pr->step != steps[0]) die("%s: holds step %lld but sits in the folder of step %lld", path, (long long)pr->step, (long long)steps[0]);
    char changes[1024];
    if (hyperparams_diff(hp_saved, hp_now, changes, sizeof changes) > 0) {
        if (!s->allow_changes)
            die("%s: this resume changes %s; pass --allow-changes 1 to go on with them, or the saved values to continue the run as it was", dir, changes);
        printf("note: resuming with changed settings: %s\n", changes);
    }
    // the weights must be the ones the state was saved with (state.bin's own hash covers this one)
    uint64_t h_now;
    if (!weights_hash(dir, &h_now, path, sizeof path, why, sizeof why)) die("%s: %s; hint: remove %s to resume from an older checkpoint", path, why, dir);
    if (h_now != model_hash)
        die("%s: hash mismatch with the one in state.bin: the weights are corrupt or were replaced; hint: remove %s to resume from an older checkpoint",
            path, dir);
    e->state_after_load(e->ctx);
    e->state_done(e->ctx);
    ParamTable pt;
    param_table_build(&pt, c);
    float* hp = e->params_to_host(e->ctx);
    llama_load_params(&pt, hp, dir); // the folder: one file or shards
    e->params_from_host(e->ctx, hp);
    e->params_release(e->ctx, hp);
    param_table_free(&pt);
    e->set_progress(e->ctx, pr);
    rng->state = (uint64_t)pr->sample_rng;
    dataloader_set_position(dl, pr->epoch, pr->batch);
    return 1;
}

// ----------------------------------------------------------------------------
// the run

// evaluate: mean loss over the first n batches of dl (reset first, so every eval sees the same
// tokens), weighted by the counted targets
// (data parallel: each rank its shard, summed over the ranks)
static float evaluate(const Engine* e, Dist* d, DataLoader* dl, int n, int* inputs, int* targets) {
    dataloader_reset(dl);
    double sum = 0.0;
    int64_t count = 0;
    for (int b = 0; b < n; b++) {
        dataloader_next_batch(dl, inputs, targets);
        int n_valid = 0;
        float loss = e->forward_loss(e->ctx, inputs, targets, dl->B, dl->T, &n_valid);
        sum += (double)loss * n_valid;
        count += n_valid;
    }
    double sc[2] = {sum, (double)count};
    dist_sum_f64(d, sc, 2);
    return sc[1] > 0 ? (float)(sc[0] / sc[1]) : 0.0f;
}

// run_print_sample: continue prompt[0..n_prompt) by up to --sample-len tokens chosen by
// --temperature / --top-k / --top-p, stopping after any of stops[0..n_stop); printed as they come, decoded
// from token `first` on (the default prompt is one end-of-text token, not printed), or as ids
static void run_print_sample(const Engine* e, const Settings* s, const Tokenizer* tok, int have_tok, const int* prompt, int n_prompt,
                             int first, const int* stops, int n_stop, int V, Rng* rng) {
    if (s->sample_len <= 0) return;
    if (n_prompt >= e->max_seq) die("the prompt has %d tokens: at least --seq %d, no room to sample; pass a larger --seq", n_prompt, e->max_seq);
    int total = n_prompt + s->sample_len < e->max_seq ? n_prompt + s->sample_len : e->max_seq;
    int* tokens = (int*)mallocCheck(sizeof(int) * (size_t)e->max_seq);
    float* logits = (float*)mallocCheck(sizeof(float) * (size_t)V);
    memcpy(tokens, prompt, sizeof(int) * (size_t)n_prompt);
    SampleOpts so = {s->temperature, s->top_k, s->top_p};
    TokStream ts;
    tokenizer_stream_start(&ts, stdout);
    printf(have_tok ? "sample: " : "sample ids:");
    for (int i = first; i < n_prompt; i++) {
        if (have_tok) tokenizer_stream_token(tok, &ts, tokens[i]);
        else printf(" %d", tokens[i]);
    }
    for (int n = n_prompt; n < total; n++) {
        e->next_logits(e->ctx, tokens, n, logits);
        tokens[n] = sample_next(logits, V, &so, rng);
        if (have_tok) tokenizer_stream_token(tok, &ts, tokens[n]);
        else { printf(" %d", tokens[n]); fflush(stdout); }
        int stop = 0;
        for (int k = 0; k < n_stop; k++) stop |= tokens[n] == stops[k];
        if (stop) break;
    }
    tokenizer_stream_end(&ts);
    printf("\n");
    free(tokens); free(logits);
}

// ----------------------------------------------------------------------------
// interrupts: SIGINT (Ctrl-C) and SIGTERM (Slurm's preemption, kill) finish the current step,
// save a checkpoint and exit non-zero; a second signal exits at once. The handler only sets a
// flag (all it may safely do); the loop reads it after each step.

static volatile sig_atomic_t run_signal = 0;

static void run_on_signal(int sig) {
    if (run_signal) {
        static const char msg[] = "\nsecond signal: exiting at once (the checkpoints written so far are intact)\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(128 + sig);
    }
    run_signal = sig;
}

static void run_catch_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = run_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; // reads and writes in flight go on
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) die("cannot install the SIGINT/SIGTERM handler: %s", strerror(errno));
}

// run_stop_requested: whether any rank got a signal. Data parallel: a scalar all-reduce, so that
// every rank stops after the same step and the checkpoint is one consistent state.
static int run_stop_requested(Dist* d) {
    double x = run_signal ? 1.0 : 0.0;
    dist_sum_f64(d, &x, 1); // one process: nothing to exchange
    return x > 0.0;
}

// ----------------------------------------------------------------------------
// the run folder

// run_prepare_out: before anything is computed: --out is a folder this process can write
// (created if missing), and a run never lands on another run: a fresh
// start (no --resume 1, or nothing to resume) into a folder holding checkpoints or a model is
// refused unless --overwrite 1, which deletes them first (a resume would otherwise mix the runs).
// (The log is checked by run_prepare_log.)
// Returns 1 when a resume has nothing to do: its newest checkpoint is at --steps or past it.
static int run_prepare_out(const Settings* s, const Dist* d) {
    struct stat st;
    if (stat(s->out, &st) == 0 && !S_ISDIR(st.st_mode)) die("--out %s: exists and is not a folder; pass a folder (it is created when missing)", s->out);
    ensure_dir(s->out);
    char probe[PATHLEN + 64];
    snprintf(probe, sizeof probe, "%s/.write_test.%d", s->out, (int)getpid());
    FILE* f = fopen(probe, "wb");
    if (f == NULL) die("--out %s: cannot write there: %s; pass a folder you can write to", s->out, strerror(errno));
    fclose(f);
    unlink(probe);
    int64_t steps[4096];
    int n = checkpoint_list(s->out, steps, 4096);
    char model[PATHLEN + 32], index[PATHLEN + 48];
    snprintf(model, sizeof model, "%s/model.safetensors", s->out);
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", s->out);
    int has_model = file_exists(model) || file_exists(index); // one file, or shards + index
    if (s->resume && n > 0 && steps[0] >= s->steps && (steps[0] > s->steps || has_model)) {
        printf("nothing to do: %s/ckpt_%08lld is at step %lld and --steps is %d; pass a larger --steps to train on\n", s->out,
               (long long)steps[0], (long long)steps[0], s->steps);
        return 1;
    }
    if ((!s->resume || n == 0) && (n > 0 || has_model)) {
        char what[256];
        if (n > 0) snprintf(what, sizeof what, "ckpt_%08lld%s%s", (long long)steps[0], n > 1 ? " and older checkpoints" : "", has_model ? ", model.safetensors" : "");
        else snprintf(what, sizeof what, "model.safetensors");
        if (!s->overwrite)
            die("--out %s holds another run (%s)%s; pass --overwrite 1 to replace it, or another --out", s->out, what,
                n > 0 ? ": pass --resume 1 to continue it" : " and no checkpoint to resume");
        if (d->rank == 0) {
            for (int i = 0; i < n; i++) {
                char dir[1100];
                checkpoint_path(dir, sizeof dir, s->out, steps[i], "");
                checkpoint_retire(s->out, dir);
            }
            if (has_model) st_remove_stale(s->out, 0, 0); // the one file, or the index and every shard
            if (file_exists(model) || file_exists(index)) die("%s: cannot remove the previous model: %s", s->out, strerror(errno));
            printf("--overwrite 1: removed the previous run's %s from %s\n", what, s->out);
        }
    }
    return 0;
}

// run_prepare_log: the log's folder is created and the file can be written, before the first step
static void run_prepare_log(const char* log) {
    char dir[PATHLEN];
    snprintf(dir, sizeof dir, "%s", log);
    char* slash = strrchr(dir, '/');
    if (slash && slash != dir) { *slash = '\0'; ensure_dir(dir); }
    struct stat st;
    if (stat(log, &st) == 0 && S_ISDIR(st.st_mode)) die("--log %s: is a folder; pass a file path", log);
    FILE* g = fopen(log, "a");
    if (g == NULL) die("--log %s: cannot write: %s", log, strerror(errno));
    fclose(g);
}

// run_dump_logits: the fp32 logits of the first batch of dl (B x T x V, as (B*T, V)) and its
// input ids (B, T; stored as F32, exact below 2^24) into a safetensors file
static void run_dump_logits(const Engine* e, const Settings* s, DataLoader* dl, int V, int* inputs, int* targets) {
    dataloader_reset(dl);
    dataloader_next_batch(dl, inputs, targets);
    int B = dl->B, T = dl->T;
    size_t BT = (size_t)B * T;
    float* logits = (float*)mallocCheck(sizeof(float) * BT * (size_t)V);
    float* ids = (float*)mallocCheck(sizeof(float) * BT);
    e->forward_logits(e->ctx, inputs, B, T, logits);
    for (size_t i = 0; i < BT; i++) ids[i] = (float)inputs[i];
    SafeTensorOut t[2] = {{"input_ids", 2, {B, T}, ids}, {"logits", 2, {(int64_t)BT, V}, logits}};
    safetensors_write(s->dump_logits, t, 2, ST_F32);
    printf("wrote %s: input_ids (%d, %d) and logits (%d * %d, %d) of the first val batch\n", s->dump_logits, B, T, B, T, V);
    free(logits); free(ids);
}

// run_parse_ids: "1 2 3" or "1,2,3" -> ids (< V), n returned; dies naming --prompt-ids
static int run_parse_ids(const char* text, int V, int* ids, int cap) {
    int n = 0;
    const char* p = text;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t') p++;
        if (!*p) break;
        char* end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v >= V) die("--prompt-ids %s: '%.20s' is not a token id in [0, vocab_size %d)", text, p, V);
        if (n >= cap) die("--prompt-ids: more than %d ids; pass a larger --seq", cap - 1);
        ids[n++] = (int)v;
        p = end;
    }
    if (n == 0) die("--prompt-ids %s: no ids", text);
    return n;
}

// run_encode_prompt: --prompt text -> the tokenizer's prefix (bos of a tokenizer.json) + its
// ids (malloc'd in *out), their count returned; dies with one line where the ids would be wrong
static int run_encode_prompt(const Settings* s, const Tokenizer* tok, int V, int max_seq, int** out) {
    if (tok == NULL)
        die("--prompt: no tokenizer at '%s' to encode the text; pass --tokenizer (a tokenizer.bin, a tokenizer.json or a folder holding one), or --prompt-ids", s->tokenizer);
    // a tokenizer smaller than the model's vocabulary is legal (a 4,096-piece one feeds llama_60m's
    // 32,000 rows; the extra rows are never read): only ids >= V cannot be fed
    if (tok->vocab_size > V)
        die("--prompt: --tokenizer %s has %d pieces but the model's vocabulary is %d: the prompt could hold ids the model has no "
            "embedding for; pass the tokenizer the model was trained with (or --prompt-ids)", s->tokenizer, tok->vocab_size, V);
    if (!tok->can_encode) die("--prompt: --tokenizer %s %s", s->tokenizer, tok->encode_why);
    int* text_ids;
    int n = tokenizer_encode(tok, s->prompt, &text_ids);
    const int* pre;
    int np = tokenizer_prefix_ids(tok, &pre);
    if (n + np == 0) die("--prompt \"%s\": encodes to no tokens", s->prompt);
    if (n + np >= max_seq) die("--prompt: %d tokens, at least --seq %d: no room to sample; pass a larger --seq or a shorter prompt", n + np, max_seq);
    int* ids = (int*)mallocCheck(sizeof(int) * (size_t)(n + np));
    memcpy(ids, pre, sizeof(int) * (size_t)np);
    if (n) memcpy(ids + np, text_ids, sizeof(int) * (size_t)n);
    free(text_ids);
    printf("prompt: %d tokens:", n + np);
    for (int i = 0; i < n + np; i++) printf(" %d", ids[i]);
    printf("\n");
    *out = ids;
    return n + np;
}

// run_main: data, optional eval-only, resume, the step loop, the final export. Data parallel: every
// rank runs this; each reads its shard of the data, rank 0 prints (the others' stdout is off),
// logs, samples and writes checkpoints; collectives (eval sums, the replica check) run on all.
static int run_main(const Engine* e, Dist* d, const Settings* s, const LlamaConfig* config, const OptimConfig* oc) {
    int B = s->batch, T = s->seq;
    if (s->steps > 0 && s->out[0] && run_prepare_out(s, d)) return 0;
    if (s->steps > 0 && s->log[0] && d->rank == 0) run_prepare_log(s->log);
    DataLoader train, val;
    int have_val = s->val[0] != '\0';
    int* inputs = (int*)mallocCheck(sizeof(int) * (size_t)B * T);
    int* targets = (int*)mallocCheck(sizeof(int) * (size_t)B * T);
    if (s->steps > 0) {
        dataloader_open(&train, "--train", s->train, B, T, s->shuffle, (uint64_t)s->seed, d->rank, d->world, config->V);
        printf("train: %s | %d shards | %lld tokens | %lld batches of %d x %d per epoch%s\n", s->train, train.num_shards,
               (long long)train.num_tokens, (long long)train.batches_per_epoch, B, T, d->world > 1 ? " on each rank" : "");
    }
    int eval_batches = 0;
    if (have_val) {
        dataloader_open(&val, "--val", s->val, B, T, 0, 0, d->rank, d->world, config->V);
        int64_t want = (s->eval_tokens + (int64_t)B * T - 1) / ((int64_t)B * T);
        want = (want + d->world - 1) / d->world; // batches per rank
        eval_batches = (int)(want < val.batches_per_epoch ? want : val.batches_per_epoch);
        printf("val: %s | %lld tokens | %d batches (%lld tokens) per eval\n", s->val, (long long)val.num_tokens, eval_batches * d->world,
               (long long)eval_batches * d->world * B * T);
    }
    Tokenizer tok;
    int have_tok = s->tokenizer[0] ? tokenizer_init(&tok, s->tokenizer) : 0;
    if (!have_tok && s->sample_len > 0) printf("note: no tokenizer at '%s': samples are printed as ids\n", s->tokenizer);
    if (have_tok && s->steps > 0) run_check_data_tokenizer(&train, "--train", s->train, &tok, s->tokenizer);
    if (have_tok && have_val) run_check_data_tokenizer(&val, "--val", s->val, &tok, s->tokenizer);
    if (have_tok && tok.vocab_size > config->V)
        run_warn("--tokenizer %s has %d pieces but the model's vocabulary is %d: it is not the tokenizer of this model's data; "
                 "pass the tokenizer the data was made with", s->tokenizer, tok.vocab_size, config->V);
    int eos = have_tok && tok.eos_id >= 0 ? tok.eos_id : 0;
    // generation ends after the tokenizer's eos, or an eos of --init's generation_config.json
    int stops[8], n_stop = have_tok && tok.eos_id >= 0;
    stops[0] = have_tok ? tok.eos_id : -1;
    n_stop += hf_eos_ids(s->init_config, stops + n_stop, 8 - n_stop);
    Rng sample_rng; rng_init(&sample_rng, (uint64_t)s->seed ^ 0x5A5A5A5AULL);

    if (s->steps == 0) {
        if (!have_val && !s->prompt_ids[0] && !s->prompt[0]) die("--steps 0 evaluates only, and needs --val (or --prompt / --prompt-ids, to sample)");
        if (have_val) {
            float vl = evaluate(e, d, &val, eval_batches, inputs, targets);
            printf("val loss %.7f | ppl %.4f | %d batches\n", vl, exp(vl), eval_batches * d->world);
            if (s->log[0] && d->rank == 0) {
                FILE* logf = fopenCheck(s->log, "w");
                char f1[32];
                fprintf(logf, "{\"step\": 0, \"val_loss\": %s, \"val_ppl\": %.9g}\n", float_str(f1, sizeof f1, vl), exp(vl));
                fclose(logf);
            }
            if (s->dump_logits[0] && d->rank == 0) run_dump_logits(e, s, &val, config->V, inputs, targets);
            dataloader_free(&val);
        }
        if (s->prompt_ids[0] && d->rank == 0) {
            int* ids = (int*)mallocCheck(sizeof(int) * (size_t)e->max_seq);
            int n = run_parse_ids(s->prompt_ids, config->V, ids, e->max_seq);
            run_print_sample(e, s, &tok, have_tok, ids, n, 0, stops, n_stop, config->V, &sample_rng);
            free(ids);
        }
        if (s->prompt[0] && d->rank == 0) {
            int* ids;
            int n = run_encode_prompt(s, have_tok ? &tok : NULL, config->V, e->max_seq, &ids);
            run_print_sample(e, s, &tok, have_tok, ids, n, 0, stops, n_stop, config->V, &sample_rng);
            free(ids);
        }
        if (have_tok) tokenizer_free(&tok);
        free(inputs); free(targets);
        return 0;
    }

    int start = 0;
    int64_t bad_in_a_row = 0;
    if (s->resume) {
        Progress pr;
        if (run_resume(e, d, s, config, oc, &train, &sample_rng, &pr)) {
            start = (int)pr.step;
            bad_in_a_row = pr.bad_in_a_row;
            printf("resumed from %s/ckpt_%08d: step %d, %lld updates, loader epoch %lld batch %lld\n", s->out, start, start,
                   (long long)pr.updates, (long long)pr.epoch, (long long)pr.batch);
        } else {
            printf("resume: no complete checkpoint in %s, starting fresh\n", s->out);
        }
    }
    if (s->out[0] && d->rank == 0) { // the settings this run goes on with (a resume: the saved ones and the new)
        char path[PATHLEN + 16], tmpp[PATHLEN + 32];
        snprintf(path, sizeof path, "%s/args.json", s->out);
        snprintf(tmpp, sizeof tmpp, "%s.tmp", path);
        FILE* f = fopenCheck(tmpp, "wb");
        fprintf(f, "%s\n", run_args_text);
        file_commit(f, tmpp, path);
    }
    FILE* logf = NULL;
    if (s->log[0] && d->rank == 0) {
        if (start > 0) log_truncate(s->log, start);
        logf = fopenCheck(s->log, start > 0 ? "a" : "w");
        // what the run is, first (a line without "step": readers of the steps skip it, and a
        // resume keeps it): dev/plot_runs.py labels the run by it
        if (start == 0) {
            int g = optim_has_projector(oc->kind);
            cJSON* root = cJSON_CreateObject();
            cJSON* r = cJSON_AddObjectToObject(root, "run");
            cJSON_AddStringToObject(r, "model", config->name);
            cJSON_AddStringToObject(r, "optimizer", s->optimizer);
            const char* keys[7] = {"rank", "update_proj_gap", "batch", "seq", "grad_accum", "processes", "per_layer"};
            int vals[7] = {g ? oc->rank : 0, g ? s->update_proj_gap : 0, B, T, s->grad_accum, d->world, s->per_layer};
            for (int i = 0; i < 7; i++) cJSON_AddNumberToObject(r, keys[i], vals[i]);
            char lrs[32]; // as typed (a float's shortest form), not the double the float widens to
            cJSON_AddRawToObject(r, "lr", float_str(lrs, sizeof lrs, s->lr));
            cJSON_AddStringToObject(r, "tokenizer", s->tokenizer); // which one the run used (a copy goes into every saved folder)
            char* text = cJSON_PrintUnformatted(root);
            if (text == NULL) die("%s: cannot format the run line (out of memory?)", s->log);
            fprintf(logf, "%s\n", text);
            cJSON_free(text);
            cJSON_Delete(root);
        }
    }
    run_catch_signals();
    double t_start = now_seconds(), t_train = 0.0;
    int timed = 0;
    char f1[32], f2[32], f3[32]; // the log's floats (float_str)
    for (int step = start; step < s->steps; step++) {
        double t0 = now_seconds();
        float norm = 0.0f;
        int skipped = 0;
        int64_t n_targets = 0;
        float lr = (float)(s->lr * lr_lambda(step, s->warmup, s->steps, s->min_lr_ratio, strcmp(s->schedule, "cosine") == 0));
        float loss = e->train_step(e->ctx, &train, lr, inputs, targets, &norm, &skipped, &n_targets);
        double dt = now_seconds() - t0;
        if (step > start || s->steps - start == 1) { t_train += dt; timed++; } // the first step warms caches
        double tok_s = n_targets / dt; // ignored (padding) targets do not count
        double eta = (s->steps - step - 1) * (t_train / (timed > 0 ? timed : 1));
        if (skipped) {
            bad_in_a_row++;
            printf("step %5d/%d | loss %f | norm %f | non-finite: update skipped (%lld in a row, --max-bad-steps %d)\n", step + 1,
                   s->steps, loss, norm, (long long)bad_in_a_row, s->max_bad_steps);
            if (logf) { fprintf(logf, "{\"step\": %d, \"skipped\": true, \"loss\": null, \"lr\": %s}\n", step + 1, float_str(f1, sizeof f1, lr)); fflush(logf); }
            if (bad_in_a_row >= s->max_bad_steps)
                die("step %d: %lld steps in a row had a non-finite loss or gradient; stopping (the last checkpoint is intact); hint: %s",
                    step + 1, (long long)bad_in_a_row, e->skip_hint);
        } else {
            bad_in_a_row = 0;
            if ((step + 1) % s->print_every == 0 || step == start || step + 1 == s->steps) {
                char etab[96], extra[160];
                format_duration(etab, sizeof etab, eta);
                // the first step (caches, the first projector refresh) is left out of the ETA: none yet
                if (timed == 0) snprintf(etab, sizeof etab, "? until step %d (the first step is not timed)", start + 2);
                e->step_extra(e->ctx, tok_s, extra, sizeof extra);
                printf("step %5d/%d | loss %.6f | norm %.4f | lr %.3e | %.1f ms | %.0f tok/s | %s | ETA %s\n",
                       step + 1, s->steps, loss, norm, lr, dt * 1e3, tok_s, extra, etab);
                fflush(stdout);
            }
            if (logf) {
                fprintf(logf, "{\"step\": %d, \"loss\": %s, \"grad_norm\": %s, \"lr\": %s, \"ms\": %.3f, \"tokens_per_s\": %.3f}\n",
                        step + 1, float_str(f1, sizeof f1, loss), float_str(f2, sizeof f2, norm), float_str(f3, sizeof f3, lr), dt * 1e3, tok_s);
                fflush(logf);
            }
        }
        int last = step + 1 == s->steps;
        if (have_val && ((s->eval_every > 0 && (step + 1) % s->eval_every == 0) || last)) {
            float vl = evaluate(e, d, &val, eval_batches, inputs, targets);
            printf("eval step %d | val loss %.6f | ppl %.3f\n", step + 1, vl, exp(vl));
            if (logf) { fprintf(logf, "{\"step\": %d, \"val_loss\": %s, \"val_ppl\": %.9g}\n", step + 1, float_str(f1, sizeof f1, vl), exp(vl)); fflush(logf); }
        }
        if (s->sample_every > 0 && (step + 1) % s->sample_every == 0 && !last && d->rank == 0)
            run_print_sample(e, s, &tok, have_tok, &eos, 1, 1, stops, n_stop, config->V, &sample_rng);
        int saved = s->out[0] && ((s->save_every > 0 && (step + 1) % s->save_every == 0) || last);
        if (saved) {
            run_save(e, d, s, config, oc, &train, &sample_rng, step + 1, bad_in_a_row);
            printf("saved checkpoint %s/ckpt_%08d (step %d)\n", s->out, step + 1, step + 1);
        }
        // an interrupt during the last step lets the run finish: nothing is left to resume
        if (!last && run_stop_requested(d)) {
            if (s->out[0] && !saved) {
                run_save(e, d, s, config, oc, &train, &sample_rng, step + 1, bad_in_a_row);
                printf("saved checkpoint %s/ckpt_%08d (step %d)\n", s->out, step + 1, step + 1);
            }
            fflush(stdout);
            if (s->out[0]) fprintf(stderr, "interrupted at step %d; rerun with --resume 1 --out %s to continue from %s/ckpt_%08d (its args.json holds the flags)\n",
                                   step + 1, s->out, s->out, step + 1);
            else fprintf(stderr, "interrupted at step %d; nothing was saved (--out \"\")\n", step + 1);
            if (logf) fclose(logf);
            dist_barrier(d); // no rank leaves (and has its launcher kill the rest) before rank 0 has saved
            dist_finalize(d);
            exit(128 + (run_signal ? run_signal : SIGTERM)); // a rank told by the others: as if it got SIGTERM
        }
    }
    if (s->out[0] && d->rank == 0) {
        ParamTable pt;
        param_table_build(&pt, config);
        float* hp = e->params_to_host(e->ctx);
        run_save_folder(s, config, &pt, hp, s->out, strcmp(s->save_dtype, "bf16") == 0 ? ST_BF16 : ST_F32);
        e->params_release(e->ctx, hp);
        param_table_free(&pt);
        printf("saved %s/config.json and the weights (%s, one file up to --save-shard-size %s, else shards with %s)\n", s->out,
               s->save_dtype, s->save_shard_size, ST_INDEX_NAME);
    }
    if (d->rank == 0) run_print_sample(e, s, &tok, have_tok, &eos, 1, 1, stops, n_stop, config->V, &sample_rng);
    printf("done: %d steps in %.1f s\n", s->steps - start, now_seconds() - t_start);
    if (e->done_report) e->done_report(e->ctx);
    if (logf) fclose(logf);
    if (have_tok) tokenizer_free(&tok);
    dataloader_free(&train);
    if (have_val) dataloader_free(&val);
    free(inputs); free(targets);
    return 0;
}

#endif // RUN_H

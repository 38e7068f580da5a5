/* cmd_sample.c — celo sample: text from a checkpoint of a character model of a file's task (runtime/sample.h). */
#include "cli.h"

#include "../runtime/sample.h"
#include "diag.h"
#include "pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char sample_usage[] =
    "usage: celo sample F.celo --checkpoint FILE [--task NAME] [--prompt TEXT] [--tokens N] [--samples N]\n"
    "                   [--temperature T] [--top-k K] [--seed S] [--quiet]";

/* an integer option in [lo, hi] into *out; 0, or 1 after the error */
static int int_opt(const char *name, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (s && (end == s || *end || v < lo || v > hi))
        return cli_fail("sample: %s '%s' is not an integer in [%lld, %lld]", name, s, lo, hi);
    if (s)
        *out = v;
    return 0;
}

int cmd_sample(int argc, char **argv)
{
    const char *file = NULL, *ckpt = NULL, *tokens = NULL, *samples = NULL, *temp = NULL, *topk = NULL, *seed = NULL;
    celo_sample_opts o = {.temperature = 1, .seed = 1};
    const cli_opt opts[] = {{"--checkpoint", &ckpt, NULL}, {"--task", &o.task, NULL},
                            {"--prompt", &o.prompt, NULL}, {"--tokens", &tokens, NULL},
                            {"--samples", &samples, NULL}, {"--temperature", &temp, NULL},
                            {"--top-k", &topk, NULL},      {"--seed", &seed, NULL},
                            {"--quiet", NULL, &o.quiet},   {NULL, NULL, NULL}};
    if (cli_parse_args("sample", argc, argv, opts, NULL, NULL, &file))
        return 1;
    if (!file || !ckpt)
        return cli_fail("%s", sample_usage);
    long long n = 0, s = 0, k = 0, sd = 1;
    if (int_opt("--tokens", tokens, 1, 1 << 20, &n) || int_opt("--samples", samples, 1, 1024, &s) ||
        int_opt("--top-k", topk, 0, 1 << 20, &k) || int_opt("--seed", seed, 0, (1LL << 62), &sd))
        return 1;
    o.tokens = (int)n, o.samples = (int)s, o.top_k = (int)k, o.seed = (uint64_t)sd;
    if (temp) {
        char *end;
        o.temperature = strtod(temp, &end);
        if (end == temp || *end || !(o.temperature >= 0 && o.temperature <= 1e6))
            return cli_fail("sample: --temperature '%s' is not a number >= 0 (0: the most likely character)", temp);
    }
    module m;
    celo_plan plan;
    memset(&plan, 0, sizeof plan);
    int rc = 1;
    char err[1024];
    if (module_load(&m, file, cli_stdlib_dir()) || diag_count || pipeline_build(&m, &plan) || diag_count) {
        if (diag_count)
            fprintf(stderr, "%d error%s\n", diag_count, diag_count == 1 ? "" : "s");
        goto done;
    }
    if (celo_sample(&plan, ckpt, &o, stdout, err, sizeof err))
        cli_fail("%s", err);
    else
        rc = 0;
done:
    celo_plan_free(&plan);
    module_free(&m);
    return rc;
}

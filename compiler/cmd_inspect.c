/* cmd_inspect.c — the commands that look at rules and files: check, emit, rules, theta. */
#include "cli.h"

#include "../runtime/backend.h"
#include "backend.h"
#include "diag.h"
#include "opencl.h"
#include "pipeline.h"
#include "rules.h"
#include "theta.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- commands ---- */
/* Whether an optimizer of the module uses transform t in its chain(…). */
static int transform_used(const module *m, const def *t)
{
    for (const def *d = m->defs; d; d = d->next)
        if (d->kind == DEF_OPTIMIZER)
            for (const arg *a = d->chain; a; a = a->next)
                if (a->value && a->value->name && !strcmp(a->value->name, t->name))
                    return 1;
    return 0;
}

int cmd_check(int argc, char **argv)
{
    if (argc != 1)
        return cli_fail("%s", "usage: celo check FILE.celo");
    module m;
    int nerr = module_load(&m, argv[0], cli_stdlib_dir());
    int nrules = 0, nblocks = 0;
    if (!nerr) {
        for (def *d = m.defs; d; d = d->next) {
            if (d->kind == DEF_SCHEDULE && !strcmp(d->file->path, argv[0])) {
                if (!module_schedule_check(&m, d))
                    fprintf(stderr, "%s: schedule %s\n", argv[0], d->name);
                nrules++;
            }
            if (d->kind == DEF_MODEL && !strcmp(d->file->path, argv[0])) {
                if (!module_model_check(&m, d))
                    fprintf(stderr, "%s: model %s\n", argv[0], d->name);
                nrules++;
            }
            if ((d->kind != DEF_OPTIMIZER && d->kind != DEF_TRANSFORM) || strcmp(d->file->path, argv[0]))
                continue;
            if (d->kind == DEF_TRANSFORM && transform_used(&m, d))
                continue; /* checked where a chain uses it, which reports its errors with that use */
            /* an optimizer's lowering is kept for the blocks below (module_rule); a transform's is its own */
            rule *t = d->kind == DEF_TRANSFORM ? rule_compile_transform(&m, d) : NULL;
            const rule *r = t ? t : d->kind == DEF_OPTIMIZER ? module_rule(&m, d) : NULL;
            if (r && r->nvariants) /* tensor classes: each variant */
                for (int v = 0; v < r->nvariants; v++) {
                    const celo_program *V = &r->variants[v]->prog;
                    fprintf(stderr, "%s: %s: class %s: %d pass%s, %d state slot%s\n", argv[0], r->prog.name, V->cls,
                            V->npass, V->npass == 1 ? "" : "es", V->nstate, V->nstate == 1 ? "" : "s");
                }
            else if (r)
                fprintf(stderr, "%s: %s: %d pass%s, %d state slot%s\n", argv[0], r->prog.name, r->prog.npass,
                        r->prog.npass == 1 ? "" : "es", r->prog.nstate, r->prog.nstate == 1 ? "" : "s");
            nrules++;
            rule_free(t);
        }
        for (def *d = m.defs; d; d = d->next)
            nblocks += d->kind == DEF_BLOCK && module_is_user(&m, d);
        if (nblocks) {
            celo_plan plan;
            if (pipeline_build(&m, &plan) == 0)
                fprintf(stderr, "%s: %d task%s, %d run%s\n", argv[0], plan.ntasks, plan.ntasks == 1 ? "" : "s",
                        plan.nruns, plan.nruns == 1 ? "" : "s");
            celo_plan_free(&plan);
        }
    }
    module_free(&m);
    if (diag_count) {
        fprintf(stderr, "%d error%s\n", diag_count, diag_count == 1 ? "" : "s");
        return 1;
    }
    if (!nrules && !nblocks)
        fprintf(stderr, "%s: no rules\n", argv[0]);
    return 0;
}

static void dump_expr(const expr *e, FILE *out)
{
    static const char *ops[] = {"+", "-", "*", "/", "^", "neg", "<", "<=", ">", ">=", "==", "!=", "and", "or", "not"};
    switch (e->kind) {
    case EX_NUM: fprintf(out, "%.9g", e->num); break;
    case EX_NAME: fprintf(out, "%s", e->name); break;
    case EX_INDEX:
        fprintf(out, "%s[", e->name);
        dump_expr(e->b, out);
        fputc(']', out);
        break;
    case EX_UNARY:
        fprintf(out, "(%s ", ops[e->op]);
        dump_expr(e->a, out);
        fputc(')', out);
        break;
    case EX_BINARY:
        fprintf(out, "(%s ", ops[e->op]);
        dump_expr(e->a, out);
        fputc(' ', out);
        dump_expr(e->b, out);
        fputc(')', out);
        break;
    case EX_CALL:
        fprintf(out, "(call %s", e->name);
        if (e->str)
            fprintf(out, " \"%s\"", e->str);
        for (arg *a = e->args; a; a = a->next) {
            fputc(' ', out);
            if (a->name)
                fprintf(out, "%s=", a->name);
            dump_expr(a->value, out);
        }
        fputc(')', out);
        break;
    }
}

static void dump_stmts(const stmt *s, int ind, FILE *out)
{
    for (; s; s = s->next) {
        fprintf(out, "%*s", ind, "");
        switch (s->kind) {
        case ST_STATE:
            fprintf(out, "state");
            for (statevar *v = s->vars; v; v = v->next) {
                fprintf(out, " %s", v->name);
                if (v->size)
                    fprintf(out, "[%d]", v->size);
                fputc('=', out);
                dump_expr(v->init, out);
            }
            fputc('\n', out);
            break;
        case ST_ASSIGN:
            fprintf(out, "%s", s->target);
            if (s->index) {
                fputc('[', out);
                dump_expr(s->index, out);
                fputc(']', out);
            }
            if (s->aop == '=')
                fprintf(out, " = ");
            else
                fprintf(out, " %c= ", s->aop);
            dump_expr(s->value, out);
            fputc('\n', out);
            break;
        case ST_FOR:
            fprintf(out, "for %s in ", s->var);
            dump_expr(s->lo, out);
            fprintf(out, "..");
            dump_expr(s->hi, out);
            fputc('\n', out);
            dump_stmts(s->body, ind + 2, out);
            break;
        case ST_LEARNED:
            fprintf(out, "learned%s%s %s[", s->lkind ? " " : "", s->lkind ? s->lkind : "", s->var);
            for (int i = 0; i < s->ndims; i++)
                fprintf(out, "%s%d", i ? " -> " : "", s->dims[i]);
            fprintf(out, "]%s%s\n", s->act ? " " : "", s->act ? s->act : "");
            break;
        case ST_IF:
            fprintf(out, "if ");
            dump_expr(s->value, out);
            fputc('\n', out);
            dump_stmts(s->body, ind + 2, out);
            if (s->els) {
                fprintf(out, "%*selse\n", ind, "");
                dump_stmts(s->els, ind + 2, out);
            }
            break;
        case ST_CALL:
            dump_expr(s->value, out);
            fputc('\n', out);
            break;
        }
    }
}

int cmd_emit(int argc, char **argv)
{
    if (argc < 2)
        return cli_fail("%s", "usage: celo emit ast|ir|llvm|llvm-raw|opencl|obj FILE.celo [RULE] [-o OUT]");
    const char *what = argv[0], *file = argv[1], *name = NULL, *out = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc)
            out = argv[++i];
        else if (!name)
            name = argv[i];
        else
            return cli_fail("emit: unexpected argument '%s'", argv[i]);
    }
    if (strcmp(what, "ast") && strcmp(what, "ir") && strcmp(what, "llvm") && strcmp(what, "llvm-raw") &&
        strcmp(what, "opencl") && strcmp(what, "obj"))
        return cli_fail("emit: unknown form '%s' (ast, ir, llvm, llvm-raw, opencl or obj)", what);
    if (!strcmp(what, "obj") && !out)
        return cli_fail("%s", "emit obj needs -o RULES.o");
    module m;
    if (module_load(&m, file, cli_stdlib_dir()) || diag_count) {
        module_free(&m);
        return 1;
    }
    rule *rules[512];
    int n = 0, rc = 0, found = 0;
    if (name && strchr(name, '@') && strcmp(what, "ast")) { /* a rule with its schedule, as a run names it */
        rules[n] = rule_compile_named(&m, name);
        found = rules[n] != NULL;
        n += found;
    }
    for (def *d = m.defs; d; d = d->next) {
        if (d->kind == DEF_IMPORT || strcmp(d->file->path, file) || (name && strcmp(d->name, name)))
            continue;
        found = 1;
        if (!strcmp(what, "ast")) {
            printf("%s %s(",
                   d->kind == DEF_TRANSFORM  ? "transform"
                   : d->kind == DEF_SCHEDULE ? "schedule"
                   : d->kind == DEF_MODEL    ? "model"
                                             : "optimizer",
                   d->name);
            for (param *p = d->params; p; p = p->next) {
                printf("%s%s=", p == d->params ? "" : ", ", p->name);
                if (p->def)
                    dump_expr(p->def, stdout);
            }
            printf(")\n");
            if (d->value) {
                printf("  = ");
                dump_expr(d->value, stdout);
                printf("\n");
            }
            if (d->chain)
                for (arg *a = d->chain; a; a = a->next) {
                    printf("  chain ");
                    dump_expr(a->value, stdout);
                    printf("\n");
                }
            dump_stmts(d->body, 2, stdout);
            continue;
        }
        if (d->kind != DEF_OPTIMIZER)
            continue;
        rule *r = rule_compile(&m, d);
        if (!r) {
            rc = 1;
            continue;
        }
        if (n < 512)
            rules[n++] = r;
    }
    if (name && !found) {
        fprintf(stderr, "celo: %s defines no rule '%s'\n", file, name);
        rc = 1;
    }
    char err[1024] = "";
    if (!rc && strcmp(what, "ast")) {
        for (int i = 0; i < n && !rc; i++) {
            if (!strcmp(what, "ir"))
                rule_dump(rules[i], stdout);
            else if (!strcmp(what, "llvm") || !strcmp(what, "llvm-raw"))
                rc = llvm_dump_ir(rules[i], !strcmp(what, "llvm"), stdout, err, sizeof err) ? 1 : 0;
            else if (!strcmp(what, "opencl")) {
                /* a rule with tensor classes: each variant's source, after its class */
                int nv = rules[i]->nvariants ? rules[i]->nvariants : 1;
                for (int v = 0; v < nv; v++) {
                    const celo_program *P = rules[i]->nvariants ? &rules[i]->variants[v]->prog : &rules[i]->prog;
                    if (P->cls)
                        printf("/* class %d: %s */\n", v, P->cls);
                    char *src = celo_opencl_source(P);
                    fputs(src, stdout);
                    free(src);
                }
            }
        }
        if (!rc && !strcmp(what, "obj")) {
            char hdr[PATH_MAX];
            snprintf(hdr, sizeof hdr, "%s", out);
            char *dot = strrchr(hdr, '.');
            if (dot && !strchr(dot, '/'))
                strcpy(dot, ".h");
            else
                strncat(hdr, ".h", sizeof hdr - strlen(hdr) - 1);
            rc = llvm_emit_object(rules, n, out, hdr, err, sizeof err) ? 1 : 0;
        }
        if (rc)
            fprintf(stderr, "celo: %s\n", err);
    }
    for (int i = 0; i < n; i++)
        rule_free(rules[i]);
    module_free(&m);
    return rc || diag_count ? 1 : 0;
}

int cmd_rules(void)
{
    module m;
    if (module_load(&m, NULL, cli_stdlib_dir()) || diag_count)
        return 1;
    for (def *d = m.defs; d; d = d->next) {
        if (d->kind == DEF_IMPORT)
            continue;
        rule *r = d->kind == DEF_OPTIMIZER ? rule_compile(&m, d) : NULL;
        printf("%-10s %-20s",
               d->kind == DEF_OPTIMIZER  ? "optimizer"
               : d->kind == DEF_SCHEDULE ? "schedule"
               : d->kind == DEF_MODEL    ? "model"
                                         : "transform",
               d->name);
        for (param *p = d->params; p; p = p->next)
            printf(" %s", p->name);
        if (r && r->nvariants)
            printf("   [%d tensor classes]", r->nvariants);
        else if (r)
            printf("   [%d pass%s]", r->prog.npass, r->prog.npass == 1 ? "" : "es");
        printf("\n");
        rule_free(r);
    }
    module_free(&m);
    return diag_count ? 1 : 0;
}

/* ---- celo theta: meta-parameter files (runtime/theta.c; docs/theta.md) ---- */
static int theta_show(const char *file)
{
    celo_theta th;
    celo_theta_format fmt = 0;
    char err[1024];
    if (celo_theta_read(file, &th, &fmt, err, sizeof err))
        return cli_fail("%s", err);
    int w = 4;
    for (int i = 0; i < th.n; i++)
        w = (int)strlen(th.t[i].name) > w ? (int)strlen(th.t[i].name) : w;
    printf("%-*s  %-14s %9s  %s\n", w, "name", "shape", "count", "l2");
    for (int i = 0; i < th.n; i++) {
        const celo_theta_tensor *t = &th.t[i];
        char shape[160] = "[";
        for (int d = 0; d < t->ndim; d++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld", d ? ", " : "",
                     (long long)t->shape[d]);
        strncat(shape, "]", sizeof shape - strlen(shape) - 1);
        double ss = 0;
        for (int64_t k = 0; k < t->n; k++)
            ss += (double)t->data[k] * t->data[k];
        printf("%-*s  %-14s %9lld  %.9g\n", w, t->name, shape, (long long)t->n, sqrt(ss));
    }
    printf("total %lld floats in %d tensors (%s)\n", (long long)celo_theta_count(&th), th.n,
           fmt == CELO_THETA_MSGPACK ? "flax msgpack" : "safetensors");
    celo_theta_free(&th);
    return 0;
}

/* celo theta init RULE [--file F.celo] --seed S -o OUT.safetensors: the rule's own initialization */
static int theta_init(int argc, char **argv)
{
    const char *name = NULL, *file = NULL, *seed_s = NULL, *out = NULL;
    const cli_opt opts[] = {{"--file", &file, NULL}, {"--seed", &seed_s, NULL}, {"-o", &out, NULL}, {NULL, NULL, NULL}};
    if (cli_parse_args("theta init", argc, argv, opts, NULL, NULL, &name))
        return 1;
    if (!name || !seed_s || !out)
        return cli_fail("%s", "usage: celo theta init RULE [--file F.celo] --seed S -o OUT.safetensors");
    char *end;
    unsigned long long seed = strtoull(seed_s, &end, 10);
    if (!*seed_s || *end || seed_s[0] == '-')
        return cli_fail("theta init: --seed '%s' is not a non-negative integer", seed_s);
    size_t n = strlen(out);
    if (n < 12 || strcmp(out + n - 12, ".safetensors"))
        return cli_fail("theta init: %s: the output must be a .safetensors file", out);
    module m;
    rule *r = cli_load_rule(&m, file, name);
    int rc = 1;
    celo_theta th;
    char err[1024];
    celo_theta_init(&th);
    if (!r)
        goto done;
    if (r->prog.ntheta == 0) {
        cli_fail("theta init: rule '%s' has no learned parameters", r->prog.name);
        goto done;
    }
    if (celo_theta_init_rule(&r->prog, seed, &th, err, sizeof err) || celo_theta_write(out, &th, err, sizeof err)) {
        cli_fail("%s", err);
        goto done;
    }
    fprintf(stderr, "celo: wrote %s (%lld floats in %d tensors)\n", out, (long long)celo_theta_count(&th), th.n);
    rc = 0;
done:
    celo_theta_free(&th);
    rule_free(r);
    module_free(&m);
    return rc;
}

int cmd_theta(int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "", *in = NULL, *out = NULL;
    const cli_opt opts[] = {{"-o", &out, NULL}, {NULL, NULL, NULL}};
    if (!strcmp(sub, "init"))
        return theta_init(argc - 1, argv + 1);
    if (!strcmp(sub, "show")) {
        if (cli_parse_args("theta show", argc - 1, argv + 1, NULL, NULL, NULL, &in))
            return 1;
        return in ? theta_show(in) : cli_fail("%s", "usage: celo theta show FILE");
    }
    if (strcmp(sub, "convert"))
        return cli_fail("%s", "usage: celo theta show FILE | celo theta convert IN -o OUT.safetensors | celo theta "
                              "init RULE [--file F.celo] --seed S -o OUT.safetensors");
    if (cli_parse_args("theta convert", argc - 1, argv + 1, opts, NULL, NULL, &in))
        return 1;
    if (!in || !out)
        return cli_fail("%s", "usage: celo theta convert IN -o OUT.safetensors");
    /* only safetensors is written: a typo must not overwrite an authors' .state file with another format */
    size_t n = strlen(out);
    if (n < 12 || strcmp(out + n - 12, ".safetensors"))
        return cli_fail("theta convert: %s: the output must be a .safetensors file", out);
    celo_theta th;
    char err[1024];
    if (celo_theta_read(in, &th, NULL, err, sizeof err))
        return cli_fail("%s", err);
    int rc = celo_theta_write(out, &th, err, sizeof err) ? cli_fail("%s", err) : 0;
    if (!rc)
        fprintf(stderr, "celo: wrote %s (%lld floats in %d tensors)\n", out, (long long)celo_theta_count(&th), th.n);
    celo_theta_free(&th);
    return rc;
}

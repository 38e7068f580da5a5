/* runlog.c — a training run's CSV log and checkpoint file (runlog.h). */
#include "runlog.h"

#include "errmsg.h"
#include "fileio.h"
#include "sbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int celo_rowlog_add(celo_rowlog *l, celo_row r)
{
    if (l->n == l->cap) {
        int nc = l->cap ? 2 * l->cap : 16;
        celo_row *p = realloc(l->rows, (size_t)nc * sizeof *p);
        if (!p)
            return -1;
        l->rows = p;
        l->cap = nc;
    }
    l->rows[l->n++] = r;
    return 0;
}

void celo_rowlog_free(celo_rowlog *l)
{
    free(l->rows);
    memset(l, 0, sizeof *l);
}

int celo_runlog_write_csv(const char *path, const celo_rowlog *l, char *err, size_t errlen)
{
    if (!path[0])
        return 0;
    sbuf b = {0};
    celo_sb_printf(&b, "step,train_loss,eval_loss,eval_acc,wall_s\n");
    for (int i = 0; i < l->n; i++) {
        const celo_row *r = &l->rows[i];
        celo_sb_printf(&b, "%lld,%.7g,%.7g,%.7g,%.3f\n", (long long)r->step, r->train_loss, r->eval_loss, r->eval_acc,
                       r->wall_s);
    }
    int rc = -1;
    if (b.oom)
        celo_seterr(err, errlen, "%s: out of memory", path);
    else
        rc = celo_write_file(path, b.s, b.len, err, errlen);
    free(b.s);
    return rc;
}

int celo_runlog_save(const celo_inst *in, const celo_rowlog *l, double wall_s, char *err, size_t errlen)
{
    const celo_run *run = celo_inst_run(in);
    char e[512] = "", v[64];
    celo_ckpt c;
    celo_ckpt_init(&c);
    sbuf rows = {0};
    int rc = -1;
    if (celo_inst_save(in, &c, err, errlen))
        goto out;
    for (int i = 0; i < l->n; i++) {
        const celo_row *r = &l->rows[i];
        celo_sb_printf(&rows, "%lld %.17g %.17g %.17g %.17g\n", (long long)r->step, r->train_loss, r->eval_loss,
                       r->eval_acc, r->wall_s);
    }
    snprintf(v, sizeof v, "%.17g", wall_s);
    if (rows.oom)
        snprintf(e, sizeof e, "out of memory");
    else if (!celo_ckpt_set_meta(&c, "rows", rows.s ? rows.s : "", e, sizeof e) &&
             !celo_ckpt_set_meta(&c, "wall_s", v, e, sizeof e) && !celo_make_parents(run->checkpoint, e, sizeof e) &&
             !celo_ckpt_write(&c, run->checkpoint, e, sizeof e))
        rc = 0;
    if (rc)
        celo_seterr(err, errlen, "run %s: checkpoint: %s", run->name, e);
out:
    free(rows.s);
    celo_ckpt_free(&c);
    return rc;
}

static int parse_double(const char *s, double *v)
{
    char *end;
    if (!s || !*s)
        return -1;
    *v = strtod(s, &end);
    return *end ? -1 : 0;
}

int celo_runlog_load(celo_inst *in, celo_rowlog *l, double *wall_s, char *err, size_t errlen)
{
    const celo_run *run = celo_inst_run(in);
    const char *path = run->checkpoint;
    char e[512] = "";
    celo_ckpt c;
    celo_ckpt_init(&c);
    int rc = -1;
    if (celo_ckpt_read(&c, path, e, sizeof e)) {
        celo_seterr(err, errlen, "run %s: %s", run->name, e);
        goto done;
    }
    if (celo_inst_load(in, &c, path, err, errlen))
        goto done;
    if (parse_double(celo_ckpt_get_meta(&c, "wall_s"), wall_s)) {
        celo_seterr(err, errlen, "run %s: %s: bad metadata (wall_s)", run->name, path);
        goto done;
    }
    int64_t step = celo_inst_step_count(in);
    const char *rows = celo_ckpt_get_meta(&c, "rows");
    l->n = 0;
    for (const char *p = rows ? rows : ""; *p;) {
        celo_row r;
        int used = 0;
        long long st;
        char a[40], b2[40], c2[40], d2[40];
        if (sscanf(p, "%lld %39s %39s %39s %39s%n", &st, a, b2, c2, d2, &used) != 5 || p[used] != '\n' ||
            parse_double(a, &r.train_loss) || parse_double(b2, &r.eval_loss) || parse_double(c2, &r.eval_acc) ||
            parse_double(d2, &r.wall_s) || st < (run->steps == 0 ? 0 : 1) || st > step) { /* 0: a 0-step stage */
            celo_seterr(err, errlen, "run %s: %s: bad metadata (rows)", run->name, path);
            goto done;
        }
        r.step = st;
        if (celo_rowlog_add(l, r)) {
            celo_seterr(err, errlen, "run %s: out of memory", run->name);
            goto done;
        }
        p += used + 1;
    }
    rc = 0;
done:
    celo_ckpt_free(&c);
    return rc;
}

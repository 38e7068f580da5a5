/*
 * source.c — the table of data sets (sources.def) and what every source shares: finding a type by name,
 * turning named arguments into checked parameters, the canonical key, loading a private copy, freeing.
 */
#include "data_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define CELO_SOURCE(id) extern const celo_source_type celo_source_##id;
#include "sources.def"
#undef CELO_SOURCE

static const celo_source_type *const table[] = {
#define CELO_SOURCE(id) &celo_source_##id,
#include "sources.def"
#undef CELO_SOURCE
};

#define NTABLE ((int)(sizeof table / sizeof table[0]))

int celo_source_count(void)
{
    return NTABLE;
}

const celo_source_type *celo_source_type_at(int i)
{
    return i >= 0 && i < NTABLE ? table[i] : NULL;
}

const celo_source_type *celo_source_find(const char *name)
{
    for (int i = 0; i < NTABLE; i++)
        if (name && strcmp(table[i]->name, name) == 0)
            return table[i];
    return NULL;
}

/* "a, b, c" of a type's parameter names (or of the table's set names when t is NULL) */
static void name_list(const celo_source_type *t, char *buf, size_t len)
{
    int n = t ? t->nparams : NTABLE;
    buf[0] = 0;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, len - l, "%s%s", i ? ", " : "", t ? t->params[i].name : table[i]->name);
    }
}

int celo_source_params(const celo_source_type *t, const celo_source_arg *args, int nargs, double *p, char *err,
                       size_t errlen)
{
    int given[CELO_SOURCE_MAX_PARAMS] = {0};
    for (int i = 0; i < t->nparams; i++)
        p[i] = t->params[i].def;
    for (int a = 0; a < nargs; a++) {
        int k = -1;
        for (int i = 0; i < t->nparams; i++)
            if (args[a].name && strcmp(args[a].name, t->params[i].name) == 0)
                k = i;
        if (k < 0) {
            char list[256];
            name_list(t, list, sizeof list);
            celo_seterr(err, errlen, "%s: unknown parameter '%s' (%s)", t->name, args[a].name ? args[a].name : "",
                        list);
            return -1;
        }
        if (given[k]++) {
            celo_seterr(err, errlen, "%s: parameter '%s' given twice", t->name, args[a].name);
            return -1;
        }
        const celo_source_param *ps = &t->params[k];
        double v = args[a].value;
        if (!(v >= ps->min && v <= ps->max)) {
            celo_seterr(err, errlen, "%s: %s %g is out of range %g..%g", t->name, ps->name, v, ps->min, ps->max);
            return -1;
        }
        if (ps->integer && v != floor(v)) {
            celo_seterr(err, errlen, "%s: %s %g is not a whole number", t->name, ps->name, v);
            return -1;
        }
        p[k] = v;
    }
    return 0;
}

int celo_source_key(const celo_source_type *t, const double *p, char *buf, size_t len)
{
    size_t l = 0;
    int k = snprintf(buf, len, "%s(", t->name);
    for (int i = 0; k >= 0 && (l += (size_t)k) < len && i < t->nparams; i++) /* %.17g: every double exactly */
        k = snprintf(buf + l, len - l, "%s%s=%.17g", i ? "," : "", t->params[i].name, p[i]);
    if (k < 0 || l >= len)
        return -1;
    k = snprintf(buf + l, len - l, ")");
    if (k < 0 || (l += (size_t)k) >= len)
        return -1;
    if (t->origin) {
        char origin[CELO_SOURCE_KEY_MAX];
        t->origin(origin, sizeof origin);
        k = snprintf(buf + l, len - l, "@%s", origin);
        if (k < 0 || (l += (size_t)k) >= len)
            return -1;
    }
    return (int)l;
}

/* type and parameters of (name, args) into s, its data still empty */
int celo_data_source_prepare(celo_source *s, const char *name, const celo_source_arg *args, int nargs, char *err,
                             size_t errlen)
{
    memset(s, 0, sizeof *s);
    const celo_source_type *t = celo_source_find(name);
    if (!t) {
        char list[256];
        name_list(NULL, list, sizeof list);
        celo_seterr(err, errlen, "unknown data set '%s' (%s)", name ? name : "", list);
        return -1;
    }
    if (celo_source_params(t, args, nargs, s->param, err, errlen))
        return -1;
    if (celo_source_key(t, s->param, s->key, sizeof s->key) < 0) {
        celo_seterr(err, errlen, "%s: parameters too long for a key", t->name);
        return -1;
    }
    s->type = t;
    return 0;
}

int celo_data_source_fill(celo_source *s, char *err, size_t errlen)
{
    if (s->type->load(s, s->param, err, errlen) == 0)
        return 0;
    celo_source_free(s);
    return -1;
}

int celo_source_load(celo_source *s, const char *name, const celo_source_arg *args, int nargs, char *err, size_t errlen)
{
    if (celo_data_source_prepare(s, name, args, nargs, err, errlen))
        return -1;
    return celo_data_source_fill(s, err, errlen);
}

void celo_source_free(celo_source *s)
{
    if (!s)
        return;
    celo_dataset_free(&s->train);
    celo_dataset_free(&s->test);
    celo_text_free(&s->text);
    celo_quadratic_free(&s->quad);
    memset(s, 0, sizeof *s);
}

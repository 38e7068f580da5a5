/*
 * registry.c — the process-wide table of loaded sources (data.h, "Sharing and threads"): one copy of each data
 * set per distinct key, loaded once however many threads ask at the same time, reference-counted.
 *
 * Why a global: the runtime holds no other, but sharing one read-only copy among all the runs of a process is
 * the point, and the runs need not know about each other. One mutex guards the list and the counts; a load runs
 * outside it (loading Fashion-MNIST takes a second, a teacher set longer), so different sets load in parallel,
 * and the callers of a set being loaded wait on the condition variable.
 */
#include "data_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LOADING, READY, FAILED };

typedef struct entry {
    celo_source src; /* first: a const celo_source * from get is its entry */
    int refs;        /* gets not yet put, waiters included */
    int state;
    char err[512]; /* FAILED: the loader's message, for every waiter */
    struct entry *next;
} entry;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done = PTHREAD_COND_INITIALIZER;
static entry *head; /* READY and LOADING entries; a FAILED one is unlinked at once */

static void unlink_entry(entry *e)
{
    for (entry **p = &head; *p; p = &(*p)->next)
        if (*p == e) {
            *p = e->next;
            return;
        }
}

/* one reference less, under the lock: the last frees (a READY or FAILED entry; a LOADING one has its loader) */
static void drop(entry *e)
{
    if (--e->refs > 0)
        return;
    unlink_entry(e);
    celo_source_free(&e->src);
    free(e);
}

const celo_source *celo_source_get(const char *name, const celo_source_arg *args, int nargs, char *err, size_t errlen)
{
    entry *fresh = calloc(1, sizeof *fresh);
    if (!fresh) {
        celo_seterr(err, errlen, "%s: out of memory", name ? name : "data");
        return NULL;
    }
    if (celo_data_source_prepare(&fresh->src, name, args, nargs, err, errlen)) {
        free(fresh);
        return NULL;
    }
    pthread_mutex_lock(&lock);
    entry *e = head;
    while (e && strcmp(e->src.key, fresh->src.key) != 0)
        e = e->next;
    if (e) { /* known: wait until it is loaded */
        free(fresh);
        e->refs++;
        while (e->state == LOADING)
            pthread_cond_wait(&done, &lock);
    } else { /* new: load it outside the lock, the others of this key wait */
        e = fresh;
        e->refs = 1;
        e->state = LOADING;
        e->next = head;
        head = e;
        pthread_mutex_unlock(&lock);
        int rc = celo_data_source_fill(&e->src, e->err, sizeof e->err);
        pthread_mutex_lock(&lock);
        e->state = rc == 0 ? READY : FAILED;
        if (rc != 0)
            unlink_entry(e); /* the next get tries again (a package may have been installed meanwhile) */
        pthread_cond_broadcast(&done);
    }
    const celo_source *s = &e->src;
    if (e->state == FAILED) {
        celo_seterr(err, errlen, "%s", e->err);
        drop(e);
        s = NULL;
    }
    pthread_mutex_unlock(&lock);
    return s;
}

void celo_source_put(const celo_source *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&lock);
    drop((entry *)(void *)s); /* src is the entry's first member */
    pthread_mutex_unlock(&lock);
}

int celo_source_live(void)
{
    pthread_mutex_lock(&lock);
    int n = 0;
    for (entry *e = head; e; e = e->next)
        n++;
    pthread_mutex_unlock(&lock);
    return n;
}

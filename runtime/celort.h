/*
 * celort.h — the celo runtime: the one header that compiled rules, the compiler and user C programs share.
 *
 * A compiled update rule ("program") is data: a flat, topologically ordered list of SSA nodes plus the
 * passes the fuser chose. The runtime executes one optimizer step of a program over one tensor:
 *
 *     #include "celort.h"
 *     extern const celo_program celo_rule_adamw;          // from `celo emit obj adamw.celo -o rules.o`
 *
 *     float p[1000], g[1000];                              // parameter and its gradient
 *     celo_state *st = celo_state_new(&celo_rule_adamw, 1, (int64_t[]){1000});  // m, v zeroed
 *     float hp[8];
 *     celo_program_defaults(&celo_rule_adamw, hp);         // lr, b1, b2, eps, wd with their defaults
 *     hp[0] = 3e-3f;                                       // lr
 *     for (int t = 1; t <= 100; t++) {
 *         compute_gradient(p, g);
 *         if (celo_step(&celo_rule_adamw, st, p, g, hp, t, NULL) != 0) abort();
 *     }
 *     celo_state_free(st);
 *
 * celo_step runs the host-scalar part once (bias corrections, schedules), then each element pass of the
 * rule (compiled kernels, split over the OpenMP threads), combining reduction partials and running the
 * small per-row / per-column / per-tensor computations between passes, and finally commits the state.
 *
 * Value domains (the "kinds" of the language):
 *   HOST   depends only on hyper-parameters and t: computed once per step, in double, outside every loop.
 *   SCALAR one value per tensor, known only at run time (a norm, a mean).
 *   ROW    one value per row of the tensor viewed as a matrix [R, C] with C = the last dimension.
 *   COL    one value per column of that view.
 *   ELEM   one value per element.
 * Factored domains (docs/language.md, "Factored statistics"): the tensor's shape with some axes removed, where d0 is
 * its largest axis and d1 the second largest (a stable argsort of the sizes: ties go by axis index; for ndim <= 1
 * d0 = 0 and FROW, FCOL, FBAT are one value):
 *   FROW   the shape without d0;  FCOL  without d1;  FBAT  without d0 and d1;
 *   MAT    without the last two axes (one value per matrix of the last two axes; one value for ndim <= 2).
 * A value may be used in any domain at least as large as its own: SCALAR is below every other, FBAT below FROW and
 * FCOL, MAT below ROW, everything below ELEM; any other two meet in ELEM (how FROW relates to ROW depends on the
 * shape, which the compiler does not know).
 */
#ifndef CELORT_H
#define CELORT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* IR opcodes, numbered by their rows in ops.def (append only: compiled programs store these numbers). */
typedef enum {
#define CELO_INPUT(id, ...)  CELO_OP_##id,
#define CELO_MAP(id, ...)    CELO_OP_##id,
#define CELO_REDUCE(id, ...) CELO_OP_##id,
#define CELO_MATRIX(id, ...) CELO_OP_##id,
#include "ops.def"
} celo_op;
/* How many there are: one for each row (not an enumerator of celo_op, so that a switch needs no case for it). */
enum {
    CELO_OP_COUNT_ = 0
#define CELO_INPUT(...)  +1
#define CELO_MAP(...)    +1
#define CELO_REDUCE(...) +1
#define CELO_MATRIX(...) +1
#include "ops.def"
};

/* Appended after ELEM: compiled programs store these numbers. */
typedef enum {
    CELO_HOST = 0,
    CELO_SCALAR,
    CELO_ROW,
    CELO_COL,
    CELO_ELEM,
    CELO_FROW,
    CELO_FCOL,
    CELO_FBAT,
    CELO_MAT,
    CELO_NDOM_
} celo_domain;
/* The factored domains FROW..MAT, numbered 0..3 for their tables (below). */
enum { CELO_NFDOM = 4 };
static inline int celo_dom_is_fac(int dom)
{
    return dom >= CELO_FROW && dom <= CELO_MAT;
}
/* A domain whose values are a vector of the tensor: ROW, COL and the factored ones. */
static inline int celo_dom_is_vec(int dom)
{
    return dom == CELO_ROW || dom == CELO_COL || celo_dom_is_fac(dom);
}

enum { CELO_FLAG_STAGED = 1 };
enum { CELO_COL_BLOCK = 16 };

typedef struct {
    uint8_t op;      /* celo_op */
    uint8_t dom;     /* celo_domain */
    uint8_t pass;    /* reductions of ELEM values and ORTHO: the element pass (1-based) that computes them;
                        other ELEM nodes: the earliest pass that can compute them; other nodes: the stage
                        after which they are computed (0 = before pass 1, k = after pass k) */
    uint8_t flags;   /* CELO_FLAG_STAGED: an element-wise value computed (and stored) by pass `pass`; later
                        passes load it instead of recomputing it (chosen by the compiler for costly values) */
    int32_t a, b, c; /* operand node numbers, -1 when unused */
    int32_t aux;     /* HP index, STATE slot, ORTHO steps */
    double imm;      /* CONST value */
} celo_node;

typedef struct {
    const char *name;
    double def; /* default */
} celo_hparam;

typedef struct {
    const char *name;
    uint8_t dom;   /* domain of the slot: ELEM, ROW, COL or SCALAR */
    int32_t init;  /* HOST node giving the initial value (evaluated with the hyper-parameters of step 1) */
    int32_t value; /* node holding the new value at the end of the step, -1 if never assigned */
} celo_stateslot;

/*
 * Staged values (ORTHO nodes, and nodes with CELO_FLAG_STAGED) live in the scratch buffer ptr[2 + nstate + n]
 * (n elements): the pass that computes them stores them there, later passes load them.
 *
 * Element-pass kernel ABI. One call processes elements [i0, i1) of a tensor whose [R, C] view has C columns.
 *   ptr:  ptr[0] = p, ptr[1] = g, ptr[2 + k] = storage of state slot k (ELEM, ROW, COL, a factored domain, or
 *         1 float for SCALAR), ptr[2 + nstate + n] = scratch buffer of node n (vectors computed between passes,
 *         staged ORTHO values), NULL otherwise; then ptr[2 + nstate + nnodes + d], d = dom - CELO_FROW, is the
 *         table of factored domain d (celo_state.ftab[d], int32 data behind the float pointer).
 *         Factored tables: every factored domain indexes element i (row r = i / C, column c = i % C) as
 *         tab[1 + r] + tab[0] * c: removing axes from a C-order index either keeps the last axis (tab[0] = 1, the
 *         column adds) or drops it (tab[0] = 0), and the rest depends on the row only (tab[1 + r]). MAT always
 *         drops it (tab[0] = 0 on every shape); the others depend on the shape.
 *   sc:   sc[n] = value of HOST or SCALAR node n, as float.
 *   part: part[n] = this chunk's partial of reduction node n computed by this pass (1 double for SCALAR,
 *         R for ROW, C for COL); the runtime fills identities (0 for SUM, -inf for MAXR) and combines chunks.
 *         A COL partial is followed by C floats of scratch: a chunk adds each row into those floats and folds
 *         them into the doubles every CELO_COL_BLOCK rows of the chunk (counted from its first row) and at its
 *         end. A float add per element instead of a double read-modify-write keeps the pass at memory speed.
 * The final pass writes the new parameter into ptr[0] and new ELEM state into ptr[2 + k], element by element
 * after reading that element's inputs, so in-place update is safe.
 */
typedef void (*celo_kernel_fn)(int64_t i0, int64_t i1, int64_t C, float *const *ptr, const float *sc,
                               double *const *part);

typedef struct {
    celo_kernel_fn fn; /* NULL: run the pass through the interpreter */
    int32_t id;        /* 1-based pass number */
} celo_pass;

/* One named tensor of a learned rule's meta-parameters θ (docs/language.md, "Learned parameters"): its values
 * are celo_state.theta[offset .. offset + numel), C order. */
typedef struct {
    const char *name; /* "f/w0", "f/b0", "w": the declared name (or its name = "…"), '/', the layer's tensor */
    int64_t offset;
    int32_t ndim; /* 1 to 4 */
    int32_t shape[4];
    int32_t init; /* celo theta init: 0 zeros, 1 truncated normal (cut at ±2) times 1/sqrt(fan_in) */
    int32_t fan_in;
} celo_thetaspec;

typedef struct celo_program {
    const char *name;
    int32_t nnodes;
    const celo_node *nodes;
    int32_t nhp;
    const celo_hparam *hp;
    int32_t nstate;
    const celo_stateslot *state;
    int32_t p_value; /* node holding the new parameter, -1 if the rule never writes p */
    int32_t npass;
    const celo_pass *passes;
    int32_t ntheta;              /* learned tensors (0: not a learned rule) */
    const celo_thetaspec *theta; /* in declaration order */
    int64_t theta_len;           /* floats in all of them: the length celo_state.theta must have */
    /* Tensor classes (docs/language.md, "Tensor classes"): a rule whose body branches on the tensor's class
     * (`if ndim() <= 1 or matches("embed") { … }`) compiles to one program per class, its variants, with the same
     * hyper-parameters and θ table. The rule's own program then only chooses (nnodes, nstate, npass 0):
     * celo_state_new_named picks the variant of a tensor's rank and name, and celo_step runs st->prog. */
    int32_t nvariant;                          /* 0: one program for every tensor (no classes) */
    const struct celo_program *const *variant; /* the variants, in class order */
    int32_t npattern;                          /* the distinct patterns of matches("…"), at most 8 */
    const char *const *pattern;                /* POSIX extended regexes, searched in the tensor's name */
    const uint8_t *classmap; /* 8 << npattern entries: the variant of rank r (1 to 8; 0-D counts as 1) and pattern
                                truths m (bit k: pattern k matches) is classmap[(r - 1) << npattern | m] */
    const char *cls;         /* a variant: its class in words ("ndim() == 1 or matches(\"embed\")"); else NULL */
    int32_t flags;           /* CELO_PROG_*: what the caller must give besides p, g and the hyper-parameters */
} celo_program;

/* celo_program.flags. READS_LOSS: the rule reads `loss`, the step's training loss, so every step needs
 * celo_state.loss set (has_loss); a step without it fails. */
enum { CELO_PROG_READS_LOSS = 1 };
/* A reduction that an element pass computes as partials (kernel ABI: part): SUM or MAXR of an element-wise value
 * into SCALAR, ROW or COL. The factored means of an element value (SUM into FROW or FCOL) are not: the pass
 * stages their operand (CELO_FLAG_STAGED, or an ORTHO's buffer) and the runtime reduces the staged values after
 * the pass, in a fixed order that depends on the shape alone (celo_eval_small, runtime/facdom.c). */
static inline int celo_is_pass_reduction(const celo_program *P, const celo_node *x)
{
    return (x->op == CELO_OP_SUM || x->op == CELO_OP_MAXR) && P->nodes[x->a].dom == CELO_ELEM &&
           (x->dom == CELO_SCALAR || x->dom == CELO_ROW || x->dom == CELO_COL);
}

/* Per-tensor optimizer state: one contiguous buffer holding every slot of the tensor. */
typedef struct celo_state {
    const celo_program *prog;
    int ndim;
    int64_t shape[8];
    int64_t n, R, C;
    float *data;        /* all slots, contiguous */
    float **slot;       /* slot[i] points into data */
    int64_t *slotlen;   /* elements of each slot */
    int64_t t;          /* steps taken */
    int64_t num_steps;  /* the length of the run stepping it, which a rule reads as num_steps (0 until set) */
    void *scratch;      /* the executor's buffers, kept between steps */
    const float *theta; /* a learned rule's θ (prog->theta_len floats, set and owned by the caller); NULL otherwise */
    int64_t ntheta;     /* its length */
    char *name;         /* the tensor's name (owned; "" when none was given): what matches("…") searches */
    double loss;        /* the step's training loss, which a rule reads as `loss` (CELO_PROG_READS_LOSS) */
    int has_loss;       /* loss was set: a step of a rule that reads it fails without */
    /* Factored domains (FROW, FCOL, FBAT, MAT): the axes d0 and d1, the length of every domain (values per
     * domain: dlen[CELO_ELEM] = n), and for a program that uses a factored domain its tables, each 1 + R int32
     * (the flag, then every row's base: see the kernel ABI above); NULL otherwise. Set by celo_state_new. */
    int d0, d1;
    int64_t dlen[CELO_NDOM_];
    int32_t *ftab[CELO_NFDOM];
} celo_state;

celo_state *celo_state_new(const celo_program *prog, int ndim, const int64_t *shape);
/* The same for the tensor called name (NULL: ""): for a rule with classes, st->prog is the variant of the
 * tensor's class (celo_program_select); celo_state_new is this with no name. */
celo_state *celo_state_new_named(const celo_program *prog, int ndim, const int64_t *shape, const char *name);
/* The program that steps a tensor of rank ndim called name: prog itself for a rule without classes, else its
 * variant for that class. */
const celo_program *celo_program_select(const celo_program *prog, int ndim, const char *name);
/* Whether prog, or any of its variants, has a node with opcode op. */
int celo_program_has_op(const celo_program *prog, int op);
void celo_state_free(celo_state *st);
/* dst = src (the same rule and shape): the slots and the step count. 0, or -1 when they do not match. */
int celo_state_copy(celo_state *dst, const celo_state *src);
void celo_program_defaults(const celo_program *prog, float *hp);
int celo_program_hp_index(const celo_program *prog, const char *name);

/* A tensor's element passes run in chunks fixed by its size alone: one chunk below CELO_STEP_SPLIT_MIN elements,
 * then 2, 4 or 8 chunks of at least CELO_STEP_SPLIT_MIN / 2 elements each. Threads take the chunks in turn and
 * the chunks' partial reductions combine in chunk order, so a step gives the same bits on any number of threads
 * (celo_step_chunks says how many chunks). */
#define CELO_STEP_SPLIT_MIN 65536
int celo_step_chunks(int64_t n);

/* One optimizer step; p is updated in place. kernels: per-pass overrides (NULL: the program's own).
 * Returns 0, or -1 with a message in err (when err is not NULL). */
typedef struct {
    int interp;   /* 1: ignore compiled kernels, run every pass through the interpreter */
    int nthreads; /* 0: the OpenMP default */
    char err[256];
} celo_step_opts;
int celo_step(const celo_program *prog, celo_state *st, float *p, const float *g, const float *hp, int64_t t,
              celo_step_opts *opts);

/* A team of n threads that the caller already runs (an OpenMP region of its own, say) and their barrier:
 * celo_team_wait returns once all n have called it; a waiting thread spins briefly, then sleeps. */
typedef struct celo_team celo_team;
celo_team *celo_team_new(int n);
void celo_team_free(celo_team *team);
int celo_team_size(const celo_team *team);
void celo_team_wait(celo_team *team);
/* celo_step run by every thread of team at once (thread w of celo_team_size(team), all with the same arguments),
 * so that a caller already running a team needs no new one: the element passes split over the team's threads,
 * the rest runs on thread 0. The same bits as celo_step on any number of threads; every thread returns the same
 * value. */
int celo_step_team(const celo_program *prog, celo_state *st, float *p, const float *g, const float *hp, int64_t t,
                   celo_step_opts *opts, celo_team *team, int w);

/* 0 when st carries the θ that P needs (none, or P->theta_len floats) and, for a rule that reads the loss, the
 * step's loss; else -1 with one line in err. Every step checks it first. */
int celo_theta_ready(const celo_program *P, const celo_state *st, char *err, size_t errlen);

/* Helpers used by the executors and compiled code. celo_eval_small evaluates node j when it is not element-wise
 * (host, per-tensor, per-row, per-column: the work between passes) into val/sc (by node) or its vector in
 * ptr[2 + nstate + j] (the kernel pointer table), reading earlier values from the same places. */
void celo_eval_small(const celo_program *P, const celo_state *st, int j, int64_t t, const float *hp, double *val,
                     float *sc, float *const *ptr);
/* At the end of a step: stores the new value of state slot s when it is not element-wise (from sc or its vector in
 * ptr). Returns 1 when it stored, 0 for element-wise or unassigned slots. */
int celo_commit_slot(const celo_program *P, celo_state *st, int s, const float *sc, float *const *ptr);
double celo_eval_op(int op, double a, double b, double c);
int celo_orthogonalize(float *x, int64_t B, int64_t R, int64_t C, int steps);
/* An ORTHO node's aux: its Newton-Schulz steps, plus CELO_ORTHO_LAST2 for orthogonalize_last2 (one matrix per index
 * of the leading axes, the last two axes its rows and columns) instead of the [R, C] view's one matrix.
 * celo_orthogonalize_node runs the node's op on x (the tensor of st, in its order). */
enum { CELO_ORTHO_LAST2 = 256 };
int celo_orthogonalize_node(float *x, const celo_state *st, int aux);

/* Threads: the one place that sets the thread count of celo's loops and of OpenBLAS. */
void celo_set_threads(int n);
int celo_threads(void);

/* .npy I/O (float32, C order). Errors: one line naming the file, in err. */
typedef struct {
    int ndim;
    int64_t shape[8];
    int64_t n;
    float *data;
} celo_array;
int celo_npy_read(const char *path, celo_array *out, char *err, size_t errlen);
int celo_npy_write(const char *path, const float *data, int ndim, const int64_t *shape, char *err,
                   size_t errlen); /* atomic: temp file, fsync, rename */
void celo_array_free(celo_array *a);

/* Writes len bytes to path atomically (temp file beside it, fsync, rename, fsync of the folder): a crash leaves
 * the old file or the new one, never a torn one. 0, or -1 with one line naming the file in err (may be NULL). */
int celo_write_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif

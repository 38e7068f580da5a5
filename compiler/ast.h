/* ast.h — the syntax tree of a .celo file. Every node carries a byte-offset span into its source file. */
#ifndef CELO_AST_H
#define CELO_AST_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int32_t lo, hi; /* byte offsets [lo, hi) into the file's text */
} span;

typedef struct srcfile {
    char *path;
    char *text;
    size_t len;
} srcfile;

/* A bump allocator: the whole tree is freed at once. */
typedef struct arena_block arena_block;
typedef struct {
    arena_block *head;
} arena;
void *arena_alloc(arena *a, size_t n);
char *arena_strndup(arena *a, const char *s, size_t n);
void arena_free(arena *a);

typedef enum { EX_NUM, EX_NAME, EX_INDEX, EX_UNARY, EX_BINARY, EX_CALL } expr_kind;
typedef enum {
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_POW,
    OP_NEG,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_EQ,
    OP_NE,
    OP_AND,
    OP_OR,
    OP_NOT
} ast_op;

typedef struct expr expr;
typedef struct arg {
    const char *name; /* named argument, or NULL */
    span name_span;
    expr *value;
    struct arg *next;
} arg;

struct expr {
    expr_kind kind;
    span sp;
    double num;       /* EX_NUM */
    const char *name; /* EX_NAME, EX_INDEX, EX_CALL */
    span name_span;
    ast_op op;          /* EX_UNARY, EX_BINARY */
    expr *a, *b;        /* operands; EX_INDEX: b = index */
    const char *suffix; /* EX_INDEX in a model: h[l].attn names h.<l>.attn (suffix "attn"), or NULL */
    arg *args;          /* EX_CALL; EX_INDEX with several indices (W[k, j]): all of them, b is the first */
    int nargs;
    const char *str; /* EX_CALL with one string argument, matches("embed"): the string (args NULL) */
    int depth;       /* height of the subtree, 0 for a leaf (bounded by the parser) */
};

/* ST_IF: `if COND { … } else { … }` on the tensor's class (value = COND, body, els); ST_CALL: `NAME(args);`, an
 * optimizer inlined (value = the call) */
typedef enum { ST_STATE, ST_ASSIGN, ST_FOR, ST_LEARNED, ST_IF, ST_CALL } stmt_kind;
struct prop;
typedef struct stmt stmt;
typedef struct statevar {
    const char *name;
    span sp;
    int size; /* 0: scalar slot, N: vector slot m[N] */
    expr *init;
    struct statevar *next;
} statevar;

struct stmt {
    stmt_kind kind;
    span sp;
    statevar *vars;     /* ST_STATE */
    const char *target; /* ST_ASSIGN */
    span target_span;
    expr *index;        /* ST_ASSIGN to m[k] */
    const char *suffix; /* ST_ASSIGN to h[l].attn in a model: "attn" (as expr.suffix), or NULL */
    int aop;            /* '=', '+', '-', '*', '/' */
    expr *value;
    const char *var; /* ST_FOR */
    span var_span;
    expr *lo, *hi;
    stmt *body;
    stmt *els; /* ST_IF: the else branch (an `else if` is one ST_IF), or NULL */
    /* ST_LEARNED: `learned KIND NAME[d0 -> d1 -> ...] ACT;` (kind "mlp") or `learned NAME[n];` (kind NULL);
     * the name is var / var_span */
    const char *lkind, *act;
    span lkind_span, act_span, dims_span;
    int dims[16], ndims;
    int dims_arrow, dims_comma; /* which separator the widths used: '->' (an MLP) or ',' (a tensor's shape) */
    struct prop *lopts;         /* options after it: name = "…", inputs = […], lead = 1, init = normal */
    stmt *next;
};

typedef struct param {
    const char *name;
    span sp;
    expr *def;
    struct param *next;
} param;

/* Values of pipeline blocks (task, train, sweep, compare): numbers, strings, names, calls with positional and
 * named arguments, and lists. No arithmetic: a block describes, it does not compute. */
typedef enum { PV_NUM, PV_STR, PV_NAME, PV_CALL, PV_LIST } pval_kind;
typedef struct pval pval;
typedef struct parg {
    const char *name; /* named argument, or NULL */
    span name_span;
    pval *value;
    struct parg *next;
} parg;
struct pval {
    pval_kind kind;
    span sp;
    double num;      /* PV_NUM */
    const char *str; /* PV_STR, PV_NAME, PV_CALL (the function) */
    parg *args;      /* PV_CALL arguments, PV_LIST items (unnamed) */
    int nargs;
};

/* One property of a block: `key = value;`, `key value;` or `key word value;` (e.g. `eval every 200;`). */
typedef struct prop {
    const char *key, *word;
    span key_span, word_span, sp;
    pval *value;
    struct prop *next;
} prop;

typedef enum { DEF_OPTIMIZER, DEF_TRANSFORM, DEF_IMPORT, DEF_BLOCK, DEF_SCHEDULE, DEF_MODEL } def_kind;
typedef struct def {
    def_kind kind;
    span sp;
    const char *name; /* DEF_IMPORT: the path */
    span name_span;
    param *params;
    stmt *body;        /* NULL for chain definitions; DEF_MODEL: its `tap = block(...)` statements */
    arg *chain;        /* chain(T1(...), ...) members: each value is an EX_CALL */
    expr *value;       /* DEF_SCHEDULE: the factor of the learning rate, an expression of t and num_steps */
    const char *block; /* DEF_BLOCK: its kind word ("task", "train", ...) */
    span block_span;
    prop *props; /* DEF_BLOCK */
    srcfile *file;
    struct def *next;
} def;

typedef struct {
    srcfile *file;
    arena *ar;
    def *defs;
    int nerrors;
    void *scanner;
} parse_ctx;

/* Parses one file; definitions are appended to *out. Returns the number of syntax errors (reported). */
int celo_parse_file(srcfile *f, arena *ar, def **out);
srcfile *srcfile_load(const char *path, char *err, size_t errlen);
srcfile *srcfile_from_string(const char *name, const char *text);
void srcfile_free(srcfile *f);

#endif

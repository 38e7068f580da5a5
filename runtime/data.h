/*
 * data.h — data sources for training: what a data set is, how runs share one, and how to add one.
 *
 * A data source is a data set loaded into memory, in one of three forms (celo_source_kind):
 *   EXAMPLES   train and test splits of n examples of `dim` floats, with class labels (nclass > 0) or
 *              regression targets (ydim > 0); images also carry h and w      (fashion_mnist, teacher)
 *   TEXT       one byte string with a training and a validation part         (kjv)
 *   OBJECTIVE  a function to minimize directly, no examples                 (quadratic)
 * Every data set is one file in runtime/data/ that defines a celo_source_type: its name as a .celo file spells
 * it, its numeric parameters with defaults and ranges, and a load function. runtime/data/sources.def lists them.
 *
 * Using a source. Runs share one copy through the process-wide registry:
 *
 *     celo_source_arg args[] = {{"size", 8}, {"normalize", 1}};             // the rest take their defaults
 *     const celo_source *src = celo_source_get("fashion_mnist", args, 2, err, sizeof err);
 *     if (!src) die(err);                                                  // one line naming the file
 *     const celo_dataset *tr = &src->train;                                // x [60000, 64], y [60000]
 *     celo_cursor cur;
 *     celo_cursor_init(&cur, seed, tr->n, 128, err, sizeof err);          // each run owns its cursor
 *     for (step = 0; step < steps; step++) {
 *         celo_cursor_next_batch(&cur, tr, idx, x, y, NULL);               // x [128, 64], y [128]
 *         ...
 *     }
 *     celo_cursor_format(&cur, buf, sizeof buf);                           // into the checkpoint metadata
 *     celo_source_put(src);                                                // the last put frees it
 *
 * Sharing and threads. The registry keys a source by its canonical parameters (every parameter, defaults
 * included, plus where the files come from when the environment decides it): "fashion_mnist(size=8,resize=0,
 * normalize=1)@/usr/share/datasets/fashion-mnist". celo_source_get with the same key returns the same pointer,
 * loaded once; it may be called from any number of threads at once: one mutex guards the table, the first caller
 * of a key loads it outside the lock while later callers of that key wait for it (callers of other keys do
 * not), and a failed load gives every waiter its error and leaves nothing behind (the next get tries again).
 * Sources are reference-counted: each get is matched by one put, and the last put frees the memory. A
 * program that wants a data set for its whole lifetime keeps one reference. A loaded source is immutable:
 * any number of runs on any threads read it without locks; each run owns its small cursor (plain data, saved
 * in checkpoints). celo_source_load gives a private copy outside the registry (tests, tools).
 *
 * Random numbers come from rng.h and are pure functions of (seed, stream, counter): the order of batch k of
 * epoch e, a text window, a teacher's weights or a quadratic's spectrum never depend on what ran before.
 *
 * Errors: functions returning int give 0 on success, or -1 with one line in err naming the file (or the data
 * set) and what is wrong. A missing Debian data set names the package that provides it.
 *
 * Adding a data set (say, a CSV of 8x8 digit images, as runtime/data/digits.c reads):
 *   1. runtime/data/digits.c: read the files into a celo_source's train and test (celo_dataset below; x from
 *      celo_data_examples_alloc in data/data_internal.h, the rest with malloc), validating everything with
 *      one-line errors that name the file, and define
 *          const celo_source_type celo_source_digits = {
 *              .name = "digits", .help = "8x8 handwritten digits (python3-sklearn)", .kind = CELO_SOURCE_EXAMPLES,
 *              .nparams = 1, .params = {{"normalize", 0, 0, 1, 1, "1: standardize with the train set's stats"}},
 *              .load = digits_load, .origin = digits_origin};     // origin: NULL when no file is involved
 *   2. runtime/data/sources.def: one line, CELO_SOURCE(digits).
 * The Makefile compiles every .c file in runtime/data/. tests/unit/test_data.c checks each set's contents and
 * errors, tests/unit/test_source.c the table and the registry. (A task in a .celo file still reaches a data set
 * through compiler/pipeline.c and the plan's task fields, which name the built-in sets one by one.)
 */
#ifndef CELO_DATA_H
#define CELO_DATA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ================================ the three forms of loaded data ================================ */

enum { CELO_SPLIT_TRAIN = 0, CELO_SPLIT_TEST = 1, CELO_SPLIT_VAL = 1 };

/* ---- in-memory datasets: n examples of dim float features, with class labels or regression targets ---- */
typedef struct {
    char name[64];   /* "fashion_mnist/train", "teacher/test", ... */
    int64_t n;       /* examples */
    int64_t dim;     /* input features per example */
    int h, w;        /* images: height and width (dim = h * w); 0 otherwise */
    int nclass;      /* classification: number of classes; 0 for regression */
    int64_t ydim;    /* regression: targets per example; 0 for classification */
    float *x;        /* [n, dim] */
    int32_t *y;      /* [n] labels in [0, nclass), or NULL */
    float *t;        /* [n, ydim] regression targets, or NULL */
    float mean, std; /* the standardization applied to x (0 and 1 when none) */
} celo_dataset;

void celo_dataset_free(celo_dataset *d);
/* Copy examples idx[0..B) into x [B, dim] and y [B] (or t [B, ydim]); x, y, t may be NULL to skip. */
void celo_dataset_gather(const celo_dataset *d, const int64_t *idx, int64_t B, float *x, int32_t *y, float *t);
/* Examples [i0, i0 + B) in file order (evaluation). */
void celo_dataset_slice(const celo_dataset *d, int64_t i0, int64_t B, float *x, int32_t *y, float *t);

/* ---- character-level text ---- */
typedef struct {
    char name[64];
    int64_t n;               /* characters (bytes) */
    uint8_t *ids;            /* [n] token ids */
    int64_t split;           /* train = ids[0, split), validation = ids[split, n) */
    int vocab;               /* distinct bytes of the whole text, ids in byte order */
    unsigned char itos[256]; /* id -> byte */
    int16_t stoi[256];       /* byte -> id, -1 when absent */
} celo_text;
/* val_frac of the text (rounded forward to the start of a line) becomes the validation split. */
int celo_text_from_memory(celo_text *t, const char *name, const char *s, int64_t n, double val_frac, char *err,
                          size_t errlen);
int celo_text_load_file(celo_text *t, const char *path, double val_frac, char *err, size_t errlen);
void celo_text_free(celo_text *t);
int64_t celo_text_len(const celo_text *t, int split);
/* Batch `step` of B random windows of T + 1 characters of a split: x[b, i] = ids[s_b + i],
 * y[b, i] = ids[s_b + i + 1] (next-character targets), s_b uniform over the split, a pure function of
 * (seed, split, step, b). -1 when the split is shorter than T + 1. */
int celo_text_batch(const celo_text *t, int split, uint64_t seed, uint64_t step, int B, int T, int32_t *x, int32_t *y);
/* Window number k (0 <= k < celo_text_num_windows) of the split's non-overlapping windows (evaluation):
 * x = ids[k * T, k * T + T), y = the same shifted by one. */
int64_t celo_text_num_windows(const celo_text *t, int split, int T);
void celo_text_window(const celo_text *t, int split, int64_t k, int T, int32_t *x, int32_t *y);
/* ids -> bytes (out gets n bytes and a NUL). */
void celo_text_decode(const celo_text *t, const int32_t *ids, int64_t n, char *out);

/* ---- objectives: random quadratics  L(x) = 1/2 x^T A x,  grad = A x,  minimum 0 at x = 0 ---- */
typedef struct {
    int dim;
    float *eig; /* [dim] */
    float *A;   /* [dim, dim] when rotated, else NULL (A = diag(eig)) */
    float *x0;  /* [dim] starting point ~ N(0, I) */
} celo_quadratic;
/* Loss at x; the gradient A x into g when g is not NULL. Accumulates in double. */
double celo_quadratic_loss(const celo_quadratic *q, const float *x, float *g);
void celo_quadratic_free(celo_quadratic *q);

/* ================================ data sources ================================ */

typedef enum { CELO_SOURCE_EXAMPLES = 1, CELO_SOURCE_TEXT = 2, CELO_SOURCE_OBJECTIVE = 3 } celo_source_kind;

#define CELO_SOURCE_MAX_PARAMS 12
#define CELO_SOURCE_KEY_MAX    512

/* One numeric parameter of a data set, as `data = NAME(param = value, ...)` gives it. */
typedef struct {
    const char *name; /* "size" */
    double def;       /* the value when not given */
    double min, max;  /* accepted range, inclusive */
    int integer;      /* 1: whole numbers only */
    const char *help; /* one line */
} celo_source_param;

typedef struct celo_source celo_source;

/* A data set: one file in runtime/data/, one line in runtime/data/sources.def. */
typedef struct {
    const char *name; /* as a .celo file spells it: "fashion_mnist" */
    const char *help; /* one line */
    celo_source_kind kind;
    int nparams;
    celo_source_param params[CELO_SOURCE_MAX_PARAMS];
    /* Fill s (train and test, or text, or quad, by kind) from p[0..nparams): every parameter, defaults applied
     * and ranges checked. 0, or -1 with one line in err; s is freed by the caller either way on failure. */
    int (*load)(celo_source *s, const double *p, char *err, size_t errlen);
    /* Where the data comes from when the environment decides it (a directory, a file), written into buf; it
     * becomes part of the registry key. NULL when the parameters say everything. */
    void (*origin)(char *buf, size_t len);
} celo_source_type;

/* A loaded data set. Read-only once loaded (the registry hands out const pointers). */
struct celo_source {
    const celo_source_type *type;
    char key[CELO_SOURCE_KEY_MAX];        /* "teacher(in=16,...)": canonical parameters and origin */
    double param[CELO_SOURCE_MAX_PARAMS]; /* every parameter's value, in type->params order */
    celo_dataset train, test;             /* CELO_SOURCE_EXAMPLES */
    celo_text text;                       /* CELO_SOURCE_TEXT: text.split divides training and validation */
    celo_quadratic quad;                  /* CELO_SOURCE_OBJECTIVE */
};

typedef struct {
    const char *name;
    double value;
} celo_source_arg;

/* The table: celo_source_type_at(i) for i in [0, celo_source_count()); find by name, NULL when unknown. */
int celo_source_count(void);
const celo_source_type *celo_source_type_at(int i);
const celo_source_type *celo_source_find(const char *name);
/* Named arguments -> p[0..t->nparams) in declaration order: defaults for those not given; unknown or repeated
 * names and values out of range are errors ("fashion_mnist: size 29 is out of range 1..28"). */
int celo_source_params(const celo_source_type *t, const celo_source_arg *args, int nargs, double *p, char *err,
                       size_t errlen);
/* The registry key of (t, p): "name(p1=v1,p2=v2)" plus "@origin" when t has one. -1 when len is too small. */
int celo_source_key(const celo_source_type *t, const double *p, char *buf, size_t len);

/* Shared, reference-counted, thread-safe (see the top of this file). NULL with one line in err on failure. */
const celo_source *celo_source_get(const char *name, const celo_source_arg *args, int nargs, char *err, size_t errlen);
/* Drop one reference of a pointer from celo_source_get; the last frees the data. NULL is ignored. */
void celo_source_put(const celo_source *s);
/* How many sources the registry holds now (loaded or loading): what is in memory, for tools and tests. */
int celo_source_live(void);

/* A private copy, outside the registry; free with celo_source_free. */
int celo_source_load(celo_source *s, const char *name, const celo_source_arg *args, int nargs, char *err,
                     size_t errlen);
void celo_source_free(celo_source *s);

/* ============== batching: seeded shuffling per epoch, drop-last, resumable cursor ============== */
/* (runtime/train.c does not use this cursor yet: it draws batch k from its own per-epoch Fisher-Yates
 * permutation, epoch_perm, which is cheaper per index and gives a different order.) */

/* Position i of epoch e's permutation of [0, n): a keyed Feistel bijection (8 rounds of Philox) with cycle
 * walking; O(1) memory, no state: any batch of any epoch is computed directly. */
int64_t celo_shuffle_index(uint64_t seed, int64_t epoch, int64_t n, int64_t i);
/* Batch k of epoch e: idx[j] = celo_shuffle_index(seed, e, n, k * B + j), j < B. */
void celo_epoch_batch(uint64_t seed, int64_t n, int64_t B, int64_t epoch, int64_t k, int64_t *idx);

typedef struct {
    uint64_t seed; /* shuffling seed */
    int64_t n;     /* examples in the dataset */
    int64_t batch; /* batch size B; an epoch is n / B full batches (the rest is dropped) */
    int64_t epoch; /* current epoch, 0-based */
    int64_t k;     /* next batch within the epoch */
} celo_cursor;
int celo_cursor_init(celo_cursor *c, uint64_t seed, int64_t n, int64_t batch, char *err, size_t errlen);
int64_t celo_cursor_batches_per_epoch(const celo_cursor *c);
int64_t celo_cursor_step(const celo_cursor *c);      /* batches taken: epoch * per_epoch + k */
void celo_cursor_seek(celo_cursor *c, int64_t step); /* position before batch number `step` */
void celo_cursor_next(celo_cursor *c, int64_t *idx); /* the next batch's B indices, then advance */
/* celo_cursor_next, then gather into x / y / t (idx: scratch of B entries). */
void celo_cursor_next_batch(celo_cursor *c, const celo_dataset *d, int64_t *idx, float *x, int32_t *y, float *t);
/* Text form for checkpoint metadata: "seed=S n=N batch=B epoch=E k=K". Returns the length, or -1 when
 * len is too small. Parse is strict (all five fields, in order, k < n / B). */
int celo_cursor_format(const celo_cursor *c, char *buf, size_t len);
int celo_cursor_parse(celo_cursor *c, const char *s, char *err, size_t errlen);

/* ========================= the built-in data sets' own loaders =========================
 * Their source entries (runtime/data/NAME.c) wrap these; tests and tools may call them directly. */

/* ---- IDX files (LeCun's MNIST format), gzip-compressed or plain ---- */
typedef struct {
    int ndim; /* 1..4 */
    int64_t dim[4];
    int64_t n;     /* product of dims */
    uint8_t *data; /* unsigned bytes, row-major */
} celo_idx;
/* Only element type 0x08 (unsigned byte). Validated: magic, type, dimension count, sizes (no overflow, no
 * zero dims), gzip stream integrity, truncation and trailing bytes. */
int celo_idx_read(const char *path, celo_idx *out, char *err, size_t errlen);
void celo_idx_free(celo_idx *m);

/* ---- images: resizing ---- */
typedef enum {
    CELO_RESIZE_AREA = 0,    /* area averaging: each output pixel is the mean of the input area it covers
                                (exact fractional overlaps for 28 -> 8; PIL's BOX filter, OpenCV INTER_AREA) */
    CELO_RESIZE_BILINEAR = 1 /* bilinear, half-pixel centers, no antialiasing: TensorFlow's
                                tf.image.resize default, which learned_optimization's 8x8 tasks use */
} celo_resize;
/* Resize one image (row-major, h x w) to size x size. */
void celo_image_resize(const float *in, int h, int w, float *out, int size, int method);

/* ---- Fashion-MNIST, from Debian's dataset-fashion-mnist ---- */
#define CELO_FMNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
typedef struct {
    int size;        /* output side length, 1..28; 0 means 28 (no resize) */
    int resize;      /* celo_resize */
    int normalize;   /* 0: pixels in [0, 1]; 1: standardized with the train set's pixel mean and std */
    const char *dir; /* NULL: $CELO_FASHION_MNIST_DIR, else CELO_FMNIST_DEFAULT_DIR */
} celo_fmnist_opts;
/* 60000 train / 10000 test images of dim = size * size floats (row-major), labels int32 in [0, 10). train
 * or test may be NULL; opts may be NULL (28x28, [0, 1]). A missing file: "PATH: not found; install the
 * Debian package dataset-fashion-mnist". (Any IDX files of the same layout load, e.g. MNIST's, via dir.) */
int celo_fmnist_load(celo_dataset *train, celo_dataset *test, const celo_fmnist_opts *opts, char *err, size_t errlen);

/* ---- handwritten digits, from Debian's python3-sklearn ---- */
#define CELO_DIGITS_DEFAULT_DIR "/usr/lib/python3/dist-packages/sklearn/datasets/data"
typedef struct {
    int normalize; /* 0: pixels in [0, 1] (counts / 16); 1: standardized with the train set's pixel mean and std */
    /* the gzip (or plain) CSV; NULL: digits.csv.gz in $CELO_DIGITS_DIR, else in CELO_DIGITS_DEFAULT_DIR */
    const char *path;
} celo_digits_opts;
/* sklearn's digits.csv.gz: one 8x8 image per line (64 pixel counts 0..16, row by row, then the label 0..9).
 * The last ceil(n / 5) lines are the test split, the others the training split, in file order: 1437 / 360 of
 * the 1797 images. dim 64, h = w = 8, nclass 10. opts may be NULL (not normalized). A missing file: "PATH: not
 * found; install the Debian package python3-sklearn"; a malformed line names the file and the line. */
int celo_digits_load(celo_dataset *train, celo_dataset *test, const celo_digits_opts *opts, char *err, size_t errlen);

/* ---- label variations of a classification set (task families): runtime/data/labels.c ---- */
#define CELO_MAX_CLASSES 16
/* The label map of `classes` (k entries, or k = 0: all nclass labels) followed by a permutation drawn from
 * `seed` (0: none): map[c] is the new label of old label c, or -1 when c is dropped. A kept class becomes its
 * position in the list; the permutation then renumbers the k new labels (a uniform draw, a pure function of seed
 * and k: it may leave some labels, or for small k all, in place). Errors: k = 1 or k > nclass, an entry outside
 * 0..nclass-1, an entry listed twice, nclass outside 2..CELO_MAX_CLASSES. */
int celo_label_map(int nclass, const int *classes, int k, uint64_t seed, int32_t *map, char *err, size_t errlen);
/* out = the examples of `in` whose label the map keeps, in order, with their new labels (x and y copied);
 * out->nclass = k (or nclass). in must have class labels. */
int celo_dataset_relabel(celo_dataset *out, const celo_dataset *in, const int *classes, int k, uint64_t seed, char *err,
                         size_t errlen);

/* ---- the King James Bible (kjv) ---- */
/* The King James Bible from Debian's bible-kjv, one verse per line, without the book/chapter:verse
 * references (they are not language: a char model would spend capacity on counting). Runs
 * `bible -f -p DIR gen1:1-rev22:21` (4.1 MB, 31102 verses, 0.2-0.4 s) and caches the result (atomically) in
 * $CELO_CACHE_DIR, else $XDG_CACHE_HOME/celo, else $HOME/.cache/celo, keyed by bible.data's size, mtime and
 * inode (a cache hit takes milliseconds). $CELO_BIBLE_TEXT: a plain text file to read instead;
 * $CELO_BIBLE_DIR: the directory of bible.data (default /usr/lib, Debian's bible-kjv-text). */
int celo_text_load_kjv(celo_text *t, double val_frac, char *err, size_t errlen);

/* ---- synthetic: random teacher networks ---- */
typedef struct {
    int in;        /* input dimension */
    int nhidden;   /* hidden layers, 0..4 */
    int hidden[4]; /* their widths */
    int out;       /* classes (classify) or targets (regression) */
    int classify;  /* 1: label = argmax of the teacher's output; 0: target = output + noise */
    float noise;   /* regression: std of the Gaussian noise added to each target */
    uint64_t seed; /* fixes the teacher and the inputs */
} celo_teacher_opts;
/* A fixed random MLP (ReLU hidden layers, He-normal weights, zero biases, linear output) labels inputs
 * x ~ N(0, I). Each output unit is standardized (mean 0, std 1) over a fixed calibration sample of 4096
 * inputs, so argmax classes are roughly balanced and regression targets have unit variance (before noise).
 * Example i of a split is a function of (seed, split, i) only: the train and test splits are different draws
 * labelled by the same teacher. */
int celo_teacher_dataset(celo_dataset *d, const celo_teacher_opts *o, int split, int64_t n, char *err, size_t errlen);

/* ---- synthetic: random quadratics (quadratic) ---- */
typedef struct {
    int dim;
    double cond; /* condition number: eigenvalues log-spaced from 1 down to 1 / cond */
    int rotate;  /* 0: A diagonal; 1: A = Q diag(eig) Q^T with Q Haar-random orthogonal */
    uint64_t seed;
} celo_quadratic_opts;
int celo_quadratic_make(celo_quadratic *q, const celo_quadratic_opts *o, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif

/* clrun.c — running a rule's OpenCL kernels (compiler/opencl.c) on a device: the host side of the OpenCL
 * back end (declared in runtime/clrun.h).
 *
 * p, g and the element-wise state live in device buffers; a step follows celo_step() (runtime/step.c)
 * exactly: host values are computed on the host in double, each pass is one kernel launch, reduction partials
 * are read back and combined on the host in work-item order, orthogonalizations run on the host (OpenBLAS),
 * and the small per-tensor/row/column values between passes are computed on the host and uploaded for the
 * kernels that read them. State that is not element-wise lives on the host (the celo_state mirror) and is
 * uploaded when it changes; element-wise state is read back only by celo_cl_state_read().
 *
 * On devices that share memory with the host (CPU devices such as PoCL), g is wrapped in a CL_MEM_USE_HOST_PTR
 * buffer each step instead of being copied; elsewhere it is written to a device buffer. Either way the device
 * reads g asynchronously: the caller must leave g unchanged until celo_cl_finish(), or a step with read_back,
 * returns.
 *
 * Program binaries are cached in $CELO_CACHE_DIR, else $XDG_CACHE_HOME/celo, else $HOME/.cache/celo, as
 * opencl-<hash>.bin, where the hash (FNV-1a, 64 bits) covers the source, the device name and version, the
 * driver version and the build options.
 *
 * Environment: CELO_OPENCL_DEVICE=N picks the N-th device over all platforms (default: the first GPU, else the
 * first device); CELO_OPENCL_LAYOUT=cpu|gpu and CELO_OPENCL_EPW=1|8 override the work layout chosen from the
 * device type, and CELO_OPENCL_FP64=0 uses float accumulators and OpenCL's float exp/log/pow/tanh as on devices
 * without double precision (all for testing one configuration on another device). */
#define CL_TARGET_OPENCL_VERSION 120
#include "clrun.h"
#include "celort.h"
#include "clplan.h"
#include "errmsg.h"
#include "fileio.h"
#include "tape.h"

#include <CL/cl.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- errors ---- */
static const char *cl_errname(cl_int e)
{
    static const struct {
        cl_int code;
        const char *name;
    } names[] = {
        {CL_SUCCESS, "CL_SUCCESS"},
        {CL_DEVICE_NOT_FOUND, "CL_DEVICE_NOT_FOUND"},
        {CL_DEVICE_NOT_AVAILABLE, "CL_DEVICE_NOT_AVAILABLE"},
        {CL_COMPILER_NOT_AVAILABLE, "CL_COMPILER_NOT_AVAILABLE"},
        {CL_MEM_OBJECT_ALLOCATION_FAILURE, "CL_MEM_OBJECT_ALLOCATION_FAILURE"},
        {CL_OUT_OF_RESOURCES, "CL_OUT_OF_RESOURCES"},
        {CL_OUT_OF_HOST_MEMORY, "CL_OUT_OF_HOST_MEMORY"},
        {CL_PROFILING_INFO_NOT_AVAILABLE, "CL_PROFILING_INFO_NOT_AVAILABLE"},
        {CL_MEM_COPY_OVERLAP, "CL_MEM_COPY_OVERLAP"},
        {CL_IMAGE_FORMAT_MISMATCH, "CL_IMAGE_FORMAT_MISMATCH"},
        {CL_IMAGE_FORMAT_NOT_SUPPORTED, "CL_IMAGE_FORMAT_NOT_SUPPORTED"},
        {CL_BUILD_PROGRAM_FAILURE, "CL_BUILD_PROGRAM_FAILURE"},
        {CL_MAP_FAILURE, "CL_MAP_FAILURE"},
        {CL_MISALIGNED_SUB_BUFFER_OFFSET, "CL_MISALIGNED_SUB_BUFFER_OFFSET"},
        {CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST, "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST"},
        {CL_COMPILE_PROGRAM_FAILURE, "CL_COMPILE_PROGRAM_FAILURE"},
        {CL_LINKER_NOT_AVAILABLE, "CL_LINKER_NOT_AVAILABLE"},
        {CL_LINK_PROGRAM_FAILURE, "CL_LINK_PROGRAM_FAILURE"},
        {CL_DEVICE_PARTITION_FAILED, "CL_DEVICE_PARTITION_FAILED"},
        {CL_KERNEL_ARG_INFO_NOT_AVAILABLE, "CL_KERNEL_ARG_INFO_NOT_AVAILABLE"},
        {CL_INVALID_VALUE, "CL_INVALID_VALUE"},
        {CL_INVALID_DEVICE_TYPE, "CL_INVALID_DEVICE_TYPE"},
        {CL_INVALID_PLATFORM, "CL_INVALID_PLATFORM"},
        {CL_INVALID_DEVICE, "CL_INVALID_DEVICE"},
        {CL_INVALID_CONTEXT, "CL_INVALID_CONTEXT"},
        {CL_INVALID_QUEUE_PROPERTIES, "CL_INVALID_QUEUE_PROPERTIES"},
        {CL_INVALID_COMMAND_QUEUE, "CL_INVALID_COMMAND_QUEUE"},
        {CL_INVALID_HOST_PTR, "CL_INVALID_HOST_PTR"},
        {CL_INVALID_MEM_OBJECT, "CL_INVALID_MEM_OBJECT"},
        {CL_INVALID_IMAGE_FORMAT_DESCRIPTOR, "CL_INVALID_IMAGE_FORMAT_DESCRIPTOR"},
        {CL_INVALID_IMAGE_SIZE, "CL_INVALID_IMAGE_SIZE"},
        {CL_INVALID_SAMPLER, "CL_INVALID_SAMPLER"},
        {CL_INVALID_BINARY, "CL_INVALID_BINARY"},
        {CL_INVALID_BUILD_OPTIONS, "CL_INVALID_BUILD_OPTIONS"},
        {CL_INVALID_PROGRAM, "CL_INVALID_PROGRAM"},
        {CL_INVALID_PROGRAM_EXECUTABLE, "CL_INVALID_PROGRAM_EXECUTABLE"},
        {CL_INVALID_KERNEL_NAME, "CL_INVALID_KERNEL_NAME"},
        {CL_INVALID_KERNEL_DEFINITION, "CL_INVALID_KERNEL_DEFINITION"},
        {CL_INVALID_KERNEL, "CL_INVALID_KERNEL"},
        {CL_INVALID_ARG_INDEX, "CL_INVALID_ARG_INDEX"},
        {CL_INVALID_ARG_VALUE, "CL_INVALID_ARG_VALUE"},
        {CL_INVALID_ARG_SIZE, "CL_INVALID_ARG_SIZE"},
        {CL_INVALID_KERNEL_ARGS, "CL_INVALID_KERNEL_ARGS"},
        {CL_INVALID_WORK_DIMENSION, "CL_INVALID_WORK_DIMENSION"},
        {CL_INVALID_WORK_GROUP_SIZE, "CL_INVALID_WORK_GROUP_SIZE"},
        {CL_INVALID_WORK_ITEM_SIZE, "CL_INVALID_WORK_ITEM_SIZE"},
        {CL_INVALID_GLOBAL_OFFSET, "CL_INVALID_GLOBAL_OFFSET"},
        {CL_INVALID_EVENT_WAIT_LIST, "CL_INVALID_EVENT_WAIT_LIST"},
        {CL_INVALID_EVENT, "CL_INVALID_EVENT"},
        {CL_INVALID_OPERATION, "CL_INVALID_OPERATION"},
        {CL_INVALID_GL_OBJECT, "CL_INVALID_GL_OBJECT"},
        {CL_INVALID_BUFFER_SIZE, "CL_INVALID_BUFFER_SIZE"},
        {CL_INVALID_MIP_LEVEL, "CL_INVALID_MIP_LEVEL"},
        {CL_INVALID_GLOBAL_WORK_SIZE, "CL_INVALID_GLOBAL_WORK_SIZE"},
        {CL_INVALID_PROPERTY, "CL_INVALID_PROPERTY"},
        {CL_INVALID_IMAGE_DESCRIPTOR, "CL_INVALID_IMAGE_DESCRIPTOR"},
        {CL_INVALID_COMPILER_OPTIONS, "CL_INVALID_COMPILER_OPTIONS"},
        {CL_INVALID_LINKER_OPTIONS, "CL_INVALID_LINKER_OPTIONS"},
        {CL_INVALID_DEVICE_PARTITION_COUNT, "CL_INVALID_DEVICE_PARTITION_COUNT"},
        {-1001, "CL_PLATFORM_NOT_FOUND_KHR"},
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (names[i].code == e)
            return names[i].name;
    return "unknown OpenCL error";
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    celo_vseterr(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

#define CLFAIL(e, what) fail(err, errlen, "OpenCL: %s failed: %s (%d)", what, cl_errname(e), (int)(e))

/* ---- the rule ---- */
typedef struct {
    cl_kernel kern;
    celo_clpass pi;
    cl_mem scb;  /* the packed host values (pi.npacked > 0) */
    float *scbh; /* their host copy */
    cl_uint dims;
    size_t gsz[2], lsz[2];
} clpass;

struct celo_cl_rule {
    const celo_program *P;
    celo_tape tape; /* the host part before pass 1 (runtime/tape.h), into val and sc */
    celo_state *st; /* host mirror: non-element state is kept here, element state after celo_cl_state_read */
    cl_device_id dev;
    cl_context ctx;
    cl_command_queue q;
    cl_program prog;
    int unified; /* the device shares memory with the host: g is wrapped, not copied */
    int accd;    /* partials are double */
    int64_t n, R, C, nwi, per;
    int nbuf;     /* 2 + nstate + nnodes + CELO_NFDOM (the factored tables) */
    cl_mem *buf;  /* by ABI pointer index; NULL when no kernel reads it */
    cl_mem *part; /* by node: reduction partials */
    int64_t *partlen;
    void **parthost;
    double *acc; /* combining row/column partials */
    clpass *pass;
    /* host values */
    double *val;
    float *sc;
    float **ptr;  /* host vectors, indexed like the kernel ABI (element buffers NULL) */
    float *ortho; /* staging for orthogonalization, n floats, allocated on first use */
    int started;  /* p has been uploaded */
    cl_mem gwrap; /* g of the current step (unified memory) */
    cl_mem pwrap; /* host p of the current celo_cl_step_host (unified memory) */
};

/* ---- device choice ---- */
static int pick_device(cl_device_id *out, char *err, size_t errlen)
{
    cl_uint np = 0;
    cl_int e = clGetPlatformIDs(0, NULL, &np);
    if (e != CL_SUCCESS || np == 0)
        return fail(err, errlen,
                    "OpenCL: no platform found (clGetPlatformIDs: %s); is an ICD (e.g. pocl-opencl-icd) "
                    "installed?",
                    e != CL_SUCCESS ? cl_errname(e) : "0 platforms");
    cl_platform_id *pl = calloc(np, sizeof *pl);
    if (!pl)
        return fail(err, errlen, "out of memory");
    if ((e = clGetPlatformIDs(np, pl, NULL)) != CL_SUCCESS) {
        free(pl);
        return CLFAIL(e, "clGetPlatformIDs");
    }
    cl_device_id devs[64];
    cl_uint nd = 0;
    for (cl_uint i = 0; i < np && nd < 64; i++) {
        cl_uint m = 0;
        if (clGetDeviceIDs(pl[i], CL_DEVICE_TYPE_ALL, 64 - nd, devs + nd, &m) == CL_SUCCESS)
            nd += m < 64 - nd ? m : 64 - nd;
    }
    free(pl);
    if (nd == 0)
        return fail(err, errlen, "OpenCL: no device found");
    const char *env = getenv("CELO_OPENCL_DEVICE");
    if (env && *env) {
        char *end;
        long k = strtol(env, &end, 10);
        if (*end || k < 0 || k >= (long)nd)
            return fail(err, errlen, "CELO_OPENCL_DEVICE=%s: there are %u OpenCL devices (0 to %u)", env, nd, nd - 1);
        *out = devs[k];
        return 0;
    }
    for (cl_uint i = 0; i < nd; i++) {
        cl_device_type ty = 0;
        if (clGetDeviceInfo(devs[i], CL_DEVICE_TYPE, sizeof ty, &ty, NULL) == CL_SUCCESS && (ty & CL_DEVICE_TYPE_GPU)) {
            *out = devs[i];
            return 0;
        }
    }
    *out = devs[0];
    return 0;
}

static void dev_str(cl_device_id d, cl_device_info what, char *out, size_t len)
{
    size_t got = 0;
    out[0] = 0;
    if (clGetDeviceInfo(d, what, len - 1, out, &got) != CL_SUCCESS)
        out[0] = 0;
    out[len - 1] = 0;
}

/* ---- the program, with a binary cache ---- */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t fnv1a_str(uint64_t h, const char *s)
{
    return fnv1a(h, s, strlen(s) + 1); /* with the terminator, so that fields cannot run together */
}

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long sz = ftell(f);
        if (sz > 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)sz)) &&
            fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
            free(buf);
            buf = NULL;
        }
        *len = sz > 0 ? (size_t)sz : 0;
    }
    fclose(f);
    return buf;
}

/* failures are not errors: the cache is an optimization */
static void write_atomic(const char *path, const unsigned char *data, size_t len)
{
    (void)celo_write_atomic(path, data, len, NULL, 0);
}

static int build_log(cl_program pr, cl_device_id dev, const char *name, cl_int e, char *err, size_t errlen)
{
    size_t len = 0;
    char *log = NULL;
    if (clGetProgramBuildInfo(pr, dev, CL_PROGRAM_BUILD_LOG, 0, NULL, &len) == CL_SUCCESS && len > 0 &&
        (log = malloc(len + 1)) && clGetProgramBuildInfo(pr, dev, CL_PROGRAM_BUILD_LOG, len, log, NULL) == CL_SUCCESS)
        log[len] = 0;
    else if (log)
        log[0] = 0;
    if (log && *log)
        fprintf(stderr, "celo: OpenCL build log of rule '%s':\n%s\n", name, log);
    fail(err, errlen, "OpenCL: building the kernels of rule '%s' failed: %s (%d)%s", name, cl_errname(e), (int)e,
         log && *log ? "; build log above" : "");
    free(log);
    return -1;
}

static cl_program build_program(celo_cl_rule *r, const char *src, const char *opts, char *err, size_t errlen)
{
    char name[512], ver[512], drv[512];
    dev_str(r->dev, CL_DEVICE_NAME, name, sizeof name);
    dev_str(r->dev, CL_DEVICE_VERSION, ver, sizeof ver);
    dev_str(r->dev, CL_DRIVER_VERSION, drv, sizeof drv);
    uint64_t h = 0xcbf29ce484222325ULL;
    h = fnv1a_str(h, src);
    h = fnv1a_str(h, name);
    h = fnv1a_str(h, ver);
    h = fnv1a_str(h, drv);
    h = fnv1a_str(h, opts);
    char *dir = celo_cache_dir(), *path = NULL;
    if (dir) {
        size_t len = strlen(dir) + 48;
        if ((path = malloc(len)))
            snprintf(path, len, "%s/opencl-%016llx.bin", dir, (unsigned long long)h);
        free(dir);
    }
    cl_int e;
    /* a cached binary */
    if (path) {
        size_t blen = 0;
        unsigned char *bin = read_file(path, &blen);
        if (bin && blen) {
            const unsigned char *bp = bin;
            cl_int bst = CL_SUCCESS;
            cl_program pr = clCreateProgramWithBinary(r->ctx, 1, &r->dev, &blen, &bp, &bst, &e);
            if (e == CL_SUCCESS && bst == CL_SUCCESS &&
                clBuildProgram(pr, 1, &r->dev, opts, NULL, NULL) == CL_SUCCESS) {
                free(bin);
                free(path);
                return pr;
            }
            if (e == CL_SUCCESS)
                clReleaseProgram(pr);
        }
        free(bin);
    }
    const char *s = src;
    cl_program pr = clCreateProgramWithSource(r->ctx, 1, &s, NULL, &e);
    if (e != CL_SUCCESS) {
        free(path);
        CLFAIL(e, "clCreateProgramWithSource");
        return NULL;
    }
    if ((e = clBuildProgram(pr, 1, &r->dev, opts, NULL, NULL)) != CL_SUCCESS) {
        build_log(pr, r->dev, r->P->name, e, err, errlen);
        clReleaseProgram(pr);
        free(path);
        return NULL;
    }
    if (path) {
        size_t blen = 0;
        if (clGetProgramInfo(pr, CL_PROGRAM_BINARY_SIZES, sizeof blen, &blen, NULL) == CL_SUCCESS && blen > 0) {
            unsigned char *bin = malloc(blen);
            if (bin && clGetProgramInfo(pr, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) == CL_SUCCESS)
                write_atomic(path, bin, blen);
            free(bin);
        }
        free(path);
    }
    return pr;
}

/* ---- set-up ---- */
static size_t round_up(size_t x, size_t m)
{
    return (x + m - 1) / m * m;
}

static size_t pow2_ceil(size_t x)
{
    size_t p = 1;
    while (p < x)
        p *= 2;
    return p;
}

void celo_cl_rule_free(celo_cl_rule *r)
{
    if (!r)
        return;
    const celo_program *P = r->P;
    if (r->q)
        clFinish(r->q);
    if (r->pass)
        for (int k = 0; k < P->npass; k++) {
            if (r->pass[k].kern)
                clReleaseKernel(r->pass[k].kern);
            celo_clpass_free(&r->pass[k].pi);
            if (r->pass[k].scb)
                clReleaseMemObject(r->pass[k].scb);
            free(r->pass[k].scbh);
        }
    free(r->pass);
    if (r->buf)
        for (int i = 0; i < r->nbuf; i++)
            if (r->buf[i])
                clReleaseMemObject(r->buf[i]);
    if (r->gwrap)
        clReleaseMemObject(r->gwrap);
    if (r->pwrap)
        clReleaseMemObject(r->pwrap);
    if (r->part)
        for (int j = 0; j < P->nnodes; j++)
            if (r->part[j])
                clReleaseMemObject(r->part[j]);
    if (r->parthost)
        for (int j = 0; j < P->nnodes; j++)
            free(r->parthost[j]);
    free(r->parthost);
    free(r->part);
    free(r->partlen);
    free(r->buf);
    free(r->acc);
    if (r->ptr)
        for (int j = 0; j < P->nnodes; j++)
            free(r->ptr[2 + P->nstate + j]);
    free(r->ptr);
    celo_tape_free(&r->tape);
    free(r->val);
    free(r->sc);
    free(r->ortho);
    if (r->prog)
        clReleaseProgram(r->prog);
    if (r->q)
        clReleaseCommandQueue(r->q);
    if (r->ctx)
        clReleaseContext(r->ctx);
    celo_state_free(r->st);
    free(r);
}

static int is_vec_node(const celo_node *x)
{
    return celo_dom_is_vec(x->dom) && x->op != CELO_OP_STATE;
}

/* Whether node j is the staged operand of a factored mean: the host reads it back after its pass. */
static int is_facred_operand(const celo_program *P, int j)
{
    for (int i = j + 1; i < P->nnodes; i++)
        if (celo_clplan_is_facred(P, &P->nodes[i]) && P->nodes[i].a == j)
            return 1;
    return 0;
}

celo_cl_rule *celo_cl_rule_new(const celo_program *P, char *src, int ndim, const int64_t *shape, char *err,
                               size_t errlen)
{
    if (!src) {
        fail(err, errlen, "OpenCL: no kernel source for rule '%s'", P ? P->name : "?");
        return NULL;
    }
    celo_cl_rule *r = calloc(1, sizeof *r);
    if (!r) {
        free(src);
        fail(err, errlen, "out of memory");
        return NULL;
    }
    r->P = P;
    r->st = celo_state_new(P, ndim, shape);
    if (!r->st) {
        free(src);
        free(r);
        fail(err, errlen, "OpenCL: bad tensor shape (%d dimensions)", ndim);
        return NULL;
    }
    int nn = P->nnodes, ns = P->nstate;
    r->n = r->st->n;
    r->R = r->st->R;
    r->C = r->st->C;
    r->nbuf = 2 + ns + nn + CELO_NFDOM;
    r->buf = calloc((size_t)r->nbuf, sizeof *r->buf);
    r->part = calloc((size_t)nn + 1, sizeof *r->part);
    r->partlen = calloc((size_t)nn + 1, sizeof *r->partlen);
    r->parthost = calloc((size_t)nn + 1, sizeof *r->parthost);
    r->pass = calloc((size_t)P->npass + 1, sizeof *r->pass);
    r->val = calloc((size_t)nn + 1, sizeof *r->val);
    r->sc = calloc((size_t)nn + 1, sizeof *r->sc);
    r->ptr = calloc((size_t)r->nbuf, sizeof *r->ptr);
    int64_t maxrc = (r->R > r->C ? r->R : r->C) + 1;
    r->acc = calloc((size_t)maxrc, sizeof *r->acc);
    int oom = !r->buf || !r->part || !r->partlen || !r->parthost || !r->pass || !r->val || !r->sc || !r->ptr || !r->acc;
    oom = oom || celo_tape_build(P, &r->tape, r->val, r->sc);
    for (int s = 0; s < ns && !oom; s++)
        r->ptr[2 + s] = r->st->slot[s];
    for (int j = 0; j < nn && !oom; j++)
        if (is_vec_node(&P->nodes[j]) || is_facred_operand(P, j)) {
            int64_t len = is_vec_node(&P->nodes[j]) ? r->st->dlen[P->nodes[j].dom] : r->n;
            if (!(r->ptr[2 + ns + j] = calloc((size_t)len + 1, sizeof(float))))
                oom = 1;
        }
    if (oom) {
        free(src);
        celo_cl_rule_free(r);
        fail(err, errlen, "out of memory");
        return NULL;
    }

    /* device, context, queue */
    cl_int e;
    if (pick_device(&r->dev, err, errlen)) {
        free(src);
        celo_cl_rule_free(r);
        return NULL;
    }
    r->ctx = clCreateContext(NULL, 1, &r->dev, NULL, NULL, &e);
    if (e != CL_SUCCESS) {
        r->ctx = NULL;
        free(src);
        celo_cl_rule_free(r);
        CLFAIL(e, "clCreateContext");
        return NULL;
    }
    r->q = clCreateCommandQueue(r->ctx, r->dev, 0, &e);
    if (e != CL_SUCCESS) {
        r->q = NULL;
        free(src);
        celo_cl_rule_free(r);
        CLFAIL(e, "clCreateCommandQueue");
        return NULL;
    }
    cl_device_type dtype = 0;
    cl_uint cus = 1;
    size_t maxwg = 1;
    cl_bool unified = CL_FALSE;
    cl_device_fp_config fp32 = 0, fp64 = 0;
    size_t maxparam = 1024;
    char cver[256], ext[8192];
    clGetDeviceInfo(r->dev, CL_DEVICE_TYPE, sizeof dtype, &dtype, NULL);
    clGetDeviceInfo(r->dev, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cus, &cus, NULL);
    clGetDeviceInfo(r->dev, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof maxwg, &maxwg, NULL);
    clGetDeviceInfo(r->dev, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof unified, &unified, NULL);
    clGetDeviceInfo(r->dev, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp32, &fp32, NULL);
    clGetDeviceInfo(r->dev, CL_DEVICE_MAX_PARAMETER_SIZE, sizeof maxparam, &maxparam, NULL);
    if (clGetDeviceInfo(r->dev, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof fp64, &fp64, NULL) != CL_SUCCESS)
        fp64 = 0;
    dev_str(r->dev, CL_DEVICE_OPENCL_C_VERSION, cver, sizeof cver);
    dev_str(r->dev, CL_DEVICE_EXTENSIONS, ext, sizeof ext);
    /* work layout: CPU (few large chunks, 8 elements per work-item) or GPU; CELO_OPENCL_LAYOUT=cpu|gpu and
     * CELO_OPENCL_EPW=1|8 override, so that either layout can be tested on any device */
    const char *lay = getenv("CELO_OPENCL_LAYOUT");
    int cpu = lay && !strcmp(lay, "gpu") ? 0 : lay && !strcmp(lay, "cpu") ? 1 : (dtype & CL_DEVICE_TYPE_CPU) != 0;
    r->unified = unified == CL_TRUE;
    const char *f64 = getenv("CELO_OPENCL_FP64");
    r->accd = (fp64 != 0 || strstr(ext, "cl_khr_fp64") != NULL) && !(f64 && !strcmp(f64, "0"));
    if (cus < 1)
        cus = 1;

    char opts[256];
    /* elements per work-item of the element-wise passes: 8 (float8) on CPUs, 1 on GPUs */
    const char *epw_env = getenv("CELO_OPENCL_EPW");
    int epw = epw_env && *epw_env ? (atoi(epw_env) == 8 ? 8 : 1) : cpu ? 8 : 1;
    snprintf(opts, sizeof opts, "%s-DCELO_ACC_DOUBLE=%d -DCELO_EPW=%d%s",
             strncmp(cver, "OpenCL C 1.0", 12) && strncmp(cver, "OpenCL C 1.1", 12) ? "-cl-std=CL1.2 " : "", r->accd,
             epw, (fp32 & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) ? " -cl-fp32-correctly-rounded-divide-sqrt" : "");
    r->prog = build_program(r, src, opts, err, errlen);
    free(src);
    if (!r->prog) {
        celo_cl_rule_free(r);
        return NULL;
    }

    /* work decomposition of the chunked passes: a few chunks per compute unit on a CPU, many on a GPU; column
     * partials (one row of C per work-item) bounded to 4M entries */
    int64_t n = r->n, R = r->R, C = r->C;
    size_t clws = cpu ? 1 : 64;
    int64_t nwi = cpu ? 4 * (int64_t)cus : 64 * (int64_t)cus;
    int64_t cap = (n + 4095) / 4096;
    if (nwi > cap)
        nwi = cap;
    for (int j = 0; j < nn; j++) {
        const celo_node *x = &P->nodes[j];
        if (celo_clplan_is_red(P, x) && x->dom == CELO_COL && C > 0 && nwi > ((int64_t)1 << 22) / C)
            nwi = ((int64_t)1 << 22) / C;
    }
    if (nwi < 1)
        nwi = 1;
    if ((size_t)nwi > clws)
        nwi = (int64_t)round_up((size_t)nwi, clws);
    else
        clws = (size_t)nwi;
    int64_t per = n ? (n + nwi - 1) / nwi : 0;
    per = (per + 63) & ~(int64_t)63;
    r->nwi = nwi;
    r->per = per;

    /* passes: kernels, arguments, work sizes */
    for (int k = 1; k <= P->npass; k++) {
        clpass *cp = &r->pass[k - 1];
        if (celo_clpass_analyse(P, k, &cp->pi)) {
            celo_cl_rule_free(r);
            fail(err, errlen, "out of memory");
            return NULL;
        }
        char kname[32];
        snprintf(kname, sizeof kname, "celo_pass%d", k);
        cp->kern = clCreateKernel(r->prog, kname, &e);
        if (e != CL_SUCCESS) {
            cp->kern = NULL;
            celo_cl_rule_free(r);
            fail(err, errlen, "OpenCL: clCreateKernel(%s) failed: %s (%d)", kname, cl_errname(e), (int)e);
            return NULL;
        }
        if (cp->pi.npacked) {
            cp->scbh = malloc(sizeof *cp->scbh * (size_t)cp->pi.npacked);
            cp->scb = clCreateBuffer(r->ctx, CL_MEM_READ_ONLY, sizeof(float) * (size_t)cp->pi.npacked, NULL, &e);
            if (e != CL_SUCCESS || !cp->scbh) {
                cp->scb = e == CL_SUCCESS ? cp->scb : NULL;
                celo_cl_rule_free(r);
                fail(err, errlen, "OpenCL: the packed host values of pass %d: out of memory", k);
                return NULL;
            }
        }
        size_t psize = 4 * sizeof(cl_long);
        for (int a = 0; a < cp->pi.nargs; a++)
            psize += cp->pi.args[a].kind == CELO_CLARG_SC ? sizeof(cl_float) : sizeof(cl_mem);
        if (psize > maxparam) {
            celo_cl_rule_free(r);
            fail(err, errlen, "OpenCL: pass %d of rule '%s' needs %zu bytes of kernel arguments; the device allows %zu",
                 k, P->name, psize, maxparam);
            return NULL;
        }
        size_t kwg = maxwg;
        if (clGetKernelWorkGroupInfo(cp->kern, r->dev, CL_KERNEL_WORK_GROUP_SIZE, sizeof kwg, &kwg, NULL) !=
                CL_SUCCESS ||
            kwg < 1)
            kwg = maxwg;
        if (cp->pi.chunked) {
            cp->dims = 1;
            cp->lsz[0] = clws <= kwg ? clws : 1;
            cp->gsz[0] = round_up((size_t)nwi, cp->lsz[0]);
        } else {
            size_t lws = cpu ? (epw == 8 ? 512 : 4096) : 256;
            if (lws > kwg)
                lws = kwg;
            if (lws > maxwg)
                lws = maxwg;
            if (!cp->pi.nested && epw == 8) {
                /* one chunk of `per` elements per work-item, as in the chunked passes */
                cp->dims = 1;
                cp->lsz[0] = clws <= kwg ? clws : 1;
                cp->gsz[0] = round_up((size_t)nwi, cp->lsz[0]);
            } else if (!cp->pi.nested) {
                cp->dims = 1;
                size_t items = ((size_t)n + (size_t)epw - 1) / (size_t)epw;
                size_t l = lws < pow2_ceil(items) ? lws : pow2_ceil(items);
                cp->lsz[0] = l;
                cp->gsz[0] = round_up(items, l);
            } else {
                cp->dims = 2;
                size_t cols = ((size_t)C + (size_t)epw - 1) / (size_t)epw;
                size_t l0 = lws < pow2_ceil(cols) ? lws : pow2_ceil(cols);
                size_t l1 = lws / l0;
                if (l1 > pow2_ceil((size_t)R))
                    l1 = pow2_ceil((size_t)R);
                if (l1 < 1)
                    l1 = 1;
                cp->lsz[0] = l0;
                cp->lsz[1] = l1;
                cp->gsz[0] = round_up(cols, l0);
                cp->gsz[1] = round_up((size_t)R, l1);
            }
        }
        /* buffers and partials it needs */
        for (int a = 0; a < cp->pi.nargs; a++) {
            const celo_clarg *ar = &cp->pi.args[a];
            if (ar->kind == CELO_CLARG_BUF) {
                int idx = ar->idx;
                if (r->buf[idx] || (idx == 1 && r->unified))
                    continue;
                int64_t len;
                const void *init = NULL; /* a factored table: written once, here */
                if (idx < 2)
                    len = n;
                else if (idx < 2 + ns)
                    len = r->st->slotlen[idx - 2];
                else if (idx >= 2 + ns + nn) {
                    len = R + 1;
                    init = r->st->ftab[idx - 2 - ns - nn];
                } else {
                    const celo_node *x = &P->nodes[idx - 2 - ns];
                    len = celo_clplan_staged(x) ? n : r->st->dlen[x->dom];
                }
                r->buf[idx] = clCreateBuffer(
                    r->ctx, idx == 1 || init ? CL_MEM_READ_ONLY | (init ? CL_MEM_COPY_HOST_PTR : 0) : CL_MEM_READ_WRITE,
                    (size_t)(len > 0 ? len : 1) * sizeof(float), (void *)init, &e);
                if (e != CL_SUCCESS) {
                    r->buf[idx] = NULL;
                    celo_cl_rule_free(r);
                    CLFAIL(e, "clCreateBuffer");
                    return NULL;
                }
            } else if (ar->kind == CELO_CLARG_PART) {
                int j = ar->idx;
                const celo_node *x = &P->nodes[j];
                int64_t len = x->dom == CELO_SCALAR ? nwi : x->dom == CELO_ROW ? R + 2 * nwi : nwi * C;
                r->partlen[j] = len;
                size_t bytes = (size_t)(len > 0 ? len : 1) * (r->accd ? sizeof(double) : sizeof(float));
                /* a COL partial is followed by the work-items' float scratch rows (see compiler/opencl.c) */
                size_t dbytes = bytes + (x->dom == CELO_COL ? (size_t)(nwi * C) * sizeof(float) : 0);
                r->part[j] = clCreateBuffer(r->ctx, CL_MEM_READ_WRITE, dbytes, NULL, &e);
                if (e != CL_SUCCESS) {
                    r->part[j] = NULL;
                    celo_cl_rule_free(r);
                    CLFAIL(e, "clCreateBuffer");
                    return NULL;
                }
                if (!(r->parthost[j] = malloc(bytes))) {
                    celo_cl_rule_free(r);
                    fail(err, errlen, "out of memory");
                    return NULL;
                }
            }
        }
    }
    /* p always has a device buffer (it is uploaded once and read back on request) */
    if (!r->buf[0]) {
        r->buf[0] = clCreateBuffer(r->ctx, CL_MEM_READ_WRITE, (size_t)(n > 0 ? n : 1) * sizeof(float), NULL, &e);
        if (e != CL_SUCCESS) {
            r->buf[0] = NULL;
            celo_cl_rule_free(r);
            CLFAIL(e, "clCreateBuffer");
            return NULL;
        }
    }
    return r;
}

/* ---- host values: the same computations as celo_step's, by the same function ---- */
static void eval_small(celo_cl_rule *r, int j, int64_t t, const float *hp)
{
    celo_eval_small(r->P, r->st, j, t, hp, r->val, r->sc, r->ptr);
}

static int upload_vec(celo_cl_rule *r, int idx, int64_t len, char *err, size_t errlen)
{
    if (!r->buf[idx] || len <= 0)
        return 0;
    cl_int e =
        clEnqueueWriteBuffer(r->q, r->buf[idx], CL_TRUE, 0, (size_t)len * sizeof(float), r->ptr[idx], 0, NULL, NULL);
    return e == CL_SUCCESS ? 0 : CLFAIL(e, "clEnqueueWriteBuffer");
}

static int upload_stage(celo_cl_rule *r, int k, char *err, size_t errlen)
{
    const celo_program *P = r->P;
    for (int j = 0; j < P->nnodes; j++) {
        const celo_node *x = &P->nodes[j];
        if (is_vec_node(x) && x->pass == k && upload_vec(r, 2 + P->nstate + j, r->st->dlen[x->dom], err, errlen))
            return -1;
    }
    return 0;
}

static double combine(int op, double acc, double e)
{
    return op == CELO_OP_SUM ? acc + e : (e > acc || isnan(e) ? e : acc);
}

static double part_at(const celo_cl_rule *r, int j, int64_t q)
{
    return r->accd ? ((const double *)r->parthost[j])[q] : (double)((const float *)r->parthost[j])[q];
}

/* Reads back and combines, in work-item order, the partials of the reductions computed by pass k. */
static int combine_pass(celo_cl_rule *r, int k, char *err, size_t errlen)
{
    const celo_program *P = r->P;
    int nn = P->nnodes, ns = P->nstate, any = 0;
    int64_t n = r->n, R = r->R, C = r->C, nwi = r->nwi, per = r->per;
    size_t esz = r->accd ? sizeof(double) : sizeof(float);
    for (int j = 0; j < nn; j++) {
        const celo_node *x = &P->nodes[j];
        if (!celo_clplan_is_red(P, x) || x->pass != k || n == 0)
            continue;
        cl_int e = clEnqueueReadBuffer(r->q, r->part[j], CL_FALSE, 0, (size_t)r->partlen[j] * esz, r->parthost[j], 0,
                                       NULL, NULL);
        if (e != CL_SUCCESS)
            return CLFAIL(e, "clEnqueueReadBuffer");
        any = 1;
    }
    if (any) {
        cl_int e = clFinish(r->q);
        if (e != CL_SUCCESS)
            return CLFAIL(e, "clFinish");
    }
    for (int j = 0; j < nn; j++) {
        const celo_node *x = &P->nodes[j];
        if (!celo_clplan_is_red(P, x) || x->pass != k)
            continue;
        int op = x->op;
        double id = op == CELO_OP_SUM ? 0.0 : -INFINITY;
        if (x->dom == CELO_SCALAR) {
            double acc = id;
            if (n > 0) {
                acc = part_at(r, j, 0);
                for (int64_t w = 1; w < nwi; w++)
                    acc = combine(op, acc, part_at(r, j, w));
            }
            r->val[j] = acc;
            r->sc[j] = (float)acc;
        } else if (x->dom == CELO_ROW) {
            for (int64_t q = 0; q < R; q++)
                r->acc[q] = id;
            for (int64_t w = 0; w < nwi && n > 0; w++) {
                int64_t i0 = w * per, i1 = i0 + per < n ? i0 + per : n;
                if (i0 >= i1)
                    continue;
                for (int64_t q = i0 / C; q * C < i1; q++) {
                    int64_t rb = q * C, cb = i0 - rb > 0 ? i0 - rb : 0, ce = i1 - rb < C ? i1 - rb : C;
                    double v = cb == 0 && ce == C ? part_at(r, j, q)
                               : q == i0 / C      ? part_at(r, j, R + 2 * w)
                                                  : part_at(r, j, R + 2 * w + 1);
                    r->acc[q] = combine(op, r->acc[q], v);
                }
            }
            float *out = r->ptr[2 + ns + j];
            for (int64_t q = 0; q < R; q++)
                out[q] = (float)r->acc[q];
        } else {
            float *out = r->ptr[2 + ns + j];
            for (int64_t c = 0; c < C; c++) {
                double acc = id;
                if (n > 0) {
                    acc = part_at(r, j, c);
                    for (int64_t w = 1; w < nwi; w++)
                        acc = combine(op, acc, part_at(r, j, w * C + c));
                }
                out[c] = (float)acc;
            }
        }
    }
    return 0;
}

static int orthogonalize_pass(celo_cl_rule *r, int k, char *err, size_t errlen)
{
    const celo_program *P = r->P;
    for (int j = 0; j < P->nnodes; j++) {
        const celo_node *x = &P->nodes[j];
        if (x->op != CELO_OP_ORTHO || x->pass != k || r->n == 0)
            continue;
        if (!r->ortho && !(r->ortho = malloc((size_t)r->n * sizeof(float))))
            return fail(err, errlen, "out of memory");
        cl_mem b = r->buf[2 + P->nstate + j];
        if (!b)
            continue; /* nothing reads it */
        size_t bytes = (size_t)r->n * sizeof(float);
        cl_int e = clEnqueueReadBuffer(r->q, b, CL_TRUE, 0, bytes, r->ortho, 0, NULL, NULL);
        if (e != CL_SUCCESS)
            return CLFAIL(e, "clEnqueueReadBuffer");
        if (celo_orthogonalize_node(r->ortho, r->st, x->aux))
            return fail(err, errlen, "orthogonalize: out of memory");
        if ((e = clEnqueueWriteBuffer(r->q, b, CL_TRUE, 0, bytes, r->ortho, 0, NULL, NULL)) != CL_SUCCESS)
            return CLFAIL(e, "clEnqueueWriteBuffer");
    }
    return 0;
}

/* The operands of the factored means after pass k, read back for the host to reduce (celo_eval_small), as an
 * orthogonalization reads its matrix. */
static int facstage_pass(celo_cl_rule *r, int k, char *err, size_t errlen)
{
    const celo_program *P = r->P;
    for (int j = 0; j < P->nnodes; j++) {
        const celo_node *x = &P->nodes[j];
        if (!celo_clplan_is_facred(P, x) || x->pass != k || r->n == 0)
            continue;
        int a = x->a, idx = 2 + P->nstate + a;
        int dup = 0; /* one read per staged value, however many means read it */
        for (int i = 0; i < j; i++)
            dup |= celo_clplan_is_facred(P, &P->nodes[i]) && P->nodes[i].pass == k && P->nodes[i].a == a;
        if (dup || !r->buf[idx] || !r->ptr[idx])
            continue;
        cl_int e = clEnqueueReadBuffer(r->q, r->buf[idx], CL_TRUE, 0, (size_t)r->n * sizeof(float), r->ptr[idx], 0,
                                       NULL, NULL);
        if (e != CL_SUCCESS)
            return CLFAIL(e, "clEnqueueReadBuffer");
    }
    return 0;
}

static int run_pass(celo_cl_rule *r, int k, char *err, size_t errlen)
{
    clpass *cp = &r->pass[k - 1];
    cl_kernel kn = cp->kern;
    cl_long fixed[4] = {r->n, r->R, r->C, r->per};
    cl_int e = CL_SUCCESS;
    for (cl_uint a = 0; a < 4 && e == CL_SUCCESS; a++)
        e = clSetKernelArg(kn, a, sizeof(cl_long), &fixed[a]);
    for (int a = 0; a < cp->pi.nargs && e == CL_SUCCESS; a++) {
        const celo_clarg *ar = &cp->pi.args[a];
        cl_uint ai = (cl_uint)(4 + a);
        if (ar->kind == CELO_CLARG_SC)
            e = clSetKernelArg(kn, ai, sizeof(cl_float), &r->sc[ar->idx]);
        else if (ar->kind == CELO_CLARG_SCBUF) {
            for (int q = 0; q < cp->pi.npacked; q++)
                cp->scbh[q] = r->sc[cp->pi.packed[q]];
            /* blocking: scbh is rewritten by the next step */
            e = clEnqueueWriteBuffer(r->q, cp->scb, CL_TRUE, 0, sizeof(float) * (size_t)cp->pi.npacked, cp->scbh, 0,
                                     NULL, NULL);
            if (e == CL_SUCCESS)
                e = clSetKernelArg(kn, ai, sizeof(cl_mem), &cp->scb);
        } else if (ar->kind == CELO_CLARG_PART)
            e = clSetKernelArg(kn, ai, sizeof(cl_mem), &r->part[ar->idx]);
        else {
            cl_mem m = ar->idx == 1 && r->unified ? r->gwrap : ar->idx == 0 && r->pwrap ? r->pwrap : r->buf[ar->idx];
            e = clSetKernelArg(kn, ai, sizeof(cl_mem), &m);
        }
    }
    if (e != CL_SUCCESS)
        return CLFAIL(e, "clSetKernelArg");
    if (r->n == 0)
        return 0;
    e = clEnqueueNDRangeKernel(r->q, kn, cp->dims, NULL, cp->gsz, cp->lsz, 0, NULL, NULL);
    if (e != CL_SUCCESS) {
        char what[64];
        snprintf(what, sizeof what, "launching pass %d (clEnqueueNDRangeKernel)", k);
        return CLFAIL(e, what);
    }
    return 0;
}

/* A step; host_p: p lives in host memory (celo_cl_step_host), else in buf[0] (celo_cl_step). */
static int step(celo_cl_rule *r, float *p, const float *g, const float *hp, int64_t t, int read_back, int host_p,
                char *err, size_t errlen)
{
    const celo_program *P = r->P;
    celo_state *st = r->st;
    int nn = P->nnodes, ns = P->nstate;
    size_t bytes = (size_t)r->n * sizeof(float);
    cl_int e;
    if (celo_theta_ready(P, st, err, errlen))
        return -1;
    if (host_p && r->unified && r->n > 0) {
        r->pwrap = clCreateBuffer(r->ctx, CL_MEM_READ_WRITE | CL_MEM_USE_HOST_PTR, bytes, p, &e);
        if (e != CL_SUCCESS) {
            r->pwrap = NULL;
            return CLFAIL(e, "wrapping p (clCreateBuffer)");
        }
    } else if (host_p)
        r->started = 0;
    if (!r->started && !r->pwrap && r->n > 0) {
        if ((e = clEnqueueWriteBuffer(r->q, r->buf[0], CL_TRUE, 0, bytes, p, 0, NULL, NULL)) != CL_SUCCESS)
            return CLFAIL(e, "uploading p (clEnqueueWriteBuffer)");
    }
    r->started = 1;
    if (r->n > 0) {
        if (r->unified) {
            if (r->gwrap)
                clReleaseMemObject(r->gwrap); /* freed once the commands using it are done */
            r->gwrap = clCreateBuffer(r->ctx, CL_MEM_READ_ONLY | CL_MEM_USE_HOST_PTR, bytes, (void *)g, &e);
            if (e != CL_SUCCESS) {
                r->gwrap = NULL;
                return CLFAIL(e, "wrapping g (clCreateBuffer)");
            }
        } else if (r->buf[1] &&
                   (e = clEnqueueWriteBuffer(r->q, r->buf[1], CL_FALSE, 0, bytes, g, 0, NULL, NULL)) != CL_SUCCESS)
            return CLFAIL(e, "uploading g (clEnqueueWriteBuffer)");
    }

    /* host values (and stage-0 per-tensor values); on the first step, the initial state */
    celo_tape_run(P, st, &r->tape, 0, r->tape.n0, t, hp, r->val, r->sc, r->ptr);
    if (st->t == 0)
        for (int s = 0; s < ns; s++) {
            float v = r->sc[P->state[s].init];
            cl_mem b = r->buf[2 + s];
            if (P->state[s].dom == CELO_ELEM && b) {
                if (r->n > 0 && (e = clEnqueueFillBuffer(r->q, b, &v, sizeof v, 0, bytes, 0, NULL, NULL)) != CL_SUCCESS)
                    return CLFAIL(e, "initializing state (clEnqueueFillBuffer)");
                continue;
            }
            for (int64_t q = 0; q < st->slotlen[s]; q++)
                st->slot[s][q] = v;
            if (P->state[s].dom != CELO_ELEM && upload_vec(r, 2 + s, st->slotlen[s], err, errlen))
                return -1;
        }
    celo_tape_run(P, st, &r->tape, r->tape.n0, r->tape.n, t, hp, r->val, r->sc, r->ptr);
    if (upload_stage(r, 0, err, errlen))
        return -1;

    for (int k = 1; k <= P->npass; k++) {
        if (run_pass(r, k, err, errlen) || combine_pass(r, k, err, errlen) || orthogonalize_pass(r, k, err, errlen) ||
            facstage_pass(r, k, err, errlen))
            return -1;
        for (int j = 0; j < nn; j++) {
            const celo_node *x = &P->nodes[j];
            if (x->dom != CELO_ELEM && x->pass == k && !celo_clplan_is_red(P, x))
                eval_small(r, j, t, hp);
        }
        if (upload_stage(r, k, err, errlen))
            return -1;
    }
    /* commit the state that is not element-wise */
    for (int s = 0; s < ns; s++) {
        if (!celo_commit_slot(P, st, s, r->sc, r->ptr))
            continue;
        if (upload_vec(r, 2 + s, st->slotlen[s], err, errlen))
            return -1;
    }
    st->t = t;
    if (r->pwrap) {
        /* a blocking map waits for the kernels and makes the host's p current (no copy where the device
         * wrote it in place) */
        void *m = clEnqueueMapBuffer(r->q, r->pwrap, CL_TRUE, CL_MAP_READ, 0, bytes, 0, NULL, NULL, &e);
        if (e == CL_SUCCESS)
            e = clEnqueueUnmapMemObject(r->q, r->pwrap, m, 0, NULL, NULL);
        if (e == CL_SUCCESS)
            e = clFinish(r->q);
        return e == CL_SUCCESS ? 0 : CLFAIL(e, "reading p back (clEnqueueMapBuffer)");
    }
    if ((read_back || host_p) && r->n > 0) {
        if ((e = clEnqueueReadBuffer(r->q, r->buf[0], CL_TRUE, 0, bytes, p, 0, NULL, NULL)) != CL_SUCCESS)
            return CLFAIL(e, "reading p back (clEnqueueReadBuffer)");
    }
    return 0;
}

int celo_cl_step(celo_cl_rule *r, float *p, const float *g, const float *hp, int64_t t, int read_back, char *err,
                 size_t errlen)
{
    return step(r, p, g, hp, t, read_back, 0, err, errlen);
}

int celo_cl_step_host(celo_cl_rule *r, float *p, const float *g, const float *hp, int64_t t, char *err, size_t errlen)
{
    int rc = step(r, p, g, hp, t, 0, 1, err, errlen);
    if (r->pwrap) { /* released once its commands are done: the host owns p between steps */
        clReleaseMemObject(r->pwrap);
        r->pwrap = NULL;
    }
    return rc;
}

int celo_cl_finish(celo_cl_rule *r, char *err, size_t errlen)
{
    cl_int e = clFinish(r->q);
    return e == CL_SUCCESS ? 0 : CLFAIL(e, "clFinish");
}

int celo_cl_state_read(celo_cl_rule *r, char *err, size_t errlen)
{
    const celo_program *P = r->P;
    if (!r->started || r->n == 0)
        return celo_cl_finish(r, err, errlen);
    for (int s = 0; s < P->nstate; s++) {
        if (P->state[s].dom != CELO_ELEM || !r->buf[2 + s])
            continue;
        cl_int e = clEnqueueReadBuffer(r->q, r->buf[2 + s], CL_TRUE, 0, (size_t)r->n * sizeof(float), r->st->slot[s], 0,
                                       NULL, NULL);
        if (e != CL_SUCCESS)
            return CLFAIL(e, "reading state (clEnqueueReadBuffer)");
    }
    return 0;
}

celo_state *celo_cl_rule_state(celo_cl_rule *r)
{
    return r->st;
}

int celo_cl_state_write(celo_cl_rule *r, char *err, size_t errlen)
{
    const celo_program *P = r->P;
    for (int s = 0; s < P->nstate; s++) {
        if (!r->buf[2 + s] || r->st->slotlen[s] <= 0)
            continue;
        /* element-wise slots are device-only until read; the others are uploaded from the host mirror */
        cl_int e = clEnqueueWriteBuffer(r->q, r->buf[2 + s], CL_TRUE, 0, (size_t)r->st->slotlen[s] * sizeof(float),
                                        r->st->slot[s], 0, NULL, NULL);
        if (e != CL_SUCCESS)
            return CLFAIL(e, "writing state (clEnqueueWriteBuffer)");
    }
    return 0;
}

int celo_cl_available(char *err, size_t errlen)
{
    cl_device_id d;
    return pick_device(&d, err, errlen);
}

void celo_cl_rule_set_num_steps(celo_cl_rule *r, int64_t num_steps)
{
    r->st->num_steps = num_steps; /* the host part, where num_steps is read, runs on this mirror */
}

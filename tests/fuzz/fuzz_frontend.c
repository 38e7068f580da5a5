/* fuzz_frontend.c — libFuzzer target for the front end: the input is the text of a .celo file. It is parsed
 * (with the stdlib, as `celo check` does) and every optimizer it defines is checked, lowered and fused with
 * rule_compile, every transform on its own with rule_compile_transform. Any crash, sanitizer report, leak or hang is a
 * bug; diagnostics are expected and ignored.
 *
 * Built and run by tests/fuzz/run.sh. To replay one input with its diagnostics visible:
 *     build/fuzz/fuzz_frontend CRASH-FILE
 * The stdlib is read from $CELO_STDLIB, else ./stdlib (run from the repository root). */
#include "diag.h"
#include "rules.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The CLI refuses files with NUL bytes before parsing ("not a text file"): so do we. */
    if (memchr(data, 0, size))
        return 0;
    /* Imports are resolved against the file's directory, which does not exist here, so a relative import
     * fails cleanly. An absolute one would read any file on this machine (/dev/zero never ends): skip those. */
    for (size_t i = 0; i + 1 < size; i++)
        if (data[i] == '"' && data[i + 1] == '/')
            return 0;
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    const char *std = getenv("CELO_STDLIB");
    module m;
    diag_count = 0;
    int nerr = module_load_string(&m, "/nonexistent-celo-fuzz/input.celo", text, std && *std ? std : "stdlib");
    if (!nerr && !diag_count)
        for (def *d = m.defs; d; d = d->next)
            if (d->kind == DEF_OPTIMIZER && module_is_user(&m, d))
                rule_free(rule_compile(&m, d));
            else if (d->kind == DEF_TRANSFORM && module_is_user(&m, d))
                rule_free(rule_compile_transform(&m, d));
    module_free(&m);
    free(text);
    return 0;
}

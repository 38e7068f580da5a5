# celo — one entry point: make, make test, make demo, make bench, make fuzz, make format-check.
# `make test` and `make demo` install what is missing first (scripts/install-deps.sh).

LLVM_CONFIG ?= llvm-config-19
CC ?= gcc
BUILD ?= build
SAN ?= 0

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wwrite-strings -Wformat=2 -Wundef
ifeq ($(SAN),1)
  BUILD := build-san
  SANFLAGS := -O1 -fsanitize=address,undefined -fno-sanitize=float-divide-by-zero -fno-sanitize-recover=all -fno-omit-frame-pointer
  LDSAN := -fsanitize=address,undefined
endif
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -O2 -g -fopenmp -Igrammar -Icompiler -Iruntime -I$(BUILD)/gen $(SANFLAGS)
OPENBLAS_DIR := /usr/lib/x86_64-linux-gnu/openblas-openmp
OPENBLAS_INC := /usr/include/x86_64-linux-gnu/openblas-openmp
LLVM_CFLAGS = $(shell $(LLVM_CONFIG) --cflags 2>/dev/null | sed 's/-std=[^ ]*//')
# libLLVM by its full path, not -L its directory: that directory also holds LLVM's OpenMP runtime under the name
# libgomp.so (libomp-19-dev), which -fopenmp would then link in place of GCC's libgomp, the runtime OpenBLAS uses:
# two OpenMP runtimes with two thread pools in one process.
LLVM_LIBS = $(shell $(LLVM_CONFIG) --libfiles 2>/dev/null)

# Open MPI (libopenmpi-dev): runs over the processes of mpirun (runtime/ranks.h). Its flags from its compiler
# wrapper; without it celo builds with one process only (ranks.c's stubs), and mpirun is refused with one line.
MPI_CFLAGS := $(shell mpicc --showme:compile 2>/dev/null)
MPI_LIBS := $(shell mpicc --showme:link 2>/dev/null)
ifneq ($(strip $(MPI_LIBS)),)
  MPI_CFLAGS += -DCELO_HAVE_MPI
endif

CFLAGS := $(CFLAGS_BASE) $(WARN) -I$(OPENBLAS_INC) $(MPI_CFLAGS) -DCELO_OPENBLAS_DIR='"$(OPENBLAS_DIR)"' \
          -DCELO_LINK_EXTRA='"$(MPI_LIBS) $(LDSAN)"'
# Generated scanner/parser: relaxed warnings (flex output trips -Wshadow and friends).
GEN_CFLAGS := $(CFLAGS_BASE) -Wno-unused-function -Wno-sign-compare
RT_LIBS := -L$(OPENBLAS_DIR) -Wl,-rpath,$(OPENBLAS_DIR) -lopenblas -lOpenCL -lz -lm -fopenmp $(MPI_LIBS) $(LDSAN)

RT_SRC := $(wildcard runtime/*.c runtime/nn/*.c runtime/data/*.c)
CC_SRC := $(filter-out compiler/main.c,$(wildcard compiler/*.c))
RT_OBJ := $(RT_SRC:%.c=$(BUILD)/%.o)
CC_OBJ := $(CC_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/lexer.o $(BUILD)/gen/parser.o

.PHONY: all deps test demo bench fuzz format format-check clean
all: $(BUILD)/celo

deps:
	@bash scripts/install-deps.sh

$(BUILD)/gen/parser.c $(BUILD)/gen/parser.h: grammar/parser.y
	@mkdir -p $(BUILD)/gen
	bison -Wall -Werror --defines=$(BUILD)/gen/parser.h -o $(BUILD)/gen/parser.c $<

$(BUILD)/gen/lexer.c $(BUILD)/gen/lexer.h: grammar/lexer.l $(BUILD)/gen/parser.h
	@mkdir -p $(BUILD)/gen
	flex --header-file=$(BUILD)/gen/lexer.h -o $(BUILD)/gen/lexer.c $<

$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	$(CC) $(GEN_CFLAGS) -c $< -o $@

$(BUILD)/compiler/llvm.o: compiler/llvm.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LLVM_CFLAGS) -MMD -c $< -o $@

$(BUILD)/%.o: %.c $(BUILD)/gen/parser.h $(BUILD)/gen/lexer.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -c $< -o $@

$(BUILD)/libcelort.a: $(RT_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/libceloc.a: $(CC_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/celo: $(BUILD)/compiler/main.o $(BUILD)/libceloc.a $(BUILD)/libcelort.a
	$(CC) -o $@ $^ $(LLVM_LIBS) $(RT_LIBS)

# ---- tests ----
UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOLS_BIN := $(patsubst tests/tools/%.c,$(BUILD)/tests/tools/%,$(wildcard tests/tools/*.c))

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libceloc.a $(BUILD)/libcelort.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LLVM_CFLAGS) -o $@ $^ $(LLVM_LIBS) $(RT_LIBS)

$(BUILD)/tests/tools/%: tests/tools/%.c $(BUILD)/libcelort.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(RT_LIBS)

test: deps
	@$(MAKE) --no-print-directory $(BUILD)/celo $(UNIT_BIN) $(TOOLS_BIN)
	@BUILD=$(BUILD) SAN=$(SAN) bash tests/run.sh

demo: deps
	@$(MAKE) --no-print-directory $(BUILD)/celo
	@bash examples/demo.sh

bench: deps
	@$(MAKE) --no-print-directory $(BUILD)/celo
	@bash bench/optim/run.sh
	@bash bench/train/run.sh
	@bash bench/runs/run.sh
	@bash bench/learned/run.sh
	@bash bench/meta/run.sh
	@bash bench/distill/run.sh

# libFuzzer on the front end and sema (clang-19 from scripts/install-deps.sh --fuzz).
fuzz:
	@bash scripts/install-deps.sh --fuzz
	@bash tests/fuzz/run.sh 60

format:
	clang-format -i $$(git ls-files '*.c' '*.h')
format-check:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-san

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

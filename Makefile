# loratune build. Targets: all test golden bench asan ubsan debug format lint fuzz clean
# Switches: NO_OMP=1 (no OpenMP), NATIVE=1 (-march=native), WERROR=1, CC=clang
CC      ?= cc
BUILD   ?= build
OPT     ?= -O2
WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-unused-parameter
CFLAGS  ?=
CFLAGS  += -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) -fvisibility=hidden -Iinclude -Isrc
LDLIBS  := -lopenblas -lcjson -lpcre2-8 -lutf8proc -lm -lpthread
# OpenBLAS built on OpenMP shares our OpenMP thread pool; the pthread build would fight it
# (idle OpenMP threads spin while OpenBLAS's own threads need the cores).
BLAS_VARIANT := openmp
ifeq ($(NO_OMP),1)
  BLAS_VARIANT := pthread
else
  CFLAGS += -fopenmp
  LDFLAGS += -fopenmp
endif
BLAS_LIBDIR := /usr/lib/x86_64-linux-gnu/openblas-$(BLAS_VARIANT)
CFLAGS  += -I/usr/include/x86_64-linux-gnu/openblas-$(BLAS_VARIANT)
LDFLAGS += -L$(BLAS_LIBDIR) -Wl,-rpath,$(BLAS_LIBDIR)
ifeq ($(NATIVE),1)
  CFLAGS += -march=native
else
  CFLAGS += -mavx2 -mfma -mf16c
endif
ifeq ($(WERROR),1)
  CFLAGS += -Werror
endif
ifneq ($(SAN),)
  CFLAGS += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=$(SAN)
endif

# MPI=1: data-parallel training over OpenMPI (src/dist/); MPI=0: one process. Default: 1 when
# mpicc is on PATH. Only src/dist/dist.c sees mpi.h (as a system header: no warnings from it);
# every binary links libmpi. A stamp named after the setting rebuilds dist.o when it changes.
ifeq ($(origin MPI),undefined)
  MPI := $(if $(shell command -v mpicc 2>/dev/null),1,0)
endif
ifeq ($(MPI),1)
  MPI_CFLAGS := $(patsubst -I%,-isystem %,$(shell mpicc --showme:compile)) -DLT_MPI
  LDLIBS += $(shell mpicc --showme:link)
endif
$(shell echo "build: MPI=$(MPI)" >&2)

LIB_SRC   := $(sort $(wildcard src/*/*.c src/*/*/*.c))
LIB_SRC   := $(filter-out src/cli/%,$(LIB_SRC))
CLI_SRC   := $(sort $(wildcard src/cli/*.c))
UNIT_SRC  := $(sort $(wildcard tests/unit/test_*.c))
GOLD_SRC  := $(sort $(wildcard tests/golden/test_*.c))
BENCH_SRC := $(sort $(wildcard bench/bench_*.c))
FUZZ_SRC  := $(sort $(wildcard tests/fuzz/fuzz_*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
LIB      := $(BUILD)/libloratune.a
BIN      := $(BUILD)/loratune
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
GOLD_BIN := $(GOLD_SRC:tests/golden/%.c=$(BUILD)/tests/%)
BENCH_BIN:= $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/tests/%)

.PHONY: all test unit golden bench asan ubsan debug format format-check lint fuzz clean
all: $(BIN) $(UNIT_BIN) $(GOLD_BIN) $(BENCH_BIN) $(FUZZ_BIN)

# V=1 shows the full commands
Q := $(if $(V),,@)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  CC $<")
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/src/dist/dist.o: CFLAGS += $(MPI_CFLAGS)
$(BUILD)/obj/src/dist/dist.o: $(BUILD)/obj/src/dist/mpi-$(MPI).stamp
$(BUILD)/obj/src/dist/mpi-$(MPI).stamp:
	@mkdir -p $(dir $@) && rm -f $(dir $@)mpi-*.stamp && touch $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN): $(CLI_OBJ) $(LIB)
	@$(if $(V),,echo "  LD $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB) $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LD $@")
	$(Q)$(CC) $(CFLAGS) -Itests $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)
$(BUILD)/tests/%: tests/golden/%.c $(LIB) $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LD $@")
	$(Q)$(CC) $(CFLAGS) -Itests $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)
# fuzz targets build as plain programs replaying a corpus (tests/fuzz/main.c); with clang and
# FUZZ=1 they link libFuzzer instead.
$(BUILD)/tests/fuzz_%: tests/fuzz/fuzz_%.c $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LD $@")
	$(Q)$(CC) $(CFLAGS) -Itests $(LDFLAGS) -o $@ $< tests/fuzz/replay_main.c $(LIB) $(LDLIBS)
$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LD $@")
	$(Q)$(CC) $(CFLAGS) -Itests $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# The test command of the README. Runs every unit, golden and fuzz-replay test; non-zero on any failure.
test: $(BIN) $(UNIT_BIN) $(GOLD_BIN) $(FUZZ_BIN)
	@BUILD=$(BUILD) sh tests/run_all.sh $(UNIT_BIN) $(GOLD_BIN) $(FUZZ_BIN)

# MPI stage (scripts/test.sh; needs MPI=1): 1 process vs `mpirun -np 2`, resume, failures.
.PHONY: test-mpi
MPI_TEST_BIN := $(BUILD)/tests/mpi_adapter_diff $(BUILD)/tests/mpi_cls_train $(BUILD)/tests/mpi_oom_sweep
$(BUILD)/tests/mpi_%: tests/mpi/mpi_%.c $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(V),,echo "  LD $@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)
test-mpi: $(BIN) $(MPI_TEST_BIN)
	@test "$(MPI)" = 1 || { echo "test-mpi needs an MPI build (MPI=1)"; exit 1; }
	@BUILD=$(BUILD) sh tests/mpi/run_mpi.sh

golden: $(GOLD_BIN)
	@BUILD=$(BUILD) sh tests/run_all.sh $(GOLD_BIN)

bench: $(BENCH_BIN) $(BIN)
	@for b in $(BENCH_BIN); do $$b || exit 1; done

asan:
	$(MAKE) BUILD=build/asan OPT=-O1 SAN=address,undefined test
ubsan:
	$(MAKE) BUILD=build/ubsan OPT=-O1 SAN=undefined test
debug:
	$(MAKE) BUILD=build/debug OPT=-O0 all

format:
	clang-format -i $$(git ls-files '*.c' '*.h')
format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')
lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability -Iinclude -Isrc src

clean:
	rm -rf build

# The AMX bf16 GEMM is the one file built for AMX/AVX-512; it runs only after a run-time check.
$(BUILD)/obj/src/ops/gemm_bf16_amx.o: CFLAGS += -mamx-tile -mamx-bf16 -mavx512f -mavx512bf16

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)

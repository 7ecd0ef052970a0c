# galore.c build. `make deps` installs the Debian/Ubuntu packages (dev/deps.sh lists them);
# `make` builds the CPU trainer (and train_llamacu when nvcc is present);
# `make test` builds and runs every CPU test and compiles and links every .cu target.
CC ?= gcc
CFLAGS ?= -O3 -march=native
# -ffp-contract=off: no fused multiply-adds, so the CPU arithmetic is the plain IEEE sequence the
# references (PyTorch, the numpy model of the bitsandbytes kernel) compute; BLAS is unaffected
CFLAGS += -fopenmp -ffp-contract=off -Wall -Wextra -Wno-unused-function -I.
# BLAS: any CBLAS + LAPACK works. Debian's OpenMP build of OpenBLAS (libopenblas0-openmp) is
# used when present, linked by path with an rpath: it shares the program's OpenMP threads,
# where the pthreads build fights them for the cores (measured: 1.85x slower on 2 cores).
# Otherwise libblas/liblapack, i.e. whatever Debian's alternatives point to (the reference
# BLAS works, slowly). Another BLAS: make BLAS_LIBS="..." LAPACK_LIBS="...".
OPENBLAS_OMP ?= /usr/lib/x86_64-linux-gnu/openblas-openmp
ifneq ($(wildcard $(OPENBLAS_OMP)/libblas.so.3),)
  BLAS_LIBS ?= -L$(OPENBLAS_OMP) -l:libblas.so.3 -Wl,-rpath,$(OPENBLAS_OMP)
  LAPACK_LIBS ?= -l:liblapack.so.3
else
  BLAS_LIBS ?= -lblas
  LAPACK_LIBS ?= -llapack
endif
LDLIBS = -lcjson $(BLAS_LIBS) $(LAPACK_LIBS) -lm
# MPI (data parallel, dist.h): train_llama and train_llamacu are built with it when mpicc is found
# (Debian: openmpi-bin libopenmpi-dev); without it they run one process and say so if mpirun
# starts several. Another MPI: make MPI_CFLAGS="-DUSE_MPI -I..." MPI_LIBS="-L... -lmpi".
MPICC ?= mpicc
ifneq ($(shell command -v $(MPICC) 2>/dev/null),)
  MPI_CFLAGS ?= -DUSE_MPI $(shell $(MPICC) --showme:compile 2>/dev/null)
  MPI_LIBS ?= $(shell $(MPICC) --showme:link 2>/dev/null)
endif

HEADERS = dev/ref/reference.h utils.h hostdev.h rand.h dist.h run.h llama.h llama_math.h cli.h safetensors.h dataloader.h tokenizer.h sample.h hf_folder.h unicode_class.h galore.h adam8bit.h weight8.h memplan.h checkpoint.h layerhook.h

# CUDA: targets exist once their sources do; without nvcc they are skipped with a message
NVCC ?= nvcc
NVCC_FOUND := $(shell command -v $(NVCC) 2>/dev/null)
CU_SOURCES := $(wildcard train_llama.cu test_llama.cu)
CU_TARGETS := $(patsubst %.cu,%cu,$(CU_SOURCES))
GPU_COMPUTE_CAPABILITY ?=
# sm_80 .. sm_90 code, plus compute_90 PTX that the driver compiles for newer cards (else they fail
# with "no kernel image is available"); one arch (GPU_COMPUTE_CAPABILITY=90): that code only
ifeq ($(GPU_COMPUTE_CAPABILITY),)
  NVCC_ARCH = -gencode arch=compute_80,code=sm_80 -gencode arch=compute_86,code=sm_86 \
              -gencode arch=compute_89,code=sm_89 -gencode arch=compute_90,code=sm_90 \
              -gencode arch=compute_90,code=compute_90
else
  NVCC_ARCH = -gencode arch=compute_$(GPU_COMPUTE_CAPABILITY),code=sm_$(GPU_COMPUTE_CAPABILITY)
endif
NVCC_FLAGS = -O3 -std=c++17 --use_fast_math -I. $(NVCC_ARCH) -Xcompiler -fopenmp
# nvcc does not take -Wl,...: pass the BLAS rpath through -Xlinker
COMMA := ,
NVCC_BLAS_LIBS = $(subst -Wl$(COMMA)-rpath$(COMMA),-Xlinker -rpath -Xlinker ,$(BLAS_LIBS))
NVCC_LDLIBS = -lcublas -lcublasLt -lcusolver -lcudnn -lnccl -lcjson $(NVCC_BLAS_LIBS) $(LAPACK_LIBS) -lgomp
NVCC_MPI_LIBS = $(subst -Wl$(COMMA)-rpath$(COMMA),-Xlinker -rpath -Xlinker ,$(MPI_LIBS))

# The CUDA program on the CPU (dev/emu/emu.h says what it models): the unchanged .cu/.cuh sources,
# their launches rewritten by dev/emu/cu2cpp.py into a mirror tree (build/emu, searched first for
# its own includes), compiled by g++ against the real CUDA headers with dev/emu/emu.h forced in,
# linked with the emulated runtime and libraries (every dev/emu/emu_*.cpp).
CUDA_HOME ?= /usr/local/cuda
EMU_CXX ?= g++
EMU_DIR = build/emu
EMU_CXXFLAGS = -std=c++17 -O2 -g -fopenmp -I$(CUDA_HOME)/include -Idev/emu -I.
# OMPI/MPICH_SKIP_MPICXX: mpi.h under a C++ compiler would pull in the C++ bindings (not linked)
EMU_FLAGS = $(EMU_CXXFLAGS) -DOMPI_SKIP_MPICXX -DMPICH_SKIP_MPICXX -include dev/emu/emu.h -x c++
EMU_SRC = $(wildcard dev/emu/emu_*.cpp)
EMU_OBJ = $(patsubst dev/emu/%.cpp,$(EMU_DIR)/%.o,$(EMU_SRC))
EMU_LIB = $(EMU_DIR)/libemu.a
EMU_LDLIBS = -x none $(EMU_LIB) -lcjson $(BLAS_LIBS) $(LAPACK_LIBS) -lm
EMU_CU = $(wildcard *.cu *.cuh dev/cuda/*.cu dev/cuda/*.cuh dev/emu/*.cu)
EMU_MIRROR = $(EMU_DIR)/.mirror
DEV_CUDA_EMU = $(patsubst %.cu,%_emu,$(wildcard dev/cuda/*.cu))
EMU_TARGETS = train_llamacu_emu test_llamacu_emu dev/emu/test_emu dev/emu/test_emu_libs $(DEV_CUDA_EMU)

CPU_TESTS = test_llama dev/test/test_data dev/test/test_tokenizer dev/test/test_safetensors dev/test/test_adam8bit dev/test/test_rendezvous

.PHONY: all deps check-test-deps test test-cpu test-sanitizers test-fuzz test-gpu cuda clean emu test-emu
# what the README says `make` builds: the trainers (the CUDA checks and test_llamacu: make test)
all: train_llama $(if $(NVCC_FOUND),$(filter train_llamacu,$(CU_TARGETS)))
# no command lines unless V=1 (a compiler's warnings and errors still show)
ifneq ($(V),1)
.SILENT:
endif

# a missing library is one line naming its package and `make deps`, before any compiler error
DEPS_CHECK = @CC="$(CC)" BLAS_LIBS="$(BLAS_LIBS)" LAPACK_LIBS="$(LAPACK_LIBS)" bash dev/deps.sh check
deps:
	@bash dev/deps.sh install
check-test-deps:
	$(DEPS_CHECK) test

train_llama: train_llama.c $(HEADERS)
	$(DEPS_CHECK) build
	$(CC) $(CFLAGS) $(MPI_CFLAGS) $< -o $@ $(LDLIBS) $(MPI_LIBS)

test_llama: test_llama.c train_llama.c $(HEADERS)
	$(DEPS_CHECK) build
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

dev/test/test_data: dev/test/test_data.c dataloader.h tokenizer.h unicode_class.h utils.h rand.h
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

dev/test/test_tokenizer: dev/test/test_tokenizer.c tokenizer.h unicode_class.h utils.h
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

dev/test/test_safetensors: dev/test/test_safetensors.c safetensors.h utils.h
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

dev/test/test_adam8bit: dev/test/test_adam8bit.c adam8bit.h utils.h
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

dev/test/test_rendezvous: dev/test/test_rendezvous.c dist.h utils.h rand.h
	$(CC) $(CFLAGS) $< -o $@ $(LDLIBS)

%cu: %.cu $(HEADERS) $(wildcard *.cuh)
	$(NVCC) $(NVCC_FLAGS) $(MPI_CFLAGS) $< -o $@ $(NVCC_LDLIBS) $(NVCC_MPI_LIBS)

# test_llama.cu includes train_llama.cu, and the CPU engine for the CPU-vs-GPU check
test_llamacu: train_llama.cu train_llama.c

# on a machine with a GPU: the GPU tests and every dev/cuda kernel check
test-gpu: test_llamacu train_llamacu
	./test_llamacu
	$(MAKE) -C dev/cuda run
	bash dev/test/test_dist_gpu.sh

# ----------------------------------------------------------------------------
# the emulated CUDA build (see EMU_* above)
emu: $(EMU_TARGETS)

$(EMU_MIRROR): $(EMU_CU) dev/emu/cu2cpp.py
	@mkdir -p $(EMU_DIR)
	python3 dev/emu/cu2cpp.py $(EMU_DIR) $(EMU_CU)
	@touch $@

$(EMU_DIR)/%.o: dev/emu/%.cpp dev/emu/emu.h dev/emu/emu_core.h dev/emu/emu_internal.h
	@mkdir -p $(EMU_DIR)
	$(EMU_CXX) $(EMU_CXXFLAGS) -c $< -o $@

$(EMU_LIB): $(EMU_OBJ)
	rm -f $@ && ar rcs $@ $^

EMU_DEPS = $(EMU_MIRROR) $(EMU_LIB) dev/emu/emu.h $(HEADERS)
train_llamacu_emu: $(EMU_DEPS)
	$(EMU_CXX) $(EMU_FLAGS) $(MPI_CFLAGS) $(EMU_DIR)/train_llama.cu -o $@ $(EMU_LDLIBS) $(MPI_LIBS)
test_llamacu_emu: $(EMU_DEPS) train_llama.c
	$(EMU_CXX) $(EMU_FLAGS) $(EMU_DIR)/test_llama.cu -o $@ $(EMU_LDLIBS)
dev/emu/test_emu: $(EMU_DEPS)
	$(EMU_CXX) $(EMU_FLAGS) -Idev/emu $(EMU_DIR)/dev/emu/test_emu.cu -o $@ $(EMU_LDLIBS)
# the libraries' own check (references, planted defects): a plain C++ file, no launches to rewrite
dev/emu/test_emu_libs: dev/emu/test_emu_libs.cpp $(EMU_LIB) dev/emu/emu.h dev/emu/emu_libs.h
	$(EMU_CXX) $(EMU_FLAGS) $< -o $@ $(EMU_LDLIBS)
dev/cuda/%_emu: $(EMU_DEPS) train_llama.c
	$(EMU_CXX) $(EMU_FLAGS) -Idev/cuda $(EMU_DIR)/dev/cuda/$*.cu -o $@ $(EMU_LDLIBS)

# what `make test` runs under the emulation (one line a suite; the whole output in test.log, then
# the number of GPU checks that ran): the self-tests (planted defects, correct code under several
# seeds), every dev/cuda check (small shapes: the emulated build skips the timing shapes, see
# common.cuh's DEV_CUDA_TIMING), those without a library call under each seed of EMU_SEEDS
# (thread order forward, reverse, random; the stream order varies with every seed), the whole
# test_llamacu, the trainer's runs (dev/test/test_emu_runs.sh) and the one-rank data-parallel pairs.
# One OpenMP thread: the emulated runtime sets it (emu_runtime.cpp: threads spinning beside the
# one-thread emulation cost it 5x on 2 cores) unless OMP_NUM_THREADS says otherwise. So two lanes
# run side by side, one core each: test_llamacu (~14 min alone) and everything after the
# self-tests (~12 min); each lane keeps its own log, appended to test-emu.log at the end.
EMU_SEEDS ?= 0 1 7
EMU_RUN_DEV_CUDA = cast swiglu rope rmsnorm encoder grad_norm adam apollo weight8
EMU_RUN_DEV_CUDA_LIB = matmul classifier attention svd galore_update
ifeq ($(wildcard $(CUDA_HOME)/include/cuda_runtime.h),)
test-emu:
	@echo "note: $(CUDA_HOME)/include/cuda_runtime.h not found: the emulated CUDA checks (test-emu) skipped; install the CUDA Toolkit (its headers suffice) or set CUDA_HOME"
else
test-emu: export TEST_LOG = test-emu.log
test-emu: emu train_llama
	rm -f test-emu.log
	$(SUITE) ./dev/emu/test_emu
	$(SUITE) ./dev/emu/test_emu_libs
	rm -f test-emu.lane1.log test-emu.lane2.log
	fail=0; ( TEST_LOG=test-emu.lane1.log EMU_SEED=7 $(SUITE) ./test_llamacu_emu ) & lane1=$$!; \
	export TEST_LOG=test-emu.lane2.log; \
	for t in $(EMU_RUN_DEV_CUDA); do for seed in $(EMU_SEEDS); do \
	  EMU_SEED=$$seed $(SUITE) ./dev/cuda/$${t}_emu || fail=1; done; done; \
	for t in $(EMU_RUN_DEV_CUDA_LIB); do EMU_SEED=7 $(SUITE) ./dev/cuda/$${t}_emu || fail=1; done; \
	EMU_SEED=7 $(SUITE) bash dev/test/test_emu_runs.sh || fail=1; \
	BIN=./train_llamacu_emu SEQ=32 STEPS=3 BATCH=2 $(SUITE) bash dev/test/test_dist_gpu.sh || fail=1; \
	wait $$lane1 || fail=1; \
	cat test-emu.lane1.log test-emu.lane2.log >> test-emu.log && rm -f test-emu.lane1.log test-emu.lane2.log; \
	awk '/^[0-9]+ passed, [0-9]+ failed/ { p += $$1; f += $$3 } END { printf "test-emu: %d GPU checks ran on the CPU emulation, %d failed (whole output: test-emu.log)\n", p, f }' test-emu.log; \
	exit $$fail
endif

cuda:
ifeq ($(NVCC_FOUND),)
	@echo "note: nvcc not found: CUDA targets ($(or $(CU_TARGETS),none)) skipped; install the CUDA Toolkit to build them"
else ifeq ($(CU_TARGETS),)
	@echo "note: no .cu sources yet: nothing to build for CUDA"
else
	$(MAKE) $(CU_TARGETS)
	$(MAKE) $(if $(filter 1,$(V)),,-s) -C dev/cuda
endif

# each suite: one line on the console (its FAIL lines under it), the whole output in test.log
SUITE = V=$(V) bash dev/test/run_suite.sh
test-cpu: train_llama $(CPU_TESTS)
	rm -f test.log
	$(SUITE) ./test_llama
	$(SUITE) ./dev/test/test_data
	$(SUITE) ./dev/test/test_tokenizer
	$(SUITE) ./dev/test/test_safetensors
	$(SUITE) ./dev/test/test_adam8bit
	$(SUITE) ./dev/test/test_rendezvous
	$(SUITE) bash dev/test/test_deps.sh
	CC="$(CC)" BLAS_LIBS="$(BLAS_LIBS)" LAPACK_LIBS="$(LAPACK_LIBS)" $(SUITE) bash dev/test/test_build.sh
	$(SUITE) bash dev/test/test_cli.sh
	$(SUITE) bash dev/test/test_hf.sh
	$(SUITE) bash dev/test/test_crash.sh
	$(SUITE) bash dev/test/test_weight8.sh
	$(SUITE) bash dev/test/test_dist.sh
	$(SUITE) bash dev/test/test_c4.sh
	$(SUITE) bash dev/test/test_prepare.sh
	$(SUITE) bash dev/test/test_route.sh
	$(SUITE) bash scripts/test_scripts.sh

# the CPU tests again under AddressSanitizer and UBSan, and each parser's fuzzer briefly
test-sanitizers:
	$(SUITE) bash dev/test/run_sanitizers.sh

FUZZ_TIME ?= 15
test-fuzz:
	$(SUITE) $(MAKE) -s -C dev/fuzz run FUZZ_TIME=$(FUZZ_TIME)

test: check-test-deps test-cpu test-sanitizers test-fuzz cuda test-emu
	@echo "make test: all CPU tests passed (also under ASan/UBSan), fuzzers found nothing; CUDA targets compiled where nvcc exists; the CUDA checks of test-emu passed on the CPU emulation (no GPU runs here)"

clean:
	rm -f train_llama test_llama $(CPU_TESTS) $(CU_TARGETS) $(EMU_TARGETS)
	rm -rf $(EMU_DIR)

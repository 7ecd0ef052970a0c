# galore.c build. `make deps` installs the Debian/Ubuntu packages (dev/deps.sh lists them);
# `make` builds the CPU trainer (and the CUDA ones when nvcc is present);
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

HEADERS = dev/ref/reference.h utils.h hostdev.h rand.h dist.h run.h llama.h llama_math.h cli.h safetensors.h dataloader.h tokenizer.h sample.h hf_folder.h unicode_class.h galore.h adam8bit.h memplan.h checkpoint.h layerhook.h

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

CPU_TESTS = test_llama dev/test/test_data dev/test/test_tokenizer dev/test/test_safetensors dev/test/test_adam8bit dev/test/test_rendezvous

.PHONY: all deps check-test-deps test test-cpu test-sanitizers test-fuzz test-gpu cuda clean
all: train_llama cuda

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

cuda:
ifeq ($(NVCC_FOUND),)
	@echo "note: nvcc not found: CUDA targets ($(or $(CU_TARGETS),none)) skipped; install the CUDA Toolkit to build them"
else ifeq ($(CU_TARGETS),)
	@echo "note: no .cu sources yet: nothing to build for CUDA"
else
	$(MAKE) $(CU_TARGETS)
	$(MAKE) -C dev/cuda
endif

test-cpu: train_llama $(CPU_TESTS)
	./test_llama
	./dev/test/test_data
	./dev/test/test_tokenizer
	./dev/test/test_safetensors
	./dev/test/test_adam8bit
	./dev/test/test_rendezvous
	bash dev/test/test_deps.sh
	bash dev/test/test_cli.sh
	bash dev/test/test_hf.sh
	bash dev/test/test_crash.sh
	bash dev/test/test_dist.sh
	bash dev/test/test_c4.sh
	bash dev/test/test_prepare.sh
	bash dev/test/test_route.sh
	bash scripts/test_scripts.sh

# the CPU tests again under AddressSanitizer and UBSan, and each parser's fuzzer briefly
test-sanitizers:
	bash dev/test/run_sanitizers.sh

FUZZ_TIME ?= 15
test-fuzz:
	$(MAKE) -C dev/fuzz run FUZZ_TIME=$(FUZZ_TIME)

test: check-test-deps test-cpu test-sanitizers test-fuzz cuda
	@echo "make test: all CPU tests passed (also under ASan/UBSan), fuzzers found nothing; CUDA targets compiled where nvcc exists (no GPU runs here)"

clean:
	rm -f train_llama test_llama $(CPU_TESTS) $(CU_TARGETS)

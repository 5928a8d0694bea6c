# nasc: two commands do everything on a fresh Debian 12 machine.
#   make demo   install what is missing, build, run the main job
#   make test   install what is missing, build every supported configuration,
#               run every test (also under ASan+UBSan), a short fuzz run
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
MATRIX_BUILD ?= build-matrix
FUZZ_SECONDS ?= 600
# Warnings are errors in the developer build and in CI; a user's plain
# `cmake` leaves them warnings (NASC_WERROR is off by default).
CMAKE_FLAGS ?= -DNASC_WERROR=ON
# The configurations README.md says nasc builds in: <compiler>-<build type>,
# and -nompi: without MPI (no distributed search; tests/search/check_nompi.sh).
MATRIX ?= gcc-Release-nompi gcc-Debug clang-Release clang-Debug

.PHONY: all deps build build-matrix demo test test-nompi test-release test-asan fuzz fuzz-build fuzz-smoke clean

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# Every supported configuration, built (tests, benchmarks and examples
# included) with warnings as errors, in $(MATRIX_BUILD)/<compiler>-<type>.
# The tests run in $(BUILD) and $(ASAN_BUILD).
build-matrix: $(MATRIX:%=build-matrix-%)

build-matrix-%: deps
	CC=$(word 1,$(subst -, ,$*)) cmake -S . -B $(MATRIX_BUILD)/$* -DCMAKE_BUILD_TYPE=$(word 2,$(subst -, ,$*)) \
	  $(if $(filter nompi,$(word 3,$(subst -, ,$*))),-DNASC_MPI=OFF) $(CMAKE_FLAGS)
	cmake --build $(MATRIX_BUILD)/$* -j $(JOBS)

# nasc built without MPI searches in one process and refuses, clearly, to
# run as one of several mpirun ranks.
test-nompi: build-matrix-gcc-Release-nompi
	./tests/search/check_nompi.sh $(MATRIX_BUILD)/gcc-Release-nompi/nasc

demo: build
	./scripts/demo.sh $(BUILD)/nasc

# A test that cannot run exits 77 and CTest reports it as skipped, which
# still passes. Here every test must run: after ctest, fail when its log
# (ctest.log in build directory $(1)) lists tests that did not run, and show
# what each of them printed (the reason; CTest keeps it in LastTest.log).
define check_no_skips
	@skipped=$$(sed -n 's/^[[:space:]]*[0-9]* - \(.*\) (\(Skipped\|Not Run\|Disabled\))$$/\1/p' $(1)/ctest.log); \
	if [ -n "$$skipped" ]; then \
	  for t in $$skipped; do \
	    echo "---- $$t did not run; it printed:"; \
	    awk -v t="$$t" '$$2 == "Test:" && $$3 == t {f = 1} f && /^Output:/ {o = 1; getline; next} \
	      o && /^<end of output>/ {exit} o' $(1)/Testing/Temporary/LastTest.log; \
	  done; \
	  echo "make: tests that did not run in $(1):" $$skipped; \
	  echo "make: every test must run here; 'make deps' installs what they need"; \
	  exit 1; \
	fi
endef

test-release: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -O ctest.log
	$(call check_no_skips,$(BUILD))

test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DNASC_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS) -O ctest.log
	$(call check_no_skips,$(ASAN_BUILD))

fuzz-build: deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DNASC_FUZZ=ON $(CMAKE_FLAGS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS)

# Long fuzzing session of every target (FUZZ_SECONDS each).
fuzz: fuzz-build
	./scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# A short smoke run of every fuzz target, part of `make test`.
fuzz-smoke: fuzz-build
	./scripts/fuzz.sh $(FUZZ_BUILD) 15

test: build-matrix test-nompi test-release test-asan fuzz-smoke
	@echo "make test: every configuration built, all test suites passed"

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(MATRIX_BUILD)

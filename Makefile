# singleton_lock: the PostgreSQL extension (PGXS) and the project's entry points.
#
#   make && make install     build and install the extension (PGXS, C++; DESTDIR honoured)
#   make demo                build everything, start a throwaway PostgreSQL, show handovers
#   make test                every test against a real throwaway PostgreSQL
#   make bench               benchmarks; writes BENCHMARKS.md
#   make bench-failover      failover figures (plain promotion, Patroni); writes test/bench/out/failover.md
#   make chaos DURATION=60   a longer chaos run with the fencing checker
#   make installcheck        pg_regress + isolation specs against a running server (PG* env)
#   make SL_WERROR=1         warnings are errors (CI)
# On a machine without the build tools, ./bootstrap installs them first (see README).

EXTENSION = singleton_lock
MODULE_big = singleton_lock
# Every extension/*.cpp is part of the library.
OBJS = $(patsubst %.cpp,%.o,$(filter-out extension/lease_rules_test%,$(sort $(wildcard extension/*.cpp))))
# Every install and upgrade script: singleton_lock--1.0.sql, singleton_lock--1.0--1.1.sql, ...
DATA = $(sort $(wildcard extension/$(EXTENSION)--*.sql))
PGFILEDESC = "singleton_lock - leader election and singleton leases"

# The one place the version is written: the control file's default_version.
# The library's magic block (PostgreSQL 18) and the client (meson.build) read it from there.
EXTVERSION := $(shell sed -n "s/^default_version *= *'\(.*\)'.*/\1/p" extension/$(EXTENSION).control)

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --inputdir=. --load-extension=$(EXTENSION)
ISOLATION = $(patsubst test/specs/%.spec,%,$(sort $(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test --load-extension=$(EXTENSION)

# -MMD -MP: each object also writes extension/NAME.d listing the headers it
# included, so a header change rebuilds exactly the objects that use it.
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Wno-register -Wno-unused-parameter \
              -Wno-missing-field-initializers -fno-omit-frame-pointer -MMD -MP
PG_CPPFLAGS = -DSINGLETON_LOCK_VERSION='"$(EXTVERSION)"'
ifeq ($(SL_WERROR),1)
PG_CXXFLAGS += -Werror
endif
SHLIB_LINK += -lstdc++
EXTRA_CLEAN = $(EXTENSION).control $(OBJS:.o=.d) results regression.diffs regression.out \
              output_iso log tmp_check build test/unit/lease_rules_test

# No LLVM bitcode: JIT inlining of these functions would gain nothing.
override with_llvm = no

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
else
# Without the server's development files only the script targets below work.
all install installcheck clean:
	@echo "$(PG_CONFIG) not found: install postgresql-server-dev-NN (or run ./bootstrap test)" >&2; exit 1
endif

-include $(OBJS:.o=.d)

# PGXS installs the control file from the top of the tree.
all: $(EXTENSION).control
$(EXTENSION).control: extension/$(EXTENSION).control
	cp $< $@

.PHONY: demo test bench bench-failover chaos unit-extension client

GTEST_FLAGS = $(shell pkg-config --cflags --libs gtest_main 2>/dev/null || echo -lgtest_main -lgtest -pthread)
# Pure C++ (no PostgreSQL header): its only project header is lease_rules.hpp.
test/unit/lease_rules_test: test/unit/lease_rules_test.cpp extension/lease_rules.cpp extension/lease_rules.hpp
	$(CXX) -std=c++17 -Wall -Wextra $(if $(filter 1,$(SL_WERROR)),-Werror) -O1 -g \
		-fsanitize=address,undefined -Iextension \
		-o $@ test/unit/lease_rules_test.cpp extension/lease_rules.cpp $(GTEST_FLAGS)

unit-extension: test/unit/lease_rules_test
	test/unit/lease_rules_test

client:
	test/build_client.sh

demo:
	test/demo.sh

test:
	test/run_all.sh

bench:
	test/bench/run.sh

bench-failover:
	test/bench/failover.sh

DURATION ?= 60
chaos:
	test/scenarios/chaos.sh $(DURATION)

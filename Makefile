# singleton_lock: the PostgreSQL extension (PGXS) and the project's entry points.
#
#   make && make install     build and install the extension (PGXS, C++)
#   make demo                build everything, start a throwaway PostgreSQL, show a rolling deploy
#   make test                every test against a real throwaway PostgreSQL
#   make bench               benchmarks; writes BENCHMARKS.md
#   make bench-failover      failover figures (plain promotion, Patroni); writes test/bench/out/failover.md
#   make chaos DURATION=60   a longer chaos run with the fencing checker
#   make installcheck        pg_regress + isolation specs against a running server (PG* env)

EXTENSION = singleton_lock
sorted_ext_sources = $(sort $(wildcard extension/*.cpp))
EXT_VERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" extension/$(EXTENSION).control)
MODULE_big = singleton_lock
OBJS = $(patsubst %.cpp,%.o,$(filter-out extension/lease_rules_test%,$(sorted_ext_sources)))
DATA = $(wildcard extension/singleton_lock--*.sql)
PGFILEDESC = "singleton_lock - leader election and singleton leases"

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --inputdir=. --load-extension=$(EXTENSION)
ISOLATION = $(patsubst test/specs/%.spec,%,$(sort $(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test --load-extension=$(EXTENSION)

PG_CXXFLAGS = -DSINGLETON_LOCK_VERSION='"$(EXT_VERSION)"' -std=c++17 -Wall -Wextra -Wno-register -Wno-unused-parameter \
              -Wno-missing-field-initializers -fno-omit-frame-pointer
SHLIB_LINK += -lstdc++
EXTRA_CLEAN = $(EXTENSION).control results regression.diffs regression.out output_iso \
              build-client build-asan test/unit/lease_rules_test

# No LLVM bitcode: JIT inlining of these functions would gain nothing.
override with_llvm = no

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS installs the control file from the top of the tree.
all: $(EXTENSION).control
$(EXTENSION).control: extension/$(EXTENSION).control
	cp $< $@

extension/%.o: extension/lease_rules.hpp extension/guard.hpp
extension/functions.o extension/lease_store.o: extension/lease_store.hpp extension/settings.hpp
extension/session_binding.o extension/waiting.o: extension/lock_tags.hpp extension/waiting.hpp extension/name_hash_list.hpp \
	extension/session_binding.hpp

.PHONY: demo test bench bench-failover chaos unit-extension client

GTEST_FLAGS = $(shell pkg-config --cflags --libs gtest_main 2>/dev/null || echo -lgtest_main -lgtest -pthread)
test/unit/lease_rules_test: test/unit/lease_rules_test.cpp extension/lease_rules.cpp extension/lease_rules.hpp
	$(CXX) -std=c++17 -Wall -Wextra -O1 -g -fsanitize=address,undefined -Iextension \
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

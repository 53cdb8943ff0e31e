# luafetch — build, test, demo, bench and install. `make test` works on a fresh Debian 12 machine:
# it installs the Debian packages it needs (deps), builds, and runs every layer of the suite: unit
# tests and specs (release and ASan+UBSan), specs under valgrind, the allocation-failure torture and
# short fuzz runs (docs/testing.md). `make torture`, `make fuzz` and `make soak` run longer.

VERSION   := 0.1.0
PREFIX    ?= /usr/local
BUILD     := build
CC        ?= cc
LLHTTP_SRC := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp

DEPS_BUILD := build-essential pkg-config liblua5.4-dev lua5.4 libuv1-dev libmbedtls-dev zlib1g-dev \
              node-llhttp lua-busted lua-cjson openssl python3 clang clang-rt libgumbo-dev \
              valgrind gdb iproute2 tinyproxy microsocks ca-certificates lua-argparse curl zsh \
              publicsuffix python3-httpbin gunicorn \
              libnghttp2-dev nghttp2-server nghttp2-client nginx-light nodejs h2o \
              libhiredis-dev redis-server
DEPS_BENCH := nginx-light libnginx-mod-http-echo wrk libcurl4-openssl-dev python3-aiohttp \
              lua-http lua5.2 gnuplot-nox nodejs valgrind time

CPPFLAGS  += -Icore/host -Icore/net -Icore/http -Icore/redis -Icore/lua -I$(BUILD)/gen -I/usr/include/lua5.4 -I$(LLHTTP_INC) \
             -DLUAFETCH_VERSION='"$(VERSION)"' -DLUAFETCH_SHAREDIR='"$(PREFIX)/share/luafetch"'
CFLAGS    ?= -O2 -g
WARN      := -Wall -Wextra -Werror -std=gnu11
LDLIBS    := -llua5.4 -luv -lmbedtls -lmbedx509 -lmbedcrypto -lnghttp2 -lhiredis -lgumbo -lz -lm -ldl -lpthread

# core/ by layer: net (TCP, tunnels, TLS, DNS, pool), http (request lifecycle, wire formats,
# server), lua (bindings), host (loop, tasks, main).
CORE_HDR  := $(wildcard core/*/*.h)
CORE_SRC  := $(filter-out core/host/main.c,$(wildcard core/*/*.c))
LUA_MODS  := $(wildcard lua/*.lua)
PLUGINS   := $(wildcard plugins/*.lua)
EMBED_ARGS = $(foreach f,$(LUA_MODS),$(basename $(notdir $(f)))=$(f)) \
             $(foreach f,$(PLUGINS),plugins.$(basename $(notdir $(f)))=$(f))

OBJ       := $(patsubst core/%.c,$(BUILD)/obj/%.o,$(CORE_SRC)) $(BUILD)/obj/embed.o
LLHTTP_OBJ := $(BUILD)/obj/llhttp.o $(BUILD)/obj/llhttp_api.o $(BUILD)/obj/llhttp_http.o

# The sanitizer build: same sources, clang, ASan + UBSan, its own object directory.
ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ASAN_OBJ  := $(patsubst $(BUILD)/obj/%,$(BUILD)/asan/%,$(OBJ) $(LLHTTP_OBJ) $(BUILD)/obj/host/main.o)

UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
ASAN_UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/asan-tests/%,$(wildcard tests/unit/test_*.c))

# Fuzz harnesses: every tests/fuzz/fuzz_*.c links the whole core (all but main.c) built with
# -fsanitize=fuzzer-no-link, so a harness may call anything; seeds in tests/fuzz/corpus/<name>/.
FUZZ_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
FUZZ_OBJ  := $(patsubst $(BUILD)/obj/%,$(BUILD)/fuzzobj/%,$(OBJ) $(LLHTTP_OBJ))
FUZZERS   := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
FAILMALLOC := $(BUILD)/torture/failmalloc.so

.PHONY: all deps deps-bench test test-unit test-specs test-asan test-valgrind demo bench install \
        install-data uninstall clean fuzz fuzz-build torture soak

all: deps $(BUILD)/luafetch

# apt-get only what is missing; a quick no-op when everything is there.
# apt-get only what is missing (tools/deps.sh: sudo when not root; clang-rt = the sanitizer runtime
# of the clang installed); a quick no-op when everything is there.
deps:
	@bash tools/deps.sh $(DEPS_BUILD)

deps-bench: deps
	@bash tools/deps.sh $(DEPS_BENCH)

$(BUILD)/tools/embed: tools/embed.c
	@mkdir -p $(dir $@)
	$(CC) -O2 $(WARN) -o $@ $<

$(BUILD)/gen/embed.c: $(BUILD)/tools/embed $(LUA_MODS) $(PLUGINS)
	@mkdir -p $(dir $@)
	$(BUILD)/tools/embed $@ $(EMBED_ARGS)

$(BUILD)/obj/embed.o: $(BUILD)/gen/embed.c core/lua/lua_bindings.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -c -o $@ $<

$(BUILD)/obj/%.o: core/%.c $(CORE_HDR) | deps
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -c -o $@ $<

# Under make -j nothing compiles before deps installed the headers; llhttp's sources come from a
# package too (a rule without a recipe: they exist once deps ran).
$(LLHTTP_SRC)/llhttp.c $(LLHTTP_SRC)/api.c $(LLHTTP_SRC)/http.c: | deps

# llhttp's generated C is compiled as shipped, without our warning set.
$(BUILD)/obj/llhttp.o: $(LLHTTP_SRC)/llhttp.c
	@mkdir -p $(dir $@)
	$(CC) -I$(LLHTTP_INC) $(CFLAGS) -w -c -o $@ $<
$(BUILD)/obj/llhttp_api.o: $(LLHTTP_SRC)/api.c
	@mkdir -p $(dir $@)
	$(CC) -I$(LLHTTP_INC) $(CFLAGS) -w -c -o $@ $<
$(BUILD)/obj/llhttp_http.o: $(LLHTTP_SRC)/http.c
	@mkdir -p $(dir $@)
	$(CC) -I$(LLHTTP_INC) $(CFLAGS) -w -c -o $@ $<

# host.c and main.c have the install's share directory built in: rebuild them when PREFIX changes.
$(BUILD)/prefix.stamp: FORCE
	@mkdir -p $(BUILD); echo '$(PREFIX)' | cmp -s - $@ || echo '$(PREFIX)' > $@
$(BUILD)/obj/host/host.o $(BUILD)/asan/host/host.o $(BUILD)/obj/host/main.o $(BUILD)/asan/host/main.o: $(BUILD)/prefix.stamp
FORCE:

$(BUILD)/luafetch: $(OBJ) $(LLHTTP_OBJ) $(BUILD)/obj/host/main.o
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# --- sanitizer build -------------------------------------------------------
$(BUILD)/asan/%.o: core/%.c $(CORE_HDR) | deps
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS) $(ASAN_FLAGS) $(WARN) -c -o $@ $<
$(BUILD)/asan/embed.o: $(BUILD)/gen/embed.c
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS) $(ASAN_FLAGS) $(WARN) -c -o $@ $<
$(BUILD)/asan/llhttp.o: $(LLHTTP_SRC)/llhttp.c
	@mkdir -p $(dir $@)
	clang -I$(LLHTTP_INC) $(ASAN_FLAGS) -w -c -o $@ $<
$(BUILD)/asan/llhttp_api.o: $(LLHTTP_SRC)/api.c
	@mkdir -p $(dir $@)
	clang -I$(LLHTTP_INC) $(ASAN_FLAGS) -w -c -o $@ $<
$(BUILD)/asan/llhttp_http.o: $(LLHTTP_SRC)/http.c
	@mkdir -p $(dir $@)
	clang -I$(LLHTTP_INC) $(ASAN_FLAGS) -w -c -o $@ $<
$(BUILD)/asan/luafetch: $(ASAN_OBJ)
	clang $(ASAN_FLAGS) -o $@ $^ $(LDLIBS)

# --- tests -----------------------------------------------------------------
# Unit tests link the core objects they need (all but main) with their own main.
$(BUILD)/tests/%: tests/unit/%.c $(OBJ) $(LLHTTP_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -o $@ $^ $(LDLIBS)

# The same unit tests against the sanitizer objects.
$(BUILD)/asan-tests/%: tests/unit/%.c $(filter-out %/main.o,$(ASAN_OBJ))
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS) $(ASAN_FLAGS) $(WARN) -o $@ $^ $(LDLIBS)

$(FAILMALLOC): tests/torture/failmalloc.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -fPIC -shared $(WARN) -o $@ $< -ldl

test: all $(UNIT_TESTS) $(ASAN_UNIT_TESTS) $(BUILD)/asan/luafetch $(FAILMALLOC) fuzz-build
	@bash tests/run_all.sh $(BUILD)

test-unit: all $(UNIT_TESTS) $(ASAN_UNIT_TESTS)
	@bash tests/run_all.sh $(BUILD) unit

test-specs: all
	@bash tests/run_all.sh $(BUILD) specs

test-asan: all $(BUILD)/asan/luafetch
	@bash tests/run_all.sh $(BUILD) asan

test-valgrind: all
	@bash tests/run_all.sh $(BUILD) valgrind

# Every k up to just past the script's plain request and every 5th beyond (TORTURE_STRIDE=1:
# every k), in the three failure modes (tests/torture/run.sh); results and failing runs' stderr
# in BUILD/torture/out.
torture: all $(FAILMALLOC)
	@TORTURE_DENSE=$${TORTURE_DENSE:-auto} TORTURE_STRIDE=$${TORTURE_STRIDE:-5} \
	  TORTURE_VALGRIND=$${TORTURE_VALGRIND:-40} TORTURE_OUT=$(BUILD)/torture/out \
	  bash tests/torture/run.sh $(BUILD)/luafetch $(FAILMALLOC)

# 1,000 tasks over the fixture server's fault endpoints for SECONDS, sampling RSS, fds, Lua heap.
SECONDS ?= 600
soak: all
	@bash tests/soak/run.sh $(BUILD)/luafetch $(SECONDS)

demo: all
	@bash scripts/demo.sh $(BUILD)/luafetch

bench: all deps-bench
	@bash bench/run.sh $(BUILD)

# The program, then everything else. install-data needs no build: the specs install it into a
# temporary prefix beside a copy of the program under test (tests/spec/cli_spec.lua).
SHARE     = $(DESTDIR)$(PREFIX)/share
install: all install-data
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BUILD)/luafetch $(DESTDIR)$(PREFIX)/bin/luafetch
	@echo "installed under $(DESTDIR)$(PREFIX): bin/luafetch, man luafetch, bash and zsh completion,"
	@echo "  scripts, plugins and LuaLS stubs in share/luafetch, docs in share/doc/luafetch"

install-data:
	install -d $(SHARE)/luafetch/plugins $(SHARE)/luafetch/scripts $(SHARE)/luafetch/types/plugins \
	  $(SHARE)/man/man1 $(SHARE)/bash-completion/completions $(SHARE)/zsh/site-functions \
	  $(SHARE)/doc/luafetch/scripts
	install -m 644 $(PLUGINS) $(SHARE)/luafetch/plugins/
	install -m 644 $(wildcard scripts/*.lua) $(SHARE)/luafetch/scripts/
	install -m 644 $(wildcard types/*.lua) types/luarc.example.json $(SHARE)/luafetch/types/
	install -m 644 $(wildcard types/plugins/*.lua) $(SHARE)/luafetch/types/plugins/
	install -m 644 docs/luafetch.1 $(SHARE)/man/man1/luafetch.1
	install -m 644 contrib/completion/luafetch.bash $(SHARE)/bash-completion/completions/luafetch
	install -m 644 contrib/completion/_luafetch $(SHARE)/zsh/site-functions/_luafetch
	install -m 644 README.md $(wildcard docs/*.md docs/*.png) $(SHARE)/doc/luafetch/
	install -m 644 $(wildcard docs/scripts/*.md) $(SHARE)/doc/luafetch/scripts/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/luafetch $(SHARE)/man/man1/luafetch.1 \
	  $(SHARE)/bash-completion/completions/luafetch $(SHARE)/zsh/site-functions/_luafetch
	rm -rf $(SHARE)/luafetch $(SHARE)/doc/luafetch

clean:
	rm -rf $(BUILD)

# --- fuzzing: `make fuzz FUZZ_SECONDS=60` runs each harness that long (`make test`: 20 s each) -
FUZZ_SECONDS ?= 60
$(BUILD)/fuzzobj/%.o: core/%.c $(CORE_HDR) | deps
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link $(WARN) -c -o $@ $<
$(BUILD)/fuzzobj/embed.o: $(BUILD)/gen/embed.c
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link $(WARN) -c -o $@ $<
$(BUILD)/fuzzobj/llhttp.o: $(LLHTTP_SRC)/llhttp.c
	@mkdir -p $(dir $@)
	clang -I$(LLHTTP_INC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -w -c -o $@ $<
$(BUILD)/fuzzobj/llhttp_api.o: $(LLHTTP_SRC)/api.c
	@mkdir -p $(dir $@)
	clang -I$(LLHTTP_INC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -w -c -o $@ $<
$(BUILD)/fuzzobj/llhttp_http.o: $(LLHTTP_SRC)/http.c
	@mkdir -p $(dir $@)
	clang -I$(LLHTTP_INC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -w -c -o $@ $<
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_OBJ)
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer $(WARN) -o $@ $^ $(LDLIBS)

fuzz-build: $(FUZZERS)
# reached only through the harness pattern rule: keep them between builds
.SECONDARY: $(FUZZ_OBJ)

fuzz: fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_KEEP=$(BUILD)/fuzz/work bash tests/run_all.sh $(BUILD) fuzz

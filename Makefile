# lua-exec: build, install, demo, test, bench.
#
#   make            build build/lua5.4/exec.so and build/luajit/exec.so
#   make demo       install the rock locally for both interpreters, run the examples
#   make test       cargo test + busted under lua5.4, luajit, 5.3 and 5.1, and more
#   make check      the quick loop: cargo test + clippy + busted under lua5.4
#
# `make demo` and `make test` install the Debian packages they need when run
# as root (see scripts/deps.sh).

CARGO     ?= cargo
BUILD     := build
ROCKTREE  := $(BUILD)/rocks
ROCKSPEC  := rockspec/lua-exec-scm-1.rockspec
SOURCES   := Cargo.toml $(shell find src lua -type f)

.PHONY: all deps demo test check stress valgrind bench bench-ssh bench-container clean rock rock-install dist

all: $(BUILD)/lua5.4/exec.so $(BUILD)/luajit/exec.so

deps:
	@sh scripts/deps.sh

# One build per Lua ABI: build/<abi>/exec.so from the cargo feature of
# that ABI, each in a target directory of its own. Copied to a temporary
# name and renamed: a running interpreter keeps the old file mapped, and
# overwriting it in place would crash it.
FEATURE_lua5.4 := lua54
FEATURE_luajit := luajit
FEATURE_lua5.3 := lua53
FEATURE_lua5.1 := lua51

$(BUILD)/%/exec.so: $(SOURCES)
	$(CARGO) build --release --features $(FEATURE_$*) --target-dir target/$(FEATURE_$*)
	mkdir -p $(@D) && cp target/$(FEATURE_$*)/release/libexec.so $@.tmp && mv -f $@.tmp $@

# Lua 5.3 and 5.1 builds: made by `make test`, and tested when those
# interpreters are installed (scripts/deps.sh installs them).
EXTRA_ABIS := $(BUILD)/lua5.3/exec.so $(BUILD)/lua5.1/exec.so

# Used by the rockspec: `luarocks make` calls this with the interpreter it
# installs for and copies $(BUILD)/rock/exec.so into its tree.
rock:
	@case "$(LUA)" in *luajit*) abi=luajit ;; *5.3*) abi=lua5.3 ;; *5.1*) abi=lua5.1 ;; *) abi=lua5.4 ;; esac; \
	$(MAKE) --no-print-directory $(BUILD)/$$abi/exec.so && \
	mkdir -p $(BUILD)/rock && cp $(BUILD)/$$abi/exec.so $(BUILD)/rock/exec.so

demo: deps all
	@sh scripts/install-rock.sh
	@sh scripts/run-examples.sh

test: deps all
	@$(MAKE) --no-print-directory $(EXTRA_ABIS)
	@sh scripts/test.sh

# A few minutes: the core's tests, the lints, and every spec under Lua 5.4.
check: deps $(BUILD)/lua5.4/exec.so
	@sh scripts/check.sh

# What a release publishes (see docs/releasing.md): the
# source archive with vendored crates, the versioned rockspec, the .src.rock.
dist:
	@sh scripts/deps.sh
	@sh scripts/dist.sh

clean:
	rm -rf $(BUILD) target dist

rock-install:
	mkdir -p "$(INST_LIBDIR)" && cp $(BUILD)/rock/exec.so "$(INST_LIBDIR)/exec.so.tmp" && mv -f "$(INST_LIBDIR)/exec.so.tmp" "$(INST_LIBDIR)/exec.so"

# The long reliability runs: 10,000 cycles, 256 MiB through cat, 1 GiB
# drained, 2 GiB streamed, a 20,000-step random walk; both interpreters.
stress: deps all
	@for lua in lua5.4 luajit; do \
	  echo "== stress under $$lua"; \
	  LUA_EXEC_STRESS=1 LUA_CPATH="$(CURDIR)/build/$$lua/?.so;;" $$lua /usr/bin/busted -o utfTerminal \
	    spec/reliability_spec.lua spec/bad_input_spec.lua || exit 1; \
	done

# A representative subset of the specs under memcheck with Lua 5.4. See
# scripts/valgrind.sh for what is checked and why no suppression is needed.
valgrind: deps all
	@sh scripts/valgrind.sh

# Benchmarks against luv, io.popen and plain C, side by side in one run.
# bench/README.md's tables are this command's output (the second: LuaJIT).
bench: all
	@sh scripts/deps.sh
	@mkdir -p bench/out
	@for c in spawn_loop pipe_read pipe_write spawn_sleep run_echo; do cc -O2 -o bench/out/$$c bench/c/$$c.c || exit 1; done
	@LUA_CPATH="$(CURDIR)/build/lua5.4/?.so;;" lua5.4 bench/run.lua $(or $(REPEAT),3)
	@echo
	@BENCH_LUA=luajit BENCH_ONLY="$${BENCH_ONLY:-lines of,read(\"l\"),capture 200,exec.run,read 2 GiB of,write 1 GiB to,ping-pong}" \
	LUA_CPATH="$(CURDIR)/build/luajit/?.so;;" lua5.4 bench/run.lua $(or $(REPEAT),3)

# 50 short remote commands with and without multiplexing (needs root or the
# current user's sshd rights: starts a throwaway sshd on 127.0.0.1).
bench-ssh: all
	@sh scripts/deps.sh
	@d=$$(mktemp -d /tmp/lua-exec-bench-sshd.XXXXXX); \
	sh scripts/sshd.sh start $$d >/dev/null && \
	LUA_CPATH="$(CURDIR)/build/lua5.4/?.so;;" lua5.4 bench/ssh.lua $$d $(or $(REPEAT),3); rc=$$?; \
	sh scripts/sshd.sh stop $$d; rm -rf $$d; exit $$rc

# 20 short commands in containers against the same natively, on a private
# podman (needs root: scripts/podman.sh keeps its state in a temporary dir).
bench-container: all
	@sh scripts/deps.sh
	@d=$$(mktemp -d /tmp/lua-exec-bench-podman.XXXXXX); \
	sh scripts/podman.sh start $$d >/dev/null && \
	LUA_CPATH="$(CURDIR)/build/lua5.4/?.so;;" lua5.4 bench/container.lua $$d $(or $(REPEAT),3); rc=$$?; \
	sh scripts/podman.sh stop $$d; exit $$rc

# The test command of the README: services the runner tests need, the whole
# suite under the race detector, then a short run of every fuzz target.
GO ?= go
# A count, not a duration: go1.26's fuzz coordinator can fail a target with
# a bare "context deadline exceeded" when a duration-based -fuzztime ends on
# a loaded machine (golang/go#75804, fixed in go1.27); a count has no
# deadline to race.
FUZZTIME ?= 20000x

# The chaos soak (e2e/soak_test.go, build tag soak): `make soak` is the long
# run (SOAK_DURATION, default 10m, a kill every 2 s and a phased restart every
# 20 s); `make soak-short` is the CI run that `make test` includes (45 s of
# chaos, fixed seed, the same checks). TOCK_SOAK_DIR=DIR keeps each run's
# chaos.log, ran.log, tock.log and summary.txt under DIR.
SOAK_DURATION ?= 10m
SOAK_KILL_EVERY ?= 2s
SOAK_RESTART_EVERY ?= 20s
SOAK_TIMEOUT ?= 30m

.PHONY: test unit fuzz bench benchkit build soak soak-short

build:
	$(GO) build -o tock ./cmd/tock

test: unit fuzz soak-short

unit:
	./.ci/install-services.sh
	$(GO) test -race -timeout 20m ./...

fuzz:
	@set -e; for pkg in ./protocol ./store ./store/jslog ./ipc ./config ./httpapi ./rest ./internal/systemd ./bench ./bench/suite ./cluster; do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

soak:
	$(GO) vet -tags soak ./e2e/
	TOCK_SOAK_DURATION=$(SOAK_DURATION) TOCK_SOAK_KILL_EVERY=$(SOAK_KILL_EVERY) TOCK_SOAK_RESTART_EVERY=$(SOAK_RESTART_EVERY) \
		$(GO) test -tags soak -run '^TestSoak' -count=1 -v -timeout $(SOAK_TIMEOUT) ./e2e/

soak-short:
	$(GO) vet -tags soak ./e2e/
	TOCK_SOAK_DURATION=45s TOCK_SOAK_KILL_EVERY=2s TOCK_SOAK_RESTART_EVERY=15s \
		TOCK_SOAK_MASTER_KILL_EVERY=20s TOCK_SOAK_SEED=1 \
		$(GO) test -tags soak -run '^TestSoak' -count=1 -v -timeout 6m ./e2e/

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./store ./protocol ./worker/runner ./e2e

# The side-by-side suite of the README's performance section: installs
# redis-server and beanstalkd if missing, writes bench/results/.
benchkit:
	./bench/run.sh

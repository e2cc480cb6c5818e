# The test command of the README: services the runner tests need, the whole
# suite under the race detector, then a short run of every fuzz target.
GO ?= go
FUZZTIME ?= 10s

.PHONY: test unit fuzz bench benchkit build

build:
	$(GO) build -o tock ./cmd/tock

test: unit fuzz

unit:
	./.ci/install-services.sh
	$(GO) test -race -timeout 12m ./...

fuzz:
	@set -e; for pkg in ./protocol ./store ./ipc ./config ./httpapi ./rest ./internal/systemd ./bench ./bench/suite; do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./store ./protocol ./worker/runner ./e2e

# The side-by-side suite of the README's performance section: installs
# redis-server and beanstalkd if missing, writes bench/results/.
benchkit:
	./bench/run.sh

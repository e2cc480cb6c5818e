// Command benchkit runs tock's side-by-side benchmark suite (package
// bench/suite) and writes results.md, results.json and chart.png. bench/run.sh
// installs redis-server and beanstalkd, builds tock and runs it; see
// docs/benchmarks.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/bench/suite"
)

// serveEchoArg makes the binary the suite's echo server process (the
// suite starts os.Executable() with it and an address).
const serveEchoArg = "-serve-echo"

func main() {
	if len(os.Args) == 3 && os.Args[1] == serveEchoArg {
		if err := suite.ServeEcho(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("benchkit", flag.ContinueOnError)
	tock := fs.String("tock", "", "tock binary (required)")
	out := fs.String("out", "bench/results", "directory for results.md, results.json and chart.png")
	targets := fs.String("targets", "", "comma-separated targets (default all): "+strings.Join(suite.TargetNames(), ", "))
	shapes := fs.String("shapes", "16x64,16x1,1x1", "comma-separated load shapes, CLIENTSxPIPELINE")
	reps := fs.Int("reps", 3, "measured repetitions")
	runTime := fs.Duration("run-time", 2*time.Second, "aimed duration of one measured run")
	quick := fs.Bool("quick", false, "a quick look: one repetition of 200ms (overrides -reps and -run-time)")
	requireAll := fs.Bool("require-all", false, "fail when redis-server or beanstalkd is missing instead of skipping them")
	command := fs.String("command", "", "the command line to print as the way to reproduce the results")
	readme := fs.String("readme", "", "also rewrite the performance section of this README (between "+suite.ReadmeStart+" and "+suite.ReadmeEnd+")")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if *tock == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: benchkit -tock PATH [flags]; -h for the flags")
		return 2
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "benchkit", Output: os.Stderr, Level: hclog.Info})
	self, err := os.Executable()
	if err != nil {
		log.Error("cannot find my own binary for the echo server", "error", err)
		return 1
	}
	opts := suite.Options{TockBin: *tock, EchoArgv: []string{self, serveEchoArg}, RequireAll: *requireAll,
		Reps: *reps, RunTime: *runTime, Log: log}
	if *quick {
		opts.Reps, opts.RunTime = 1, 200*time.Millisecond
	}
	if *targets != "" {
		opts.Targets = strings.Split(*targets, ",")
	}
	for _, s := range strings.Split(*shapes, ",") {
		sh, err := suite.ParseShape(s)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		opts.Shapes = append(opts.Shapes, sh)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := suite.Run(ctx, opts)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			log.Warn("interrupted: every server is stopped, no results written")
			return 130
		}
		log.Error("suite failed", "error", err)
		return 1
	}
	rep.Command = *command
	rep.Commit = gitCommit()
	if err := write(*out, rep); err != nil {
		log.Error("writing results", "error", err)
		return 1
	}
	fmt.Print(rep.Table())
	log.Info("results written", "dir", *out)
	if *readme != "" {
		if err := updateReadme(*readme, *out, rep); err != nil {
			log.Error("README", "error", err)
			return 1
		}
		log.Info("README updated", "file", *readme)
	}
	if rep.Failed() {
		log.Error("some runs failed; see results.md")
		return 1
	}
	return 0
}

// write puts results.md, results.json and chart.png into dir.
func write(dir string, rep *suite.Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("results.json: %w", err)
	}
	png, err := suite.Chart(rep)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	for name, b := range map[string][]byte{
		"results.md":   []byte(rep.Markdown()),
		"results.json": append(js, '\n'),
		"chart.png":    png,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// updateReadme rewrites the generated part of the README at path, linking
// to the results in out.
func updateReadme(path, out string, rep *suite.Report) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(path), out)
	if err != nil {
		return err
	}
	b, err := rep.UpdateReadme(old, filepath.ToSlash(rel))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, b, 0o644)
}

// gitCommit is the short commit of the working tree, "" outside git.
func gitCommit() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, Go version and commit",
		Action: func(c *cli.Context) error {
			fmt.Fprintln(c.App.Writer, versionLine(vcsInfo()))
			return nil
		},
	}
}

// buildVCS is what the binary knows of the commit it was built from.
type buildVCS struct {
	revision string // "" when unknown
	time     string // RFC 3339, "" when unknown
	modified bool   // built from a tree with uncommitted changes
}

// vcsInfo is the -ldflags values when set, else the VCS stamp of `go
// build` in a git checkout (debug.ReadBuildInfo's vcs.* settings; `go
// install module@version` has none, but then the module version says it).
func vcsInfo() buildVCS {
	v := buildVCS{revision: commit, time: commitTime}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if v.revision == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v.revision = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if commit == "" {
				v.revision = s.Value
			}
		case "vcs.time":
			if commitTime == "" {
				v.time = s.Value
			}
		case "vcs.modified":
			v.modified = commit == "" && s.Value == "true"
		}
	}
	return v
}

// versionLine is `tock version`'s output.
func versionLine(v buildVCS) string {
	rev := v.revision
	if rev == "" {
		rev = "unknown"
	}
	if v.time != "" {
		rev += " " + v.time
	}
	if v.modified {
		rev += " (modified)"
	}
	return fmt.Sprintf("tock %s (%s, commit %s)", version, runtime.Version(), rev)
}

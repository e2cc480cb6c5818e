//go:build !linux

package main

import (
	"errors"
	"os"
)

// stdoutIsTerminal reports whether stdout is a character device: the best
// guess without termios.
func stdoutIsTerminal() bool {
	fi, err := os.Stdout.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// isTerminal is not implemented off Linux: top then reads keys line by line.
func isTerminal(int) bool { return false }

func makeRaw(int) (func(), error) { return nil, errors.New("raw mode is only implemented on Linux") }

func termSize(int) (cols, rows int) { return 80, 24 }

package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"
)

func TestParseAndExitCode(t *testing.T) {
	var out bytes.Buffer
	fs := NewFlagSet("x", "Usage: x\n", &out)
	n := fs.Int("n", 1, "a number")
	if err := Parse(fs, []string{"-n", "3"}, false); err != nil || *n != 3 {
		t.Fatalf("parse: %v, n=%d", err, *n)
	}
	err := Parse(NewFlagSet("x", "", &out), []string{"-nope"}, false)
	if !errors.Is(err, ErrUsage) || ExitCode(&out, "p", "x", err) != 2 {
		t.Errorf("bad flag: %v", err)
	}
	if err := Parse(NewFlagSet("x", "", &out), []string{"arg"}, false); !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "unexpected arguments") {
		t.Errorf("extra args: %v", err)
	}
	if err := Parse(NewFlagSet("x", "", &out), []string{"arg"}, true); err != nil {
		t.Errorf("allowed args: %v", err)
	}
	out.Reset()
	if err := Parse(NewFlagSet("x", "Usage: x\n", &out), []string{"--help"}, false); !errors.Is(err, flag.ErrHelp) || ExitCode(&out, "p", "x", err) != 0 || !strings.Contains(out.String(), "Usage: x") {
		t.Errorf("--help: %v, %q", err, out.String())
	}
	out.Reset()
	if c := ExitCode(&out, "p", "x", fmt.Errorf("boom")); c != 1 || out.String() != "p x: boom\n" {
		t.Errorf("failure: %d %q", c, out.String())
	}
}

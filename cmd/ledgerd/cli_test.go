package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/creditledger/creditledger/internal/version"
)

func TestVersionFlag(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut)
			if err != nil || out.String() != version.String("ledgerd")+"\n" {
				t.Errorf("ledgerd %s: %v, stdout %q, stderr %q", args[0], err, out.String(), errOut.String())
			}
		})
	}
}

func TestHelpListsEveryCommand(t *testing.T) {
	t.Parallel()
	line := regexp.MustCompile(`^  ([a-z]+) +(\S.*)$`)
	for _, args := range [][]string{{"--help"}, {"-h"}, {"-help"}, {"help"}} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			if err := run(context.Background(), args, func(string) string { return "" }, &out, io.Discard); err != nil {
				t.Fatalf("ledgerd %s: %v", args[0], err)
			}
			_, list, ok := strings.Cut(out.String(), "commands:\n")
			if !ok {
				t.Fatalf("no command list in %q", out.String())
			}
			list, _, _ = strings.Cut(list, "\n\n")
			listed := map[string]bool{}
			for _, l := range strings.Split(list, "\n") {
				m := line.FindStringSubmatch(l)
				if m == nil {
					t.Errorf("%q is not one command on one line", l)
					continue
				}
				listed[m[1]] = true
			}
			for _, want := range []string{"serve", "migrate", "verify", "token", "keygen", "version", "help"} {
				if !listed[want] {
					t.Errorf("%s is not listed:\n%s", want, out.String())
				}
			}
			if len(listed) != len(commands)+1 {
				t.Errorf("%d commands listed, %d exist (and help)", len(listed), len(commands))
			}
		})
	}
}

// Every listed command exists: its own -h answers, with exit status 0.
func TestEveryCommandHasHelp(t *testing.T) {
	t.Parallel()
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if err := run(context.Background(), []string{c.name, "-h"}, func(string) string { return "" }, io.Discard, io.Discard); err != nil {
				t.Errorf("ledgerd %s -h: %v", c.name, err)
			}
		})
	}
}

package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/creditledger/creditledger/internal/version"
)

func TestVersionFlag(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--version"}, {"-version"}, {"-addr", "127.0.0.1:1", "-version"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			// No ledger answers on the address: the version needs none,
			// and no load is sent.
			if err := run(t.Context(), args, &stdout, &stderr); err != nil || stdout.String() != version.String("ledgerbench")+"\n" {
				t.Errorf("ledgerbench %s: %v, stdout %q, stderr %q", strings.Join(args, " "), err, stdout.String(), stderr.String())
			}
		})
	}
}

func TestHelpExitsZero(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"-h"}, &stdout, &stderr); err != nil || !strings.Contains(stderr.String(), "-version") {
		t.Errorf("ledgerbench -h: %v, usage %q", err, stderr.String())
	}
}

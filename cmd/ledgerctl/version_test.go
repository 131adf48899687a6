package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/creditledger/creditledger/internal/version"
)

func TestVersionFlag(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--version"}, {"-version"}, {"--addr", "127.0.0.1:1", "--version"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			// No ledger answers on the address: the version needs none.
			err := run(t.Context(), args, func(string) string { return "" }, &stdout, &stderr)
			if exitCode(err) != exitOK || stdout.String() != version.String("ledgerctl")+"\n" {
				t.Errorf("ledgerctl %s: exit %d (%v), stdout %q", strings.Join(args, " "), exitCode(err), err, stdout.String())
			}
		})
	}
}

func TestHelpMentionsVersion(t *testing.T) {
	t.Parallel()
	var stdout bytes.Buffer
	err := run(t.Context(), []string{"--help"}, func(string) string { return "" }, &stdout, &bytes.Buffer{})
	if exitCode(err) != exitOK || !strings.Contains(stdout.String(), "ledgerctl --version") {
		t.Errorf("exit %d, help %q", exitCode(err), stdout.String())
	}
}

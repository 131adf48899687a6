package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	getenv := func(string) string { return "" }
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, getenv, &out, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--version: %v, want flag.ErrHelp (exit 0)", err)
	}
	if !strings.HasPrefix(out.String(), "demo ") {
		t.Errorf("--version printed %q", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"--help"}, getenv, &out, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v, want flag.ErrHelp (exit 0)", err)
	}
	help := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{"Usage: demo", "--bin", "--data-dir", "(default .data/demo)", "--portal-addr", "(default 127.0.0.1:8090)", "--workspace", "(default acme)", "--version"} {
		if !strings.Contains(help, want) {
			t.Errorf("--help lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRefusesWhatItDoesNotKnow(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--port", "1"}, {"serve"}} {
		err := run(context.Background(), args, func(string) string { return "" }, io.Discard, io.Discard)
		if err == nil || errors.Is(err, flag.ErrHelp) {
			t.Errorf("%q: %v, want an error", args, err)
		}
	}
}

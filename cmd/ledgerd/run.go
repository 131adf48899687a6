package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/creditledger/creditledger/internal/config"
	"github.com/creditledger/creditledger/internal/version"
)

// command is one subcommand of ledgerd.
type command struct {
	name    string
	summary string // one line, for the help
	run     func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error
}

// commands are ledgerd's subcommands, in the order the help lists them.
var commands = []command{
	{
		"serve", "serve gRPC and the REST gateway (the default when no command is given)",
		func(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
			return serveCmd(ctx, args, getenv, stderr)
		},
	},
	{
		"migrate", "apply the schema migrations and set up the runtime role (PostgreSQL), or create the embedded store",
		func(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
			return migrateCmd(ctx, args, getenv, stderr)
		},
	},
	{"verify", "check every invariant of the store (balances, chains, keys, requests); exit 1 if any fails", verifyCmd},
	{
		"token", "mint a bearer token with a private key (-key) or the development secret LEDGER_AUTH_SECRET",
		func(_ context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
			return tokenCmd(args, getenv, stdout, stderr)
		},
	},
	{
		"keygen", "make an EdDSA or ES256 signing key and add its public half to a JWKS file",
		func(_ context.Context, args []string, _ func(string) string, stdout, stderr io.Writer) error {
			return keygenCmd(args, stdout, stderr)
		},
	},
	{
		"version", "print the version (also --version)",
		func(_ context.Context, _ []string, _ func(string) string, stdout, _ io.Writer) error {
			_, err := fmt.Fprintln(stdout, versionString())
			return err
		},
	},
}

// usage is the help: every subcommand with its one-line summary.
func usage() string {
	var b strings.Builder
	b.WriteString("usage: ledgerd [command] [flags]\n\nCreditLedger server: gRPC and the REST gateway over PostgreSQL or the embedded store.\n\ncommands:\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, c := range commands {
		_, _ = fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	_, _ = fmt.Fprintf(tw, "  %s\t%s\n", "help", "print this help (also -h, --help)")
	_ = tw.Flush()
	b.WriteString("\nRun \"ledgerd <command> -h\" for the command's flags; configuration also comes from LEDGER_* variables.\n")
	return b.String()
}

// run is the whole program; main only supplies the process's signals,
// arguments, environment and output. Logs go to stderr as JSON lines;
// stdout carries a command's result (a token, the version, the help).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	name := "serve"
	if len(args) > 0 {
		switch args[0] {
		case "-version", "--version":
			args = append([]string{"version"}, args[1:]...)
		case "-h", "-help", "--help":
			args = append([]string{"help"}, args[1:]...)
		}
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if name == "help" {
		_, err := io.WriteString(stdout, usage())
		return err
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == name })
	if i < 0 {
		_, _ = io.WriteString(stderr, usage())
		return fmt.Errorf("unknown command %q", name)
	}
	err := commands[i].run(ctx, args, getenv, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func versionString() string { return version.String("ledgerd") }

// newLogger writes JSON lines with snake_case keys to w.
func newLogger(level string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "ts"
	enc.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	enc.EncodeDuration = zapcore.SecondsDurationEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), lvl)
	return zap.New(core, zap.AddCaller()), nil
}

func migrateCmd(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := config.LoadForMigrate(args, getenv, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.LogLevel, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	return migrate(ctx, cfg, log)
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/creditledger/creditledger/internal/config"
	"github.com/creditledger/creditledger/internal/version"
)

const usageText = `usage: ledgerd <command> [flags]

commands:
  serve     serve gRPC and HTTP (the default)
  migrate   apply the schema migrations as the owner (LEDGER_MIGRATE_DATABASE_URL, else
            LEDGER_DATABASE_URL) and create or check the runtime role (LEDGER_RUNTIME_ROLE),
            or create the embedded store
  verify    check every invariant of the store (balances, chains, keys, requests); exit 1 if any fails
  token     mint a bearer token with a private key (-key), or the development secret LEDGER_AUTH_SECRET
  keygen    make an EdDSA or ES256 signing key and add its public half to a JWKS file
  version   print the version

Run "ledgerd <command> -h" for the command's flags.
`

// run is the whole program; main only supplies the process's signals,
// arguments, environment and output. Logs go to stderr as JSON lines;
// stdout carries a command's result (a token, the version).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serveCmd(ctx, args, getenv, stderr)
	case "migrate":
		err = migrateCmd(ctx, args, getenv, stderr)
	case "verify":
		err = verifyCmd(ctx, args, getenv, stdout, stderr)
	case "token":
		err = tokenCmd(args, getenv, stdout, stderr)
	case "keygen":
		err = keygenCmd(args, stdout, stderr)
	case "version":
		_, err = fmt.Fprintln(stdout, versionString())
	case "help":
		_, err = io.WriteString(stdout, usageText)
	default:
		_, _ = io.WriteString(stderr, usageText)
		return fmt.Errorf("unknown command %q", cmd)
	}
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

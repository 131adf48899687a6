// Command ledgerctl is the operator's CLI for CreditLedger, over gRPC.
//
//	ledgerctl [global flags] <command> [flags] [args]
//	ledgerctl --version
//
// Global flags, accepted before or after the command:
//
//	--addr       ledgerd gRPC address   [LEDGER_ADDR, default 127.0.0.1:9090]
//	--token      bearer token           [LEDGER_TOKEN]
//	--workspace  workspace (agency)     [LEDGER_WORKSPACE]
//	--timeout    deadline of the command (default 30s; events tail: none unless given)
//	--tls        connect with TLS (system roots unless --ca-file) [LEDGERCTL_TLS]
//	--ca-file    CA certificates of ledgerd's certificate; implies --tls [LEDGERCTL_CA_FILE]
//	--cert-file  client certificate for mTLS; implies --tls [LEDGERCTL_CERT_FILE]
//	--key-file   its key [LEDGERCTL_KEY_FILE]
//
// Exit codes: 0 ok; 1 refused by the ledger (the reason is printed) or
// another failure; 2 usage error; 3 ledger unavailable (safe to retry:
// writes carry an idempotency key).
//
// Run "ledgerctl help" for the commands and "ledgerctl <command> --help"
// for a command's flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc/codes"

	"github.com/creditledger/creditledger/ledgerclient"
)

// Exit codes.
const (
	exitOK          = 0
	exitRefused     = 1
	exitUsage       = 2
	exitUnavailable = 3
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	code := exitCode(err)
	if err != nil {
		fmt.Fprintln(os.Stderr, describe(err))
	}
	os.Exit(code)
}

// usageError is a command line the CLI cannot run.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{msg: fmt.Sprintf(format, args...)} }

// exitStatusError carries the exit status of a child process (verify).
type exitStatusError struct {
	code int
	msg  string
}

func (e *exitStatusError) Error() string { return e.msg }

// exitCode maps run's error to the process status.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	var xe *exitStatusError
	if errors.As(err, &xe) {
		return xe.code
	}
	if unavailable(err) {
		return exitUnavailable
	}
	return exitRefused
}

func unavailable(err error) bool {
	switch ledgerclient.CodeOf(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// describe is the one line printed on stderr for a failure.
func describe(err error) string {
	var ue *usageError
	if errors.As(err, &ue) {
		return "usage error: " + ue.msg
	}
	var le *ledgerclient.Error
	if errors.As(err, &le) {
		switch {
		case unavailable(err):
			return "unavailable: the ledger did not answer (" + le.Message + "); retrying the same command is safe"
		case le.Reason != "":
			return "refused: " + le.Reason + ": " + le.Message + metadataSuffix(le.Metadata)
		default:
			return "failed: " + le.Code.String() + ": " + le.Message
		}
	}
	return "error: " + err.Error()
}

// run is the whole program; main only supplies the process's arguments,
// environment and output.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := &cli{stdout: stdout, stderr: stderr, getenv: getenv}
	return c.main(ctx, args)
}

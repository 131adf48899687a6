package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/creditledger/creditledger/internal/version"
	"github.com/creditledger/creditledger/ledgerclient"
)

// globals are the flags every command accepts.
type globals struct {
	addr      string
	token     string
	workspace string
	timeout   time.Duration
	// TLS: on with useTLS or any of the files; caFile empty trusts the
	// system roots; certFile and keyFile are the client certificate (mTLS).
	useTLS                    bool
	caFile, certFile, keyFile string
}

var globalNames = map[string]bool{
	"addr": true, "token": true, "workspace": true, "timeout": true,
	"tls": true, "ca-file": true, "cert-file": true, "key-file": true,
}

// Environment variables of the TLS flags.
const (
	envTLS      = "LEDGERCTL_TLS"
	envCAFile   = "LEDGERCTL_CA_FILE"
	envCertFile = "LEDGERCTL_CERT_FILE"
	envKeyFile  = "LEDGERCTL_KEY_FILE"
)

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.addr, "addr", g.addr, "ledgerd gRPC address [LEDGER_ADDR]")
	fs.StringVar(&g.token, "token", g.token, "bearer token [LEDGER_TOKEN]")
	fs.StringVar(&g.workspace, "workspace", g.workspace, "workspace (agency) [LEDGER_WORKSPACE]")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "deadline of the whole command")
	fs.BoolVar(&g.useTLS, "tls", g.useTLS, "connect with TLS, trusting the system roots unless --ca-file ["+envTLS+"]")
	fs.StringVar(&g.caFile, "ca-file", g.caFile, "CA certificates (PEM) that sign ledgerd's certificate; implies --tls ["+envCAFile+"]")
	fs.StringVar(&g.certFile, "cert-file", g.certFile, "client certificate (PEM) for mTLS; implies --tls ["+envCertFile+"]")
	fs.StringVar(&g.keyFile, "key-file", g.keyFile, "key of --cert-file (PEM) ["+envKeyFile+"]")
}

// tls reports whether the connection uses TLS.
func (g *globals) tls() bool {
	return g.useTLS || g.caFile != "" || g.certFile != "" || g.keyFile != ""
}

// cli is one invocation.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	g              globals
	client         *ledgerclient.Client
}

// command is one ledgerctl command. setup registers the command's flags
// and returns the function that runs it with the positional arguments.
type command struct {
	name     string // "balance", "requests accept"
	synopsis string // arguments shown in the usage line
	summary  string
	setup    func(fs *flag.FlagSet) func(ctx context.Context, c *cli, args []string) error
	// follows: the command runs until interrupted (events tail); --timeout
	// bounds it only when given.
	follows bool
}

var commands = map[string]*command{}

func register(cmds ...*command) {
	for _, c := range cmds {
		commands[c.name] = c
	}
}

const usageHeader = `usage: ledgerctl [global flags] <command> [flags] [args]
       ledgerctl --version

CreditLedger operator CLI over gRPC.

global flags (before or after the command):
  --addr ADDR        ledgerd gRPC address [LEDGER_ADDR] (default 127.0.0.1:9090)
  --token TOKEN      bearer token [LEDGER_TOKEN]
  --workspace WS     workspace (agency) [LEDGER_WORKSPACE]
  --timeout D        deadline of the whole command (default 30s; events tail: none unless given)
  --tls              connect with TLS (system roots unless --ca-file) [LEDGERCTL_TLS]
  --ca-file FILE     CA certificates of ledgerd's certificate; implies --tls [LEDGERCTL_CA_FILE]
  --cert-file FILE   client certificate for mTLS; implies --tls [LEDGERCTL_CERT_FILE]
  --key-file FILE    key of the client certificate [LEDGERCTL_KEY_FILE]

exit codes: 0 ok, 1 refused (reason printed) or failed, 2 usage error, 3 ledger unavailable

commands:
`

func (c *cli) usage(w io.Writer) {
	var b strings.Builder
	b.WriteString(usageHeader)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, name := range slices.Sorted(maps.Keys(commands)) {
		_, _ = fmt.Fprintf(tw, "  %s\t%s\n", name, commands[name].summary)
	}
	_ = tw.Flush()
	b.WriteString("\nRun \"ledgerctl <command> --help\" for a command's flags.\n")
	_, _ = io.WriteString(w, b.String())
}

func (c *cli) commandHelp(w io.Writer, cmd *command, fs *flag.FlagSet) {
	var b strings.Builder
	_, _ = fmt.Fprintf(&b, "usage: ledgerctl %s %s\n\n%s\n", cmd.name, cmd.synopsis, cmd.summary)
	var own []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if !globalNames[f.Name] {
			own = append(own, f)
		}
	})
	if len(own) > 0 {
		b.WriteString("\nflags:\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, f := range own {
			def := ""
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
				def = " (default " + f.DefValue + ")"
			}
			_, _ = fmt.Fprintf(tw, "  --%s\t%s%s\n", f.Name, f.Usage, def)
		}
		_ = tw.Flush()
	}
	b.WriteString("\nglobal flags: --addr, --token, --workspace, --timeout, --tls, --ca-file, --cert-file, --key-file (see ledgerctl --help)\n")
	_, _ = io.WriteString(w, b.String())
}

func (c *cli) main(ctx context.Context, args []string) error {
	env := func(k, def string) string {
		if v := c.getenv(k); v != "" {
			return v
		}
		return def
	}
	c.g = globals{
		addr: env("LEDGER_ADDR", "127.0.0.1:9090"), token: c.getenv("LEDGER_TOKEN"),
		workspace: c.getenv("LEDGER_WORKSPACE"), timeout: 30 * time.Second,
		caFile: c.getenv(envCAFile), certFile: c.getenv(envCertFile), keyFile: c.getenv(envKeyFile),
	}
	if v := c.getenv(envTLS); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return usagef("%s=%q is not a boolean", envTLS, v)
		}
		c.g.useTLS = b
	}

	top := flag.NewFlagSet("ledgerctl", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	c.g.register(top)
	showVersion := top.Bool("version", false, "print the version and exit")
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.usage(c.stdout)
			return nil
		}
		return usagef("%v (see ledgerctl --help)", err)
	}
	if *showVersion {
		_, err := fmt.Fprintln(c.stdout, version.String("ledgerctl"))
		return err
	}
	rest := top.Args()
	if len(rest) == 0 {
		c.usage(c.stderr)
		return usagef("no command given")
	}
	if rest[0] == "help" {
		if cmd, _ := lookup(rest[1:]); cmd != nil {
			fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
			cmd.setup(fs)
			c.commandHelp(c.stdout, cmd, fs)
			return nil
		}
		c.usage(c.stdout)
		return nil
	}
	cmd, rest := lookup(rest)
	if cmd == nil {
		words := top.Args()
		return usagef("unknown command %q (see ledgerctl --help)", strings.Join(words[:min(2, len(words))], " "))
	}
	fs := flag.NewFlagSet("ledgerctl "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.g.register(fs)
	runCmd := cmd.setup(fs)
	pos, err := parseInterspersed(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		c.commandHelp(c.stdout, cmd, fs)
		return nil
	}
	if err != nil {
		return usagef("%v (see ledgerctl %s --help)", err, cmd.name)
	}
	if c.g.timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	timed := !cmd.follows
	for _, set := range []*flag.FlagSet{top, fs} {
		set.Visit(func(f *flag.Flag) { timed = timed || f.Name == "timeout" })
	}
	var cancel context.CancelFunc
	if timed {
		ctx, cancel = context.WithTimeout(ctx, c.g.timeout)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	defer func() {
		if c.client != nil {
			_ = c.client.Close()
		}
	}()
	return runCmd(ctx, c, pos)
}

// lookup finds the command named by the first one or two words.
func lookup(args []string) (*command, []string) {
	if len(args) >= 2 {
		if cmd, ok := commands[args[0]+" "+args[1]]; ok {
			return cmd, args[2:]
		}
	}
	if len(args) >= 1 {
		if cmd, ok := commands[args[0]]; ok {
			return cmd, args[1:]
		}
	}
	return nil, nil
}

// parseInterspersed parses flags anywhere among the arguments (the flag
// package stops at the first positional one) and returns the positional
// arguments. Everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// ledger dials the ledger once per invocation.
func (c *cli) ledger(ctx context.Context) (*ledgerclient.Client, error) {
	if c.client != nil {
		return c.client, nil
	}
	opts := []ledgerclient.Option{ledgerclient.WithCallTimeout(c.g.timeout)}
	if c.g.token != "" {
		opts = append(opts, ledgerclient.WithToken(c.g.token))
	}
	if c.g.tls() {
		cfg, err := ledgerclient.TLSConfigFromFiles(c.g.caFile, c.g.certFile, c.g.keyFile)
		if err != nil {
			return nil, usagef("%v", err)
		}
		opts = append(opts, ledgerclient.WithTLS(cfg))
	}
	cl, err := ledgerclient.Dial(ctx, c.g.addr, opts...)
	if err != nil {
		return nil, err
	}
	c.client = cl
	return cl, nil
}

// ws returns the workspace or a usage error.
func (c *cli) ws() (string, error) {
	if c.g.workspace == "" {
		return "", usagef("a workspace is required: --workspace or LEDGER_WORKSPACE")
	}
	return c.g.workspace, nil
}

// open is every workspace command's prologue: the workspace, then the
// positional arguments (n of them, described by what), then the client.
func (c *cli) open(ctx context.Context, args []string, n int, what string) (string, *ledgerclient.Client, error) {
	ws, err := c.ws()
	if err != nil {
		return "", nil, err
	}
	if err := nargs(args, n, what); err != nil {
		return "", nil, err
	}
	l, err := c.ledger(ctx)
	if err != nil {
		return "", nil, err
	}
	return ws, l, nil
}

// nargs checks the number of positional arguments.
func nargs(args []string, n int, what string) error {
	if len(args) != n {
		if n == 0 {
			return usagef("unexpected arguments %q", args)
		}
		return usagef("want %s, got %d argument(s) %q", what, len(args), args)
	}
	return nil
}

func table(w io.Writer, header string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, header)
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = cell(c)
		}
		_, _ = fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// cell makes a value safe for a terminal table: control characters (a tab
// or newline would forge a column or a row), bidirectional controls (which
// reorder what the operator reads) and invalid UTF-8 are shown escaped.
// The ledger refuses them on input; this guards what was stored before.
func cell(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || bidiControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && strings.HasPrefix(s[i:], "\xef\xbf\xbd"):
			b.WriteRune(r) // a real U+FFFD
		case r == utf8.RuneError:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case unicode.IsControl(r) || bidiControl(r):
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func bidiControl(r rune) bool {
	return r == 0x061C || r == 0x200E || r == 0x200F || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}

func metadataSuffix(md map[string]string) string {
	if len(md) == 0 {
		return ""
	}
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+md[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

package consumer

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kong"

	"github.com/creditledger/creditledger/internal/token"
	"github.com/creditledger/creditledger/internal/version"
	"github.com/creditledger/creditledger/ledgerclient"
)

// Program names a service for Parse.
type Program struct {
	// Name is the binary's name, "checkout": --help and --version say it,
	// the log's "service" field is it, and it names the service's
	// environment variables in upper case (CHECKOUT_DB, …): ${prefix} in
	// a setting's env tag.
	Name string
	// Summary is the first line of --help.
	Summary string
	// Vars are more ${name} values for the settings' tags, such as
	// "http_addr" (the default of --http-addr) and "db" (of --db).
	Vars map[string]string
}

// Prefix is the start of the service's variables: "CHECKOUT".
func (p Program) Prefix() string { return strings.ToUpper(p.Name) }

// Settings are what checkout and invoicing configure alike. A service
// embeds them in its own settings struct, beside its own flags:
//
//	type settings struct {
//		consumer.Settings
//		HoldTTL string `name:"hold-ttl" env:"${prefix}_HOLD_TTL" default:"24h" help:"how long an order's credits stay held"`
//	}
//
// Tags are kong's (github.com/alecthomas/kong): name, env, default and
// help; ${prefix} is Program.Prefix, ${http_addr} and ${db} come from
// Program.Vars.
type Settings struct {
	HTTPSettings
	DB     string         `name:"db" env:"${prefix}_DB" default:"${db}" placeholder:"FILE" help:"its SQLite file, created if missing"`
	Ledger LedgerSettings `embed:""`
	// Reconcile is the period of the reconciliation pass, as given; Check
	// sets ReconcileInterval from it.
	Reconcile         string        `name:"reconcile-interval" env:"${prefix}_RECONCILE_INTERVAL" default:"30s" placeholder:"DURATION" help:"period of the reconciliation pass"`
	ReconcileInterval time.Duration `kong:"-"`
	Auth              AuthSettings  `embed:""`
}

// Check validates the settings and reads what comes from the environment
// only: the ledger's token and TLS files, the JWKS reload interval, the
// development HS256 secret.
func (s *Settings) Check(p Program, getenv func(string) string) error {
	d, err := time.ParseDuration(s.Reconcile)
	if err != nil || d <= 0 {
		return fmt.Errorf("reconcile interval %q: want a positive duration like 30s", s.Reconcile)
	}
	s.ReconcileInterval = d
	if err := s.Ledger.Check(getenv); err != nil {
		return err
	}
	if err := s.Auth.Load(p.Prefix(), getenv); err != nil {
		return err
	}
	return s.Auth.Check(s.HTTPAddr)
}

// HTTPSettings are a service's listen address, --http-addr: every
// service has one, also those that embed no other Settings (the portal).
type HTTPSettings struct {
	HTTPAddr string `name:"http-addr" env:"${prefix}_HTTP_ADDR" default:"${http_addr}" placeholder:"HOST:PORT" help:"listen address (port 0 picks one)"`
}

// LedgerSettings say how a service reaches ledgerd. The address is a flag;
// the bearer token and the TLS files come from the environment only
// (LEDGER_TOKEN or LEDGER_TOKEN_FILE; LEDGER_CA_FILE or LEDGER_TLS,
// LEDGER_CLIENT_CERT_FILE, LEDGER_CLIENT_KEY_FILE): a process listing
// shows flags to every user of the machine.
type LedgerSettings struct {
	Addr  string      `name:"ledger-addr" env:"LEDGER_ADDR" placeholder:"HOST:PORT" help:"ledgerd's gRPC address (required)"`
	Token string      `kong:"-"`
	TLS   *tls.Config `kong:"-"` // nil: plaintext
}

// Check requires the address and reads the token and TLS settings.
func (l *LedgerSettings) Check(getenv func(string) string) error {
	if l.Addr == "" {
		return errors.New("the ledger address is required: --ledger-addr or LEDGER_ADDR")
	}
	var err error
	if l.TLS, err = ledgerclient.TLSFromEnv(getenv); err != nil {
		return err
	}
	l.Token, err = ReadSecret(getenv, "LEDGER_TOKEN")
	return err
}

// Parse fills settings, a pointer to the service's settings struct (kong
// tags), from args and from the environment as getenv reads it, in this
// order of precedence: a flag, its non-empty variable, its default. An
// empty variable counts as unset, as it always did.
//
// --help and --version print to stdout and return flag.ErrHelp: the
// caller stops there, successfully (Main exits 0). Mistakes read as the
// standard flag package words them ("flag provided but not defined"), so
// that scripts matching its messages keep working.
//
// Once parsed, settings that are a Checker check themselves (and read
// their secrets, which only the environment gives): Parse returns what
// Check says.
func Parse(p Program, settings any, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var root struct {
		Version kong.VersionFlag `help:"Print the version and exit."`
	}
	vars := kong.Vars{
		"prefix": p.Prefix(), "version": version.String(p.Name),
		"token_issuer": token.DefaultIssuer, "token_audience": token.DefaultAudience,
	}
	for k, v := range p.Vars {
		vars[k] = v
	}
	if _, ok := vars["db"]; !ok {
		vars["db"] = p.Name + ".db"
	}
	exited := false
	env := envNames{}
	k, err := kong.New(&root,
		kong.Embed(settings),
		kong.Name(p.Name),
		kong.Description(p.Summary),
		vars,
		kong.Writers(stdout, stderr),
		kong.Exit(func(int) { exited = true }),
		kong.ValueFormatter(env.helpText),
		kong.Resolvers(env.resolver(getenv)),
		kong.Help(func(o kong.HelpOptions, ctx *kong.Context) error {
			if err := kong.DefaultHelpPrinter(o, ctx); err != nil {
				return err
			}
			if d, ok := settings.(Documenter); ok {
				return printEnvironment(ctx.Stdout, d.Environment(p))
			}
			return nil
		}),
	)
	if err != nil {
		return fmt.Errorf("settings: %w", err) // a mistake in the tags
	}
	env.take(k.Model.Node)
	_, err = k.Parse(args)
	switch {
	case exited:
		return flag.ErrHelp
	case err != nil:
		return flagWords(err)
	}
	if c, ok := settings.(Checker); ok {
		return c.Check(p, getenv)
	}
	return nil
}

// Checker is settings that validate themselves once parsed, and read
// what comes from the environment only (secrets). A service's settings
// that embed Settings are one; when they have a Check of their own, it
// calls Settings.Check first.
type Checker interface {
	Check(p Program, getenv func(string) string) error
}

// envNames are the environment variables of each flag. kong would read
// them with os.LookupEnv, where an empty variable counts as set and
// tests cannot give their own environment; so the names are taken out of
// kong's model and resolved through getenv instead.
type envNames map[*kong.Value][]string

func (e envNames) take(n *kong.Node) {
	for _, f := range n.Flags {
		if len(f.Tag.Envs) > 0 {
			e[f.Value] = f.Tag.Envs
			f.Tag.Envs, f.Envs = nil, nil
		}
	}
	for _, c := range n.Children {
		e.take(c)
	}
}

func (e envNames) resolver(getenv func(string) string) kong.Resolver {
	return kong.ResolverFunc(func(_ *kong.Context, _ *kong.Path, f *kong.Flag) (any, error) {
		for _, name := range e[f.Value] {
			if v := getenv(name); v != "" {
				return v, nil
			}
		}
		return nil, nil
	})
}

// helpText is a flag's help with its variable and default:
// "listen address (port 0 picks one) [$CHECKOUT_HTTP_ADDR] (default 127.0.0.1:8081)".
func (e envNames) helpText(v *kong.Value) string {
	h := v.Help
	if names := e[v]; len(names) > 0 {
		h += " [$" + strings.Join(names, ", $") + "]"
	}
	if v.HasDefault && v.Default != "" {
		h += " (default " + v.Default + ")"
	}
	return h
}

// flagWords words kong's mistakes as the flag package and the services
// did: "flag provided but not defined: --port", "unexpected arguments
// [\"serve\"]".
func flagWords(err error) error {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "unknown flag "); ok {
		return errors.New("flag provided but not defined: " + rest)
	}
	if rest, ok := strings.CutPrefix(msg, "unexpected argument "); ok {
		arg, _, _ := strings.Cut(rest, ",") // ", did you mean …?"
		return fmt.Errorf("unexpected arguments %q", []string{arg})
	}
	return err
}

// EnvVar is a setting that only the environment gives, for --help.
type EnvVar struct {
	Name string // "LEDGER_TOKEN[_FILE]"
	Help string
}

// Documenter is settings that say, for --help, what they read from the
// environment only. Settings is one; a service's settings with more
// append theirs to Settings.Environment's.
type Documenter interface {
	Environment(p Program) []EnvVar
}

// Environment lists what Settings read from the environment only.
func (s *Settings) Environment(p Program) []EnvVar {
	return []EnvVar{
		{"LEDGER_TOKEN[_FILE]", "bearer token sent to ledgerd"},
		{"LEDGER_CA_FILE, LEDGER_TLS", "TLS to ledgerd: its CA file, or true for the system's roots (default: plaintext, logged)"},
		{"LEDGER_CLIENT_CERT_FILE, LEDGER_CLIENT_KEY_FILE", "client certificate for mTLS to ledgerd"},
		{p.Prefix() + "_AUTH_SECRET[_FILE]", "HS256 token secret instead of a JWKS: development only"},
		{p.Prefix() + "_AUTH_JWKS_RELOAD_INTERVAL", "how often the JWKS file is checked for changes (default 10s)"},
	}
}

func printEnvironment(w io.Writer, vars []EnvVar) error {
	if len(vars) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	// A tabwriter keeps the first write error and Flush returns it.
	_, _ = fmt.Fprintln(tw, "\nFrom the environment only (a secret never is a flag; X_FILE names a file that holds X):")
	for _, v := range vars {
		_, _ = fmt.Fprintf(tw, "  %s\t%s\n", v.Name, v.Help)
	}
	return tw.Flush()
}

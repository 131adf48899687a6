package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/ledgerclient"
)

func init() {
	register(
		balanceCmd(), historyCmd(), accountsCmd(),
		requestsListCmd(), requestsDecideCmd("accept"), requestsDecideCmd("reject"), requestsCancelCmd(),
		settingsGetCmd(), settingsSetCmd(),
		packagesListCmd(), packagesCreateCmd(), packagesArchiveCmd(),
		ratesListCmd(), ratesSetCmd(), quoteCmd(),
		creditCmd(), debitCmd(), verifyCmd(),
	)
}

type runFunc = func(ctx context.Context, c *cli, args []string) error

// --- reading ---

func balanceCmd() *command {
	return &command{
		name: "balance", synopsis: "--account ACCOUNT [--min-version V]",
		summary: "show an account's balance, version and pending request credits",
		setup: func(fs *flag.FlagSet) runFunc {
			account := fs.String("account", "", "account (client) identifier; required")
			minVersion := fs.Int64("min-version", 0, "read the account at this version or later (the version a write answered): a read replica that has not replayed it is passed over for the primary")
			return func(ctx context.Context, c *cli, args []string) error {
				ws, err := c.ws()
				if err != nil {
					return err
				}
				if err := nargs(args, 0, ""); err != nil {
					return err
				}
				if *account == "" {
					return usagef("--account is required")
				}
				l, err := c.ledger(ctx)
				if err != nil {
					return err
				}
				res, err := l.GetBalance(ctx, &pb.GetBalanceRequest{Workspace: ws, Account: *account, MinVersion: *minVersion})
				if err != nil {
					return err
				}
				b := res.GetBalance()
				enabled := "disabled"
				if b.GetCreditPaymentsEnabled() {
					enabled = "enabled"
				}
				rows := [][]string{
					{"workspace", b.GetWorkspace()},
					{"account", b.GetAccount()},
					{"balance", fmt.Sprintf("%d credits", b.GetBalance())},
					{"version", strconv.FormatInt(b.GetVersion(), 10)},
					{"pending requests", fmt.Sprintf("%d credits", b.GetPendingRequestCredits())},
					{"credit payments", enabled},
					{"updated", formatTime(b.GetUpdateTime())},
				}
				return table(c.stdout, "FIELD\tVALUE", rows)
			}
		},
	}
}

func historyCmd() *command {
	return &command{
		name: "history", synopsis: "--account ACCOUNT [--type in|out] [--kind KIND] [--since T] [--until T] [--limit N] [--csv]",
		summary: "list an account's transactions, newest first, with the running balance",
		setup: func(fs *flag.FlagSet) runFunc {
			account := fs.String("account", "", "account (client) identifier; required")
			typ := fs.String("type", "", "only IN or OUT entries")
			kind := fs.String("kind", "", "only this kind: purchase, request_approved, service_purchase, invoice_payment, refund, adjustment")
			since := fs.String("since", "", "only entries at or after this RFC 3339 time")
			until := fs.String("until", "", "only entries before this RFC 3339 time")
			limit := fs.Int("limit", 50, "at most this many entries; 0 for all")
			asCSV := fs.Bool("csv", false, "write the server's CSV export instead of a table: every entry of the period, oldest first (--type, --kind and --limit do not apply)")
			return func(ctx context.Context, c *cli, args []string) error {
				ws, err := c.ws()
				if err != nil {
					return err
				}
				if err := nargs(args, 0, ""); err != nil {
					return err
				}
				if *account == "" {
					return usagef("--account is required")
				}
				if *limit < 0 {
					return usagef("--limit must be >= 0")
				}
				req := &pb.ListTransactionsRequest{Workspace: ws, Account: *account, PageSize: 500}
				if *limit > 0 && *limit < 500 {
					req.PageSize = int32(*limit)
				}
				if *typ != "" {
					v, ok := pb.TransactionType_value["TRANSACTION_TYPE_"+strings.ToUpper(*typ)]
					if !ok || v == 0 {
						return usagef("--type must be in or out")
					}
					req.Type = pb.TransactionType(v)
				}
				if *kind != "" {
					k, err := parseKind(*kind)
					if err != nil {
						return err
					}
					req.Kind = k
				}
				for _, t := range []struct {
					s   string
					dst **timestamppb.Timestamp
					f   string
				}{{*since, &req.StartTime, "--since"}, {*until, &req.EndTime, "--until"}} {
					if t.s == "" {
						continue
					}
					tm, err := time.Parse(time.RFC3339, t.s)
					if err != nil {
						return usagef("%s: want an RFC 3339 time like 2026-01-31T00:00:00Z", t.f)
					}
					*t.dst = timestamppb.New(tm)
				}
				l, err := c.ledger(ctx)
				if err != nil {
					return err
				}
				if *asCSV {
					limited := false
					fs.Visit(func(f *flag.Flag) { limited = limited || f.Name == "limit" && *limit != 0 })
					if *typ != "" || *kind != "" || limited {
						return usagef("--csv exports every entry of the period: --type, --kind and --limit do not apply")
					}
					return exportCSV(ctx, c, l, &pb.ExportTransactionsRequest{
						Workspace: ws, Account: *account, StartTime: req.GetStartTime(), EndTime: req.GetEndTime(),
					})
				}
				var txs []*pb.Transaction
				for t, err := range l.Transactions(ctx, req) {
					if err != nil {
						return err
					}
					txs = append(txs, t)
					if *limit > 0 && len(txs) == *limit {
						break
					}
				}
				rows := make([][]string, 0, len(txs))
				for _, t := range txs {
					rows = append(rows, []string{
						formatTime(t.GetCreateTime()), inOut(t.GetType()), kindName(t.GetKind()),
						t.GetReference(), signedAmount(t), strconv.FormatInt(t.GetBalanceAfter(), 10),
					})
				}
				return table(c.stdout, "DATE\tTYPE\tKIND\tREFERENCE\tAMOUNT\tBALANCE", rows)
			}
		},
	}
}

// exportCSV writes the server's CSV export (ExportTransactions) as it
// streams in.
func exportCSV(ctx context.Context, c *cli, l *ledgerclient.Client, req *pb.ExportTransactionsRequest) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := l.Ledger().ExportTransactions(ctx, req)
	if err != nil {
		return err
	}
	for {
		chunk, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := c.stdout.Write(chunk.GetData()); err != nil {
			return err
		}
	}
}

func accountsCmd() *command {
	return &command{
		name: "accounts", synopsis: "",
		summary: "list every client account of the workspace with its balance (the agency's view)",
		setup: func(fs *flag.FlagSet) runFunc {
			return func(ctx context.Context, c *cli, args []string) error {
				ws, l, err := c.open(ctx, args, 0, "")
				if err != nil {
					return err
				}
				var rows [][]string
				req := &pb.ListAccountsRequest{Workspace: ws, PageSize: 500}
				for {
					res, err := l.ListAccounts(ctx, req)
					if err != nil {
						return err
					}
					for _, b := range res.GetAccounts() {
						rows = append(rows, []string{
							b.GetAccount(), strconv.FormatInt(b.GetBalance(), 10),
							strconv.FormatInt(b.GetVersion(), 10), strconv.FormatInt(b.GetPendingRequestCredits(), 10), formatTime(b.GetUpdateTime()),
						})
					}
					if res.GetNextPageToken() == "" {
						break
					}
					req.PageToken = res.GetNextPageToken()
				}
				return table(c.stdout, "ACCOUNT\tBALANCE\tVERSION\tPENDING\tUPDATED", rows)
			}
		},
	}
}

// --- credit requests ---

func requestsListCmd() *command {
	return &command{
		name: "requests list", synopsis: "[--account ACCOUNT] [--status pending|accepted|rejected|cancelled|all]",
		summary: "list credit requests: the agency's queue of pending requests by default",
		setup: func(fs *flag.FlagSet) runFunc {
			account := fs.String("account", "", "only this account's requests")
			status := fs.String("status", "pending", "pending, accepted, rejected, cancelled or all")
			return func(ctx context.Context, c *cli, args []string) error {
				ws, err := c.ws()
				if err != nil {
					return err
				}
				if err := nargs(args, 0, ""); err != nil {
					return err
				}
				req := &pb.ListRequestsRequest{Workspace: ws, Account: *account, PageSize: 500}
				if s := strings.ToLower(*status); s != "all" {
					v, ok := pb.RequestStatus_value["REQUEST_STATUS_"+strings.ToUpper(s)]
					if !ok || v == 0 {
						return usagef("--status must be pending, accepted, rejected, cancelled or all")
					}
					req.Status = pb.RequestStatus(v)
				}
				l, err := c.ledger(ctx)
				if err != nil {
					return err
				}
				var rows [][]string
				for {
					res, err := l.ListRequests(ctx, req)
					if err != nil {
						return err
					}
					for _, r := range res.GetRequests() {
						rows = append(rows, []string{
							r.GetId(), r.GetAccount(), strconv.FormatInt(r.GetAmount(), 10), r.GetPackageId(),
							strings.TrimPrefix(r.GetPaymentMethod().String(), "PAYMENT_METHOD_"), r.GetPaymentReference(),
							strings.TrimPrefix(r.GetStatus().String(), "REQUEST_STATUS_"), formatTime(r.GetCreateTime()),
						})
					}
					if res.GetNextPageToken() == "" {
						break
					}
					req.PageToken = res.GetNextPageToken()
				}
				return table(c.stdout, "ID\tACCOUNT\tCREDITS\tPACKAGE\tMETHOD\tPAYMENT_REF\tSTATUS\tCREATED", rows)
			}
		},
	}
}

func requestsDecideCmd(verb string) *command {
	decision := pb.Decision_DECISION_ACCEPT
	summary := "accept a pending credit request: posts its credits exactly once"
	if verb == "reject" {
		decision = pb.Decision_DECISION_REJECT
		summary = "reject a pending credit request: nothing is posted, the reason is kept"
	}
	return &command{
		name: "requests " + verb, synopsis: "REQUEST_ID --by ADMIN [--reason TEXT] [--idempotency-key KEY]",
		summary: summary,
		setup: func(fs *flag.FlagSet) runFunc {
			by := fs.String("by", "", "identifier of the deciding admin; required")
			reason := fs.String("reason", "", "reason for the decision")
			key := fs.String("idempotency-key", "", "idempotency key (default ledgerctl:"+verb+":REQUEST_ID, so that repeating the command is safe)")
			return func(ctx context.Context, c *cli, args []string) error {
				ws, err := c.ws()
				if err != nil {
					return err
				}
				if err := nargs(args, 1, "REQUEST_ID"); err != nil {
					return err
				}
				if *by == "" {
					return usagef("--by is required")
				}
				if *key == "" {
					*key = "ledgerctl:" + verb + ":" + args[0]
				}
				l, err := c.ledger(ctx)
				if err != nil {
					return err
				}
				res, err := l.DecideRequest(ctx, &pb.DecideRequestRequest{
					Workspace: ws, RequestId: args[0], Decision: decision,
					Reason: *reason, DecidedBy: *by, IdempotencyKey: *key,
				})
				if err != nil {
					return err
				}
				r := res.GetRequest()
				_, _ = fmt.Fprintf(c.stdout, "request %s %s%s\n", r.GetId(), strings.ToLower(strings.TrimPrefix(r.GetStatus().String(), "REQUEST_STATUS_")), replayed(res.GetReplayed()))
				if t := res.GetTransaction(); t != nil {
					_, _ = fmt.Fprintf(c.stdout, "posted IN %d credits to %s: transaction %s, balance %d, version %d\n",
						t.GetAmount(), t.GetAccount(), t.GetId(), t.GetBalanceAfter(), t.GetAccountVersion())
				}
				return nil
			}
		},
	}
}

func requestsCancelCmd() *command {
	return &command{
		name: "requests cancel", synopsis: "REQUEST_ID [--reason TEXT] [--idempotency-key KEY]",
		summary: "cancel a pending credit request for its client: nothing is posted, its pending credits are released",
		setup: func(fs *flag.FlagSet) runFunc {
			reason := fs.String("reason", "", "why the request is withdrawn")
			key := fs.String("idempotency-key", "", "idempotency key (default ledgerctl:cancel:REQUEST_ID, so that repeating the command is safe)")
			return func(ctx context.Context, c *cli, args []string) error {
				ws, l, err := c.open(ctx, args, 1, "REQUEST_ID")
				if err != nil {
					return err
				}
				if *key == "" {
					*key = "ledgerctl:cancel:" + args[0]
				}
				res, err := l.CancelRequest(ctx, &pb.CancelRequestRequest{
					Workspace: ws, RequestId: args[0], Reason: *reason, IdempotencyKey: *key,
				})
				if err != nil {
					return err
				}
				r := res.GetRequest()
				_, _ = fmt.Fprintf(c.stdout, "request %s %s by %s%s: %d credits no longer pending for %s\n", r.GetId(),
					strings.ToLower(strings.TrimPrefix(r.GetStatus().String(), "REQUEST_STATUS_")), r.GetDecidedBy(),
					replayed(res.GetReplayed()), r.GetAmount(), r.GetAccount())
				return nil
			}
		},
	}
}

// --- settings, packages, rates ---

func settingsGetCmd() *command {
	return &command{
		name: "settings get", summary: "show the workspace's credit settings",
		setup: func(fs *flag.FlagSet) runFunc {
			return func(ctx context.Context, c *cli, args []string) error {
				ws, l, err := c.open(ctx, args, 0, "")
				if err != nil {
					return err
				}
				res, err := l.GetSettings(ctx, &pb.GetSettingsRequest{Workspace: ws})
				if err != nil {
					return err
				}
				printSettings(c, res.GetSettings())
				return nil
			}
		},
	}
}

func printSettings(c *cli, s *pb.Settings) {
	state := "disabled"
	if s.GetCreditPaymentsEnabled() {
		state = "enabled"
	}
	_, _ = fmt.Fprintf(c.stdout, "workspace %s: credit payments %s (updated %s)\n", s.GetWorkspace(), state, formatTime(s.GetUpdateTime()))
	methods := make([]string, 0, len(s.GetPaymentMethods()))
	for _, m := range s.GetPaymentMethods() {
		methods = append(methods, methodName(m))
	}
	offered := strings.Join(methods, ", ")
	if offered == "" {
		offered = "none"
	}
	threshold := "off"
	if n := s.GetLowBalanceThreshold(); n > 0 {
		threshold = fmt.Sprintf("%d credits", n)
	}
	_, _ = fmt.Fprintf(c.stdout, "  payment methods: %s\n  low-balance threshold: %s\n  distinct approver required: %s\n",
		offered, threshold, onOff(s.GetRequireDistinctApprover()))
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// methodName is a payment method as ledgerctl spells it: "bank_transfer".
func methodName(m pb.PaymentMethod) string {
	return strings.ToLower(strings.TrimPrefix(m.String(), "PAYMENT_METHOD_"))
}

// parseMethods parses --payment-methods: names separated by commas, or
// "none".
func parseMethods(s string) ([]pb.PaymentMethod, error) {
	if strings.EqualFold(strings.TrimSpace(s), "none") {
		return []pb.PaymentMethod{}, nil
	}
	var out []pb.PaymentMethod
	for _, name := range strings.Split(s, ",") {
		v, ok := pb.PaymentMethod_value["PAYMENT_METHOD_"+strings.ToUpper(strings.TrimSpace(name))]
		if !ok || v == 0 {
			return nil, usagef("--payment-methods: %q is not one of stripe, paypal, bank_transfer, crypto (or none)", strings.TrimSpace(name))
		}
		out = append(out, pb.PaymentMethod(v))
	}
	return out, nil
}

func parseOnOff(flagName, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "on", "true", "enabled", "1":
		return true, nil
	case "off", "false", "disabled", "0":
		return false, nil
	}
	return false, usagef("--%s must be on or off", flagName)
}

func settingsSetCmd() *command {
	return &command{
		name: "settings set",
		synopsis: "[--credit-payments on|off] [--payment-methods stripe,paypal,bank_transfer,crypto|none] " +
			"[--low-balance-threshold N] [--require-distinct-approver on|off]",
		summary: "change the workspace's credit settings; only the flags given change (at least one)",
		setup: func(fs *flag.FlagSet) runFunc {
			payments := fs.String("credit-payments", "", "on or off: whether clients may spend credits (balances are preserved)")
			methods := fs.String("payment-methods", "", "the payment methods offered, separated by commas, or none")
			threshold := fs.String("low-balance-threshold", "", "credits below which a balance is low; 0 turns it off")
			distinct := fs.String("require-distinct-approver", "", "on or off: whether the submitter of a request may not decide it")
			return func(ctx context.Context, c *cli, args []string) error {
				ws, err := c.ws()
				if err != nil {
					return err
				}
				if err := nargs(args, 0, ""); err != nil {
					return err
				}
				in := &pb.Settings{}
				var paths []string
				var ferr error
				fs.Visit(func(f *flag.Flag) {
					if ferr != nil {
						return
					}
					switch f.Name {
					case "credit-payments":
						in.CreditPaymentsEnabled, ferr = parseOnOff(f.Name, *payments)
						paths = append(paths, "credit_payments_enabled")
					case "require-distinct-approver":
						in.RequireDistinctApprover, ferr = parseOnOff(f.Name, *distinct)
						paths = append(paths, "require_distinct_approver")
					case "payment-methods":
						in.PaymentMethods, ferr = parseMethods(*methods)
						paths = append(paths, "payment_methods")
					case "low-balance-threshold":
						n, err := strconv.ParseInt(strings.TrimSpace(*threshold), 10, 64)
						if err != nil || n < 0 {
							ferr = usagef("--low-balance-threshold must be a whole number of credits, 0 or more")
						}
						in.LowBalanceThreshold = n
						paths = append(paths, "low_balance_threshold")
					}
				})
				if ferr != nil {
					return ferr
				}
				if len(paths) == 0 {
					return usagef("give at least one of --credit-payments, --payment-methods, --low-balance-threshold, --require-distinct-approver")
				}
				l, err := c.ledger(ctx)
				if err != nil {
					return err
				}
				res, err := l.UpdateSettings(ctx, &pb.UpdateSettingsRequest{
					Workspace: ws, Settings: in, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths},
				})
				if err != nil {
					return err
				}
				printSettings(c, res.GetSettings())
				return nil
			}
		},
	}
}

func packagesListCmd() *command {
	return &command{
		name: "packages list", synopsis: "[--all]", summary: "list the credit packages clients can buy",
		setup: func(fs *flag.FlagSet) runFunc {
			all := fs.Bool("all", false, "include archived packages")
			return func(ctx context.Context, c *cli, args []string) error {
				ws, l, err := c.open(ctx, args, 0, "")
				if err != nil {
					return err
				}
				var rows [][]string
				req := &pb.ListPackagesRequest{Workspace: ws, ShowInactive: *all, PageSize: 500}
				for {
					res, err := l.ListPackages(ctx, req)
					if err != nil {
						return err
					}
					for _, p := range res.GetCreditPackages() {
						rows = append(rows, []string{
							p.GetId(), p.GetDisplayName(), strconv.FormatInt(p.GetCredits(), 10),
							ledgerclient.FormatMoney(p.GetPrice()), strconv.FormatBool(p.GetActive()),
						})
					}
					if res.GetNextPageToken() == "" {
						break
					}
					req.PageToken = res.GetNextPageToken()
				}
				return table(c.stdout, "ID\tNAME\tCREDITS\tPRICE\tACTIVE", rows)
			}
		},
	}
}

func packagesCreateCmd() *command {
	return &command{
		name: "packages create", synopsis: "--id ID --name NAME --credits N --price \"USD 10.00\" [--validity D]",
		summary: "create a credit package",
		setup: func(fs *flag.FlagSet) runFunc {
			id := fs.String("id", "", "package identifier; required (it makes the call safe to retry)")
			name := fs.String("name", "", "display name; required")
			credits := fs.Int64("credits", 0, "credits granted; required, > 0")
			price := fs.String("price", "", "price, e.g. \"USD 10.00\"; required")
			validity := fs.String("validity", "never", "how long bought credits last, e.g. 90d or 8760h; never: they do not expire")
			return func(ctx context.Context, c *cli, args []string) error {
				ws, err := c.ws()
				if err != nil {
					return err
				}
				if err := nargs(args, 0, ""); err != nil {
					return err
				}
				if *id == "" || *name == "" || *credits <= 0 || *price == "" {
					return usagef("--id, --name, --credits (> 0) and --price are required")
				}
				m, err := parseMoneyFlag(*price)
				if err != nil {
					return err
				}
				v, err := parseValidity(*validity)
				if err != nil {
					return err
				}
				l, err := c.ledger(ctx)
				if err != nil {
					return err
				}
				res, err := l.CreatePackage(ctx, &pb.CreatePackageRequest{
					Workspace: ws, PackageId: *id,
					CreditPackage: &pb.CreditPackage{DisplayName: *name, Credits: *credits, Price: m, Validity: v},
				})
				if err != nil {
					return err
				}
				printPackage(c, "created", res.GetCreditPackage())
				return nil
			}
		},
	}
}

func packagesArchiveCmd() *command {
	return &command{
		name: "packages archive", synopsis: "PACKAGE_ID", summary: "archive a package: it can no longer be bought",
		setup: func(fs *flag.FlagSet) runFunc {
			return func(ctx context.Context, c *cli, args []string) error {
				ws, l, err := c.open(ctx, args, 1, "PACKAGE_ID")
				if err != nil {
					return err
				}
				res, err := l.ArchivePackage(ctx, &pb.ArchivePackageRequest{Workspace: ws, PackageId: args[0]})
				if err != nil {
					return err
				}
				_, _ = fmt.Fprintf(c.stdout, "package %s archived\n", res.GetCreditPackage().GetId())
				return nil
			}
		},
	}
}

func ratesListCmd() *command {
	return &command{
		name: "rates list", synopsis: "[--history]", summary: "list the conversion rates (credits per currency unit)",
		setup: func(fs *flag.FlagSet) runFunc {
			history := fs.Bool("history", false, "include replaced rates")
			return func(ctx context.Context, c *cli, args []string) error {
				ws, l, err := c.open(ctx, args, 0, "")
				if err != nil {
					return err
				}
				res, err := l.ListConversionRates(ctx, &pb.ListConversionRatesRequest{Workspace: ws, ShowHistory: *history})
				if err != nil {
					return err
				}
				var rows [][]string
				for _, r := range res.GetConversionRates() {
					rows = append(rows, []string{r.GetCurrencyCode(), r.GetRate(), strconv.FormatBool(r.GetActive()), formatTime(r.GetCreateTime())})
				}
				return table(c.stdout, "CURRENCY\tRATE\tACTIVE\tSET", rows)
			}
		},
	}
}

func ratesSetCmd() *command {
	return &command{
		name: "rates set", synopsis: "CURRENCY RATE", summary: "set the active rate of a currency, e.g. \"rates set USD 9.5\"",
		setup: func(fs *flag.FlagSet) runFunc {
			return func(ctx context.Context, c *cli, args []string) error {
				ws, l, err := c.open(ctx, args, 2, "CURRENCY RATE")
				if err != nil {
					return err
				}
				res, err := l.SetConversionRate(ctx, &pb.SetConversionRateRequest{Workspace: ws, CurrencyCode: strings.ToUpper(args[0]), Rate: args[1]})
				if err != nil {
					return err
				}
				r := res.GetConversionRate()
				_, _ = fmt.Fprintf(c.stdout, "1 %s = %s credits\n", r.GetCurrencyCode(), r.GetRate())
				return nil
			}
		},
	}
}

func quoteCmd() *command {
	return &command{
		name: "quote", synopsis: "PRICE (e.g. \"USD 3.51\")", summary: "convert a price to credits with the workspace's rate (rounded up)",
		setup: func(fs *flag.FlagSet) runFunc {
			return func(ctx context.Context, c *cli, args []string) error {
				ws, err := c.ws()
				if err != nil {
					return err
				}
				if len(args) == 0 {
					return usagef("want a PRICE such as \"USD 3.51\"")
				}
				m, err := ledgerclient.ParseMoney(strings.Join(args, " "))
				if err != nil {
					return usagef("%v", err)
				}
				l, err := c.ledger(ctx)
				if err != nil {
					return err
				}
				res, err := l.Quote(ctx, &pb.QuoteRequest{Workspace: ws, Price: m})
				if err != nil {
					return err
				}
				_, _ = fmt.Fprintf(c.stdout, "%s = %d credits (rate %s credits per %s)\n", ledgerclient.FormatMoney(m), res.GetCredits(),
					res.GetConversionRate().GetRate(), m.GetCurrencyCode())
				return nil
			}
		},
	}
}

// --- movements ---

func creditCmd() *command {
	return &command{
		name: "credit", synopsis: "--account ACCOUNT (--amount N | --package ID) --idempotency-key KEY [--kind purchase|refund|adjustment] [--reference REF] [--expire-time T | --expires-in D]",
		summary: "add credits to an account (refund, adjustment, manual top-up)",
		setup: func(fs *flag.FlagSet) runFunc {
			p := movementFlags(fs, "purchase, refund or adjustment (default purchase)")
			pkg := fs.String("package", "", "take the credits from this active package instead of --amount")
			expireTime := fs.String("expire-time", "", "the credits expire at this RFC 3339 time if unspent (default: the package's validity, else never)")
			expiresIn := fs.String("expires-in", "", "the credits expire this long from now if unspent, e.g. 30d, instead of --expire-time")
			return func(ctx context.Context, c *cli, args []string) error {
				ws, err := c.ws()
				if err != nil {
					return err
				}
				if err := p.check(args, *pkg != ""); err != nil {
					return err
				}
				var expire *timestamppb.Timestamp
				switch {
				case *expireTime != "" && *expiresIn != "":
					return usagef("give --expire-time or --expires-in, not both")
				case *expireTime != "":
					if expire, err = parseTimeFlag("--expire-time", *expireTime); err != nil {
						return err
					}
				case *expiresIn != "":
					d, err := parseLongDuration("--expires-in", *expiresIn)
					if err != nil {
						return err
					}
					// Whole seconds: a retry with the same key computes
					// the same time within the second only if it is quick;
					// give --expire-time for a retry-safe command.
					expire = timestamppb.New(time.Now().Add(d).Truncate(time.Second))
				}
				l, err := c.ledger(ctx)
				if err != nil {
					return err
				}
				res, err := l.Credit(ctx, &pb.CreditRequest{
					Workspace: ws, Account: *p.account, Amount: *p.amount, PackageId: *pkg,
					Kind: p.kindValue, Reference: *p.reference, IdempotencyKey: *p.key, ExpectedVersion: p.expected,
					ExpireTime: expire,
				})
				if err != nil {
					return err
				}
				printPosted(c, res.GetTransaction(), res.GetReplayed())
				if t := res.GetTransaction().GetExpireTime(); t != nil {
					_, _ = fmt.Fprintf(c.stdout, "the credits expire at %s if unspent\n", formatTime(t))
				}
				return nil
			}
		},
	}
}

func debitCmd() *command {
	return &command{
		name: "debit", synopsis: "--account ACCOUNT --amount N --idempotency-key KEY [--kind service_purchase|invoice_payment|adjustment] [--reference REF]",
		summary: "deduct credits from an account",
		setup: func(fs *flag.FlagSet) runFunc {
			p := movementFlags(fs, "service_purchase, invoice_payment or adjustment (default service_purchase)")
			return func(ctx context.Context, c *cli, args []string) error {
				ws, err := c.ws()
				if err != nil {
					return err
				}
				if err := p.check(args, false); err != nil {
					return err
				}
				l, err := c.ledger(ctx)
				if err != nil {
					return err
				}
				res, err := l.Debit(ctx, &pb.DebitRequest{
					Workspace: ws, Account: *p.account, Amount: *p.amount,
					Kind: p.kindValue, Reference: *p.reference, IdempotencyKey: *p.key, ExpectedVersion: p.expected,
				})
				if err != nil {
					return err
				}
				printPosted(c, res.GetTransaction(), res.GetReplayed())
				return nil
			}
		},
	}
}

// movement holds the flags shared by credit and debit.
type movement struct {
	account, reference, key, kind, expectedStr *string
	amount                                     *int64
	kindValue                                  pb.TransactionKind
	expected                                   *int64
}

func movementFlags(fs *flag.FlagSet, kinds string) *movement {
	return &movement{
		account:     fs.String("account", "", "account (client) identifier; required"),
		amount:      fs.Int64("amount", 0, "credits, > 0"),
		reference:   fs.String("reference", "", "your reference, e.g. ticket:123"),
		key:         fs.String("idempotency-key", "", "idempotency key; required: running the command again with it never posts twice"),
		kind:        fs.String("kind", "", kinds),
		expectedStr: fs.String("expected-version", "", "post only if the account's version is still this"),
	}
}

func (m *movement) check(args []string, withPackage bool) error {
	if err := nargs(args, 0, ""); err != nil {
		return err
	}
	if *m.account == "" || *m.key == "" {
		return usagef("--account and --idempotency-key are required")
	}
	if withPackage == (*m.amount > 0) || *m.amount < 0 {
		return usagef("give a positive --amount (or, for credit, --package instead)")
	}
	if *m.kind != "" {
		k, err := parseKind(*m.kind)
		if err != nil {
			return err
		}
		m.kindValue = k
	}
	if *m.expectedStr != "" {
		v, err := strconv.ParseInt(*m.expectedStr, 10, 64)
		if err != nil || v < 0 {
			return usagef("--expected-version must be a non-negative integer")
		}
		m.expected = &v
	}
	return nil
}

func printPosted(c *cli, t *pb.Transaction, wasReplayed bool) {
	_, _ = fmt.Fprintf(c.stdout, "posted %s %d credits (%s) on %s: transaction %s, balance %d, version %d%s\n",
		strings.ToUpper(inOut(t.GetType())), t.GetAmount(), kindName(t.GetKind()), t.GetAccount(), t.GetId(),
		t.GetBalanceAfter(), t.GetAccountVersion(), replayed(wasReplayed))
}

// --- verify ---

func verifyCmd() *command {
	return &command{
		name: "verify", synopsis: "[--ledgerd PATH] [-- LEDGERD_VERIFY_ARGS...]",
		summary: "check the ledger's invariants: runs `ledgerd verify` against the store named by LEDGER_DATA_DIR / LEDGER_DATABASE_URL",
		setup: func(fs *flag.FlagSet) runFunc {
			bin := fs.String("ledgerd", "", "path of the ledgerd binary [LEDGERD_BIN] (default: next to ledgerctl, then $PATH)")
			return func(ctx context.Context, c *cli, args []string) error {
				path, err := findLedgerd(*bin, c.getenv)
				if err != nil {
					return err
				}
				// The binary is the operator's own ledgerd (flag, env, next to
				// ledgerctl or on $PATH); the arguments are passed as a list, no shell.
				cmd := exec.CommandContext(ctx, path, append([]string{"verify"}, args...)...) //nolint:gosec // see above
				cmd.Stdout, cmd.Stderr = c.stdout, c.stderr
				err = cmd.Run()
				var xe *exec.ExitError
				if errors.As(err, &xe) {
					return &exitStatusError{code: exitRefused, msg: fmt.Sprintf("ledgerd verify failed (exit status %d): see its output above", xe.ExitCode())}
				}
				return err
			}
		},
	}
}

// verifyUnavailable explains where verification runs.
const verifyUnavailable = "ledgerd not found. Verification reads the whole store, so it is not a gRPC call: " +
	"`ledgerctl verify` runs `ledgerd verify` on a host that can reach the store (the same LEDGER_DATA_DIR or " +
	"LEDGER_DATABASE_URL as the server). Install ledgerd next to ledgerctl or on $PATH, or pass --ledgerd / LEDGERD_BIN"

func findLedgerd(flagPath string, getenv func(string) string) (string, error) {
	if flagPath == "" {
		flagPath = getenv("LEDGERD_BIN")
	}
	if flagPath != "" {
		if _, err := os.Stat(flagPath); err != nil {
			return "", &exitStatusError{code: exitUnavailable, msg: verifyUnavailable + ": " + err.Error()}
		}
		return flagPath, nil
	}
	if self, err := os.Executable(); err == nil {
		sibling := filepath.Join(filepath.Dir(self), "ledgerd")
		if st, err := os.Stat(sibling); err == nil && !st.IsDir() {
			return sibling, nil
		}
	}
	if p, err := exec.LookPath("ledgerd"); err == nil {
		return p, nil
	}
	return "", &exitStatusError{code: exitUnavailable, msg: verifyUnavailable}
}

// --- formatting ---

func parseKind(s string) (pb.TransactionKind, error) {
	v, ok := pb.TransactionKind_value["TRANSACTION_KIND_"+strings.ToUpper(s)]
	if !ok || v == 0 {
		return 0, usagef("unknown kind %q: purchase, request_approved, service_purchase, invoice_payment, refund or adjustment", s)
	}
	return pb.TransactionKind(v), nil
}

func kindName(k pb.TransactionKind) string {
	return strings.TrimPrefix(k.String(), "TRANSACTION_KIND_")
}

// inOut is the history's "type" column: In or Out.
func inOut(t pb.TransactionType) string {
	switch t {
	case pb.TransactionType_TRANSACTION_TYPE_IN:
		return "In"
	case pb.TransactionType_TRANSACTION_TYPE_OUT:
		return "Out"
	default:
		return "?"
	}
}

func signedAmount(t *pb.Transaction) string {
	if t.GetType() == pb.TransactionType_TRANSACTION_TYPE_OUT {
		return "-" + strconv.FormatInt(t.GetAmount(), 10)
	}
	return "+" + strconv.FormatInt(t.GetAmount(), 10)
}

func formatTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

func replayed(r bool) string {
	if r {
		return " (replayed: already done earlier with this idempotency key)"
	}
	return ""
}

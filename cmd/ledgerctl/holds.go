package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/type/money"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/ledgerclient"
)

// Holds, reversals, single entries, statements and the CSV export (SPEC §9).

func init() {
	register(
		holdsCreateCmd(), holdsCaptureCmd(), holdsVoidCmd(), holdsGetCmd(), holdsListCmd(),
		reverseCmd(), transactionCmd(), statementCmd(), packagesUpdateCmd(),
	)
}

func holdsCreateCmd() *command {
	return &command{
		name: "holds create", synopsis: "--account ACCOUNT --amount N --idempotency-key KEY [--ttl D | --expire-time T] [--kind service_purchase|invoice_payment|adjustment] [--reference REF]",
		summary: "reserve credits of an account until captured, voided or expired",
		setup: func(fs *flag.FlagSet) runFunc {
			account := fs.String("account", "", "account (client) identifier; required")
			amount := fs.Int64("amount", 0, "credits to reserve, > 0; required")
			key := fs.String("idempotency-key", "", "idempotency key; required")
			kind := fs.String("kind", "", "what the credits will be spent on: service_purchase (default), invoice_payment or adjustment")
			reference := fs.String("reference", "", "your reference, e.g. order:1042")
			ttl := fs.String("ttl", "", "release the hold this long from now if not captured, e.g. 15m, 2h, 7d (default 15m, at most 30d)")
			expire := fs.String("expire-time", "", "release the hold at this RFC 3339 time instead of --ttl")
			return func(ctx context.Context, c *cli, args []string) error {
				ws, err := c.ws()
				if err != nil {
					return err
				}
				if err := nargs(args, 0, ""); err != nil {
					return err
				}
				if *account == "" || *key == "" || *amount <= 0 {
					return usagef("--account, --amount (> 0) and --idempotency-key are required")
				}
				req := &pb.CreateHoldRequest{Workspace: ws, Account: *account, Amount: *amount, Reference: *reference, IdempotencyKey: *key}
				if *kind != "" {
					if req.Kind, err = parseKind(*kind); err != nil {
						return err
					}
				}
				if *ttl != "" && *expire != "" {
					return usagef("give --ttl or --expire-time, not both")
				}
				if *ttl != "" {
					d, err := parseLongDuration("--ttl", *ttl)
					if err != nil {
						return err
					}
					req.Ttl = durationpb.New(d)
				}
				if *expire != "" {
					if req.ExpireTime, err = parseTimeFlag("--expire-time", *expire); err != nil {
						return err
					}
				}
				l, err := c.ledger(ctx)
				if err != nil {
					return err
				}
				res, err := l.Ledger().CreateHold(ctx, req)
				if err != nil {
					return err
				}
				h := res.GetHold()
				_, _ = fmt.Fprintf(c.stdout, "hold %s: %d credits held on %s until %s; available %d%s\n",
					h.GetId(), h.GetAmount(), h.GetAccount(), formatTime(h.GetExpireTime()), res.GetAvailable(), replayed(res.GetReplayed()))
				return nil
			}
		},
	}
}

func holdsCaptureCmd() *command {
	return &command{
		name: "holds capture", synopsis: "HOLD_ID --idempotency-key KEY [--amount N]",
		summary: "spend a hold (all of it, or --amount) as one OUT entry; the rest is released",
		setup: func(fs *flag.FlagSet) runFunc {
			amount := fs.Int64("amount", 0, "credits to spend, at most the hold's; default all")
			key := fs.String("idempotency-key", "", "idempotency key; required")
			return func(ctx context.Context, c *cli, args []string) error {
				ws, l, err := c.open(ctx, args, 1, "HOLD_ID")
				if err != nil {
					return err
				}
				if *key == "" || *amount < 0 {
					return usagef("--idempotency-key is required; --amount must be >= 0")
				}
				res, err := l.Ledger().CaptureHold(ctx, &pb.CaptureHoldRequest{Workspace: ws, HoldId: args[0], Amount: *amount, IdempotencyKey: *key})
				if err != nil {
					return err
				}
				h := res.GetHold()
				_, _ = fmt.Fprintf(c.stdout, "hold %s captured: %d of %d credits%s\n", h.GetId(), h.GetCapturedAmount(), h.GetAmount(), replayed(res.GetReplayed()))
				if t := res.GetTransaction(); t != nil {
					printPosted(c, t, false)
				}
				return nil
			}
		},
	}
}

func holdsVoidCmd() *command {
	return &command{
		name: "holds void", synopsis: "HOLD_ID --idempotency-key KEY",
		summary: "release a hold; nothing is posted",
		setup: func(fs *flag.FlagSet) runFunc {
			key := fs.String("idempotency-key", "", "idempotency key; required")
			return func(ctx context.Context, c *cli, args []string) error {
				ws, l, err := c.open(ctx, args, 1, "HOLD_ID")
				if err != nil {
					return err
				}
				if *key == "" {
					return usagef("--idempotency-key is required")
				}
				res, err := l.Ledger().VoidHold(ctx, &pb.VoidHoldRequest{Workspace: ws, HoldId: args[0], IdempotencyKey: *key})
				if err != nil {
					return err
				}
				h := res.GetHold()
				_, _ = fmt.Fprintf(c.stdout, "hold %s voided: %d credits released%s\n", h.GetId(), h.GetAmount(), replayed(res.GetReplayed()))
				return nil
			}
		},
	}
}

func holdsGetCmd() *command {
	return &command{
		name: "holds get", synopsis: "HOLD_ID", summary: "show one hold",
		setup: func(fs *flag.FlagSet) runFunc {
			return func(ctx context.Context, c *cli, args []string) error {
				ws, l, err := c.open(ctx, args, 1, "HOLD_ID")
				if err != nil {
					return err
				}
				res, err := l.Ledger().GetHold(ctx, &pb.GetHoldRequest{Workspace: ws, HoldId: args[0]})
				if err != nil {
					return err
				}
				h := res.GetHold()
				return table(c.stdout, "FIELD\tVALUE", [][]string{
					{"hold", h.GetId()},
					{"account", h.GetAccount()},
					{"status", holdStatusName(h.GetStatus())},
					{"amount", fmt.Sprintf("%d credits", h.GetAmount())},
					{"kind", kindName(h.GetKind())},
					{"reference", h.GetReference() + metadataSuffix(h.GetMetadata())},
					{"expires", formatTime(h.GetExpireTime())},
					{"captured", fmt.Sprintf("%d credits", h.GetCapturedAmount())},
					{"transaction", orDash(h.GetTransactionId())},
					{"created", formatTime(h.GetCreateTime())},
					{"ended", formatTime(h.GetUpdateTime())},
				})
			}
		},
	}
}

func holdsListCmd() *command {
	return &command{
		name: "holds list", synopsis: "--account ACCOUNT [--status active|captured|voided|expired|all]",
		summary: "list an account's holds, newest first",
		setup: func(fs *flag.FlagSet) runFunc {
			account := fs.String("account", "", "account (client) identifier; required")
			st := fs.String("status", "all", "only holds in this status")
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
				req := &pb.ListHoldsRequest{Workspace: ws, Account: *account, PageSize: 500}
				if *st != "all" {
					v, ok := pb.HoldStatus_value["HOLD_STATUS_"+strings.ToUpper(*st)]
					if !ok || v == 0 {
						return usagef("--status must be active, captured, voided, expired or all")
					}
					req.Status = pb.HoldStatus(v)
				}
				l, err := c.ledger(ctx)
				if err != nil {
					return err
				}
				var rows [][]string
				for {
					res, err := l.Ledger().ListHolds(ctx, req)
					if err != nil {
						return err
					}
					for _, h := range res.GetHolds() {
						rows = append(rows, []string{
							h.GetId(), holdStatusName(h.GetStatus()), strconv.FormatInt(h.GetAmount(), 10),
							strconv.FormatInt(h.GetCapturedAmount(), 10), kindName(h.GetKind()), h.GetReference(), formatTime(h.GetExpireTime()),
						})
					}
					if res.GetNextPageToken() == "" {
						break
					}
					req.PageToken = res.GetNextPageToken()
				}
				return table(c.stdout, "HOLD\tSTATUS\tAMOUNT\tCAPTURED\tKIND\tREFERENCE\tEXPIRES", rows)
			}
		},
	}
}

func reverseCmd() *command {
	return &command{
		name: "reverse", synopsis: "TRANSACTION_ID --reason TEXT --idempotency-key KEY [--amount N] [--reference REF]",
		summary: "post the opposite of an entry, in whole or in part (a refund of a purchase, a claw-back of a credit)",
		setup: func(fs *flag.FlagSet) runFunc {
			amount := fs.Int64("amount", 0, "credits to reverse; default all that is not reversed yet")
			reason := fs.String("reason", "", "why; required")
			key := fs.String("idempotency-key", "", "idempotency key; required")
			reference := fs.String("reference", "", "reference of the REVERSAL entry (default: the reason)")
			return func(ctx context.Context, c *cli, args []string) error {
				ws, l, err := c.open(ctx, args, 1, "TRANSACTION_ID")
				if err != nil {
					return err
				}
				if *reason == "" || *key == "" || *amount < 0 {
					return usagef("--reason and --idempotency-key are required; --amount must be >= 0")
				}
				res, err := l.Ledger().ReverseTransaction(ctx, &pb.ReverseTransactionRequest{
					Workspace: ws, TransactionId: args[0], Amount: *amount, Reason: *reason, Reference: *reference, IdempotencyKey: *key,
				})
				if err != nil {
					return err
				}
				printPosted(c, res.GetTransaction(), res.GetReplayed())
				o := res.GetOriginal()
				_, _ = fmt.Fprintf(c.stdout, "transaction %s: %d of %d credits reversed\n", o.GetId(), o.GetReversedAmount(), o.GetAmount())
				return nil
			}
		},
	}
}

func transactionCmd() *command {
	return &command{
		name: "transaction", synopsis: "TRANSACTION_ID", summary: "show one entry, with what of it was reversed",
		setup: func(fs *flag.FlagSet) runFunc {
			return func(ctx context.Context, c *cli, args []string) error {
				ws, l, err := c.open(ctx, args, 1, "TRANSACTION_ID")
				if err != nil {
					return err
				}
				res, err := l.Ledger().GetTransaction(ctx, &pb.GetTransactionRequest{Workspace: ws, TransactionId: args[0]})
				if err != nil {
					return err
				}
				t := res.GetTransaction()
				return table(c.stdout, "FIELD\tVALUE", [][]string{
					{"transaction", t.GetId()},
					{"account", t.GetAccount()},
					{"date", formatTime(t.GetCreateTime())},
					{"type", inOut(t.GetType())},
					{"kind", kindName(t.GetKind())},
					{"amount", signedAmount(t)},
					{"balance after", strconv.FormatInt(t.GetBalanceAfter(), 10)},
					{"version", strconv.FormatInt(t.GetAccountVersion(), 10)},
					{"reference", t.GetReference() + metadataSuffix(t.GetMetadata())},
					{"reversed", fmt.Sprintf("%d credits", t.GetReversedAmount())},
					{"reverses", orDash(t.GetReversesTransactionId())},
					{"hold", orDash(t.GetHoldId())},
					{"package", orDash(t.GetPackageId())},
					{"request", orDash(t.GetRequestId())},
					{"expires", formatTime(t.GetExpireTime())},
				})
			}
		},
	}
}

func statementCmd() *command {
	return &command{
		name: "statement", synopsis: "--account ACCOUNT --from T --to T",
		summary: "sum an account's entries over [from, to): opening, in, out, per kind, closing",
		setup: func(fs *flag.FlagSet) runFunc {
			account := fs.String("account", "", "account (client) identifier; required")
			from := fs.String("from", "", "start of the period (inclusive), RFC 3339 or YYYY-MM-DD; required")
			to := fs.String("to", "", "end of the period (exclusive), RFC 3339 or YYYY-MM-DD; required")
			return func(ctx context.Context, c *cli, args []string) error {
				ws, err := c.ws()
				if err != nil {
					return err
				}
				if err := nargs(args, 0, ""); err != nil {
					return err
				}
				if *account == "" || *from == "" || *to == "" {
					return usagef("--account, --from and --to are required")
				}
				start, err := parseTimeFlag("--from", *from)
				if err != nil {
					return err
				}
				end, err := parseTimeFlag("--to", *to)
				if err != nil {
					return err
				}
				l, err := c.ledger(ctx)
				if err != nil {
					return err
				}
				res, err := l.Ledger().GetStatement(ctx, &pb.GetStatementRequest{Workspace: ws, Account: *account, StartTime: start, EndTime: end})
				if err != nil {
					return err
				}
				return printStatement(c.stdout, res.GetStatement())
			}
		},
	}
}

// printStatement renders a statement as one table: the opening balance,
// each kind's credits in and out, the totals, the closing balance.
func printStatement(w io.Writer, st *pb.Statement) error {
	_, _ = fmt.Fprintf(w, "statement of %s, %s to %s (%d entries)\n",
		st.GetAccount(), formatTime(st.GetStartTime()), formatTime(st.GetEndTime()), st.GetTransactionCount())
	rows := [][]string{{"opening balance", "", "", "", strconv.FormatInt(st.GetOpeningBalance(), 10)}}
	for _, line := range st.GetLines() {
		in, out := "", ""
		if line.GetType() == pb.TransactionType_TRANSACTION_TYPE_OUT {
			out = "-" + strconv.FormatInt(line.GetAmount(), 10)
		} else {
			in = "+" + strconv.FormatInt(line.GetAmount(), 10)
		}
		rows = append(rows, []string{"  " + kindName(line.GetKind()), strconv.FormatInt(line.GetCount(), 10), in, out, ""})
	}
	rows = append(rows,
		[]string{
			"total", strconv.FormatInt(st.GetTransactionCount(), 10),
			"+" + strconv.FormatInt(st.GetTotalIn(), 10), "-" + strconv.FormatInt(st.GetTotalOut(), 10), "",
		},
		[]string{"closing balance", "", "", "", strconv.FormatInt(st.GetClosingBalance(), 10)},
	)
	return table(w, "\tENTRIES\tIN\tOUT\tBALANCE", rows)
}

func packagesUpdateCmd() *command {
	return &command{
		name: "packages update", synopsis: "PACKAGE_ID [--name NAME] [--credits N] [--price \"USD 10.00\"] [--validity D|never]",
		summary: "change a package's name, credits, price or validity (only the flags given)",
		setup: func(fs *flag.FlagSet) runFunc {
			name := fs.String("name", "", "display name")
			credits := fs.Int64("credits", 0, "credits granted, > 0")
			price := fs.String("price", "", "price, e.g. \"USD 10.00\"")
			validity := fs.String("validity", "", "how long bought credits last, e.g. 90d or 8760h; never: they do not expire")
			return func(ctx context.Context, c *cli, args []string) error {
				ws, err := c.ws()
				if err != nil {
					return err
				}
				if err := nargs(args, 1, "PACKAGE_ID"); err != nil {
					return err
				}
				p := &pb.CreditPackage{}
				var paths []string
				var ferr error
				fs.Visit(func(f *flag.Flag) {
					switch f.Name {
					case "name":
						p.DisplayName, paths = *name, append(paths, "display_name")
					case "credits":
						p.Credits, paths = *credits, append(paths, "credits")
					case "price":
						m, err := parseMoneyFlag(*price)
						ferr = errors.Join(ferr, err)
						p.Price, paths = m, append(paths, "price")
					case "validity":
						d, err := parseValidity(*validity)
						ferr = errors.Join(ferr, err)
						p.Validity, paths = d, append(paths, "validity")
					}
				})
				if ferr != nil {
					return ferr
				}
				if len(paths) == 0 {
					return usagef("give at least one of --name, --credits, --price, --validity")
				}
				l, err := c.ledger(ctx)
				if err != nil {
					return err
				}
				res, err := l.UpdatePackage(ctx, &pb.UpdatePackageRequest{Workspace: ws, PackageId: args[0], CreditPackage: p, UpdateMask: mask(paths)})
				if err != nil {
					return err
				}
				printPackage(c, "updated", res.GetCreditPackage())
				return nil
			}
		},
	}
}

// parseLongDuration reads a Go duration, or whole days as "Nd".
func parseLongDuration(flagName, s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n <= 0 || n > 100*366 {
			return 0, usagef("%s: %q is not a number of days", flagName, s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, usagef("%s: want a positive duration such as 90m, 36h or 30d", flagName)
	}
	return d, nil
}

// parseValidity reads --validity: a duration, or "never".
func parseValidity(s string) (*durationpb.Duration, error) {
	if s == "never" || s == "0" {
		return nil, nil
	}
	d, err := parseLongDuration("--validity", s)
	if err != nil {
		return nil, err
	}
	return durationpb.New(d), nil
}

// parseTimeFlag reads an RFC 3339 time or a UTC date (YYYY-MM-DD).
func parseTimeFlag(flagName, s string) (*timestamppb.Timestamp, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return timestamppb.New(t), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return timestamppb.New(t), nil
	}
	return nil, usagef("%s: want an RFC 3339 time like 2026-01-31T00:00:00Z or a date like 2026-01-31", flagName)
}

func holdStatusName(s pb.HoldStatus) string { return strings.TrimPrefix(s.String(), "HOLD_STATUS_") }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func parseMoneyFlag(s string) (*money.Money, error) {
	m, err := ledgerclient.ParseMoney(s)
	if err != nil {
		return nil, usagef("--price: %v", err)
	}
	return m, nil
}

func mask(paths []string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }

// printPackage says what became of a package.
func printPackage(c *cli, what string, p *pb.CreditPackage) {
	validity := "credits never expire"
	if v := p.GetValidity(); v != nil {
		validity = "credits last " + formatValidity(v.AsDuration())
	}
	_, _ = fmt.Fprintf(c.stdout, "package %s %s: %q, %d credits for %s, %s\n", p.GetId(), what, p.GetDisplayName(), p.GetCredits(),
		ledgerclient.FormatMoney(p.GetPrice()), validity)
}

// formatValidity shows whole days as days.
func formatValidity(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

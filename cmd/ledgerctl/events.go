package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/ledgerclient"
)

// The workspace's events (SPEC §10): a page of them, or a tail that
// follows new ones.

func init() {
	register(eventsListCmd(), eventsTailCmd())
}

// typeList is a repeatable --type flag; a value may also list types
// separated by commas.
type typeList []string

func (l *typeList) String() string { return strings.Join(*l, ",") }

func (l *typeList) Set(s string) error {
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			*l = append(*l, t)
		}
	}
	return nil
}

// eventFilter is what both commands select events by.
type eventFilter struct {
	account string
	types   typeList
	after   int64
}

func (f *eventFilter) register(fs *flag.FlagSet) {
	fs.StringVar(&f.account, "account", "", "only this account's events")
	fs.Var(&f.types, "type", "only events of this type; repeat it (or separate with commas) for several: "+eventTypeNames())
	fs.Int64Var(&f.after, "after", 0, "only events after this sequence (0: from the first)")
}

func (f *eventFilter) check() error {
	if f.after < 0 {
		return usagef("--after must be >= 0")
	}
	for _, t := range f.types {
		if !ledger.EventType(t).Valid() {
			return usagef("unknown event type %q: %s", t, eventTypeNames())
		}
	}
	return nil
}

func eventTypeNames() string {
	names := make([]string, len(ledger.EventTypes))
	for i, t := range ledger.EventTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

func eventsListCmd() *command {
	return &command{
		name: "events list", synopsis: "[--account ACCOUNT] [--type TYPE ...] [--after N] [--limit N]",
		summary: "list the workspace's events in sequence order, from the first or after --after",
		setup: func(fs *flag.FlagSet) runFunc {
			var f eventFilter
			f.register(fs)
			limit := fs.Int("limit", 100, "at most this many events; 0 for all")
			return func(ctx context.Context, c *cli, args []string) error {
				ws, err := c.ws()
				if err != nil {
					return err
				}
				if err := nargs(args, 0, ""); err != nil {
					return err
				}
				if err := f.check(); err != nil {
					return err
				}
				if *limit < 0 {
					return usagef("--limit must be >= 0")
				}
				l, err := c.ledger(ctx)
				if err != nil {
					return err
				}
				req := &pb.ListEventsRequest{Workspace: ws, Account: f.account, Types: f.types, AfterSequence: f.after}
				var rows [][]string
				more := false
				for {
					req.PageSize = ledger.MaxEventPage
					if *limit > 0 {
						req.PageSize = int32(min(*limit-len(rows), ledger.MaxEventPage)) //nolint:gosec // at most MaxEventPage
					}
					res, err := l.ListEvents(ctx, req)
					if err != nil {
						return err
					}
					for _, e := range res.GetEvents() {
						rows = append(rows, eventRow(e))
					}
					req.AfterSequence = res.GetLastSequence()
					if len(res.GetEvents()) < int(req.GetPageSize()) {
						break
					}
					if *limit > 0 && len(rows) >= *limit {
						more = true
						break
					}
				}
				if err := table(c.stdout, "SEQ\tTIME\tTYPE\tACCOUNT\tSUMMARY", rows); err != nil {
					return err
				}
				if more {
					_, _ = fmt.Fprintf(c.stderr, "there may be more: continue with --after %d\n", req.GetAfterSequence())
				}
				return nil
			}
		},
	}
}

func eventsTailCmd() *command {
	return &command{
		name: "events tail", synopsis: "[--account ACCOUNT] [--type TYPE ...] [--after N]",
		summary: "print the workspace's events after --after, then each new one as it commits, until interrupted",
		follows: true,
		setup: func(fs *flag.FlagSet) runFunc {
			var f eventFilter
			f.register(fs)
			return func(ctx context.Context, c *cli, args []string) error {
				ws, err := c.ws()
				if err != nil {
					return err
				}
				if err := nargs(args, 0, ""); err != nil {
					return err
				}
				if err := f.check(); err != nil {
					return err
				}
				l, err := c.ledger(ctx)
				if err != nil {
					return err
				}
				// One read first, so that an unreachable ledger or a refused
				// token fails the command (exit 3 or 1) instead of waiting.
				if _, err := l.ListEvents(ctx, &pb.ListEventsRequest{
					Workspace: ws, Account: f.account, Types: f.types, AfterSequence: f.after, PageSize: 1,
				}); err != nil {
					return err
				}
				err = l.Follow(ctx, &pb.WatchEventsRequest{Workspace: ws, Account: f.account, Types: f.types, AfterSequence: f.after},
					func(_ context.Context, e *pb.Event) error {
						_, err := io.WriteString(c.stdout, eventLine(e))
						return err
					}, ledgerclient.FollowOptions{
						OnOutage: func(err error, after int64) {
							_, _ = fmt.Fprintf(c.stderr, "event stream broken after sequence %d (%s); resuming\n", after, cell(err.Error()))
						},
						OnRecover: func(after int64) {
							_, _ = fmt.Fprintf(c.stderr, "event stream resumed after sequence %d\n", after)
						},
						Permanent: func(err error) bool { return !ledgerclient.IsTransient(err) },
					})
				if ctx.Err() != nil && (err == nil || errors.Is(err, ctx.Err())) {
					return nil // interrupted, or the --timeout given ran out
				}
				return err
			}
		},
	}
}

// eventRow is an event's row of the list, unescaped (table escapes).
func eventRow(e *pb.Event) []string {
	return []string{strconv.FormatInt(e.GetSequence(), 10), formatTime(e.GetCreateTime()), e.GetType(), orDash(e.GetAccount()), eventSummary(e)}
}

// eventLine is a tail's line: the row's cells, escaped, in fixed columns.
func eventLine(e *pb.Event) string {
	r := eventRow(e)
	for i := range r {
		r[i] = cell(r[i])
	}
	return fmt.Sprintf("%-6s  %s  %-18s  %-14s  %s\n", r[0], r[1], r[2], r[3], r[4])
}

// eventSummary says in a few words what the event's object became.
func eventSummary(e *pb.Event) string {
	var parts []string
	add := func(format string, args ...any) { parts = append(parts, fmt.Sprintf(format, args...)) }
	switch {
	case e.GetTransaction() != nil:
		t := e.GetTransaction()
		add("%s %d %s, balance %d", strings.ToUpper(inOut(t.GetType())), t.GetAmount(), kindName(t.GetKind()), t.GetBalanceAfter())
		if t.GetReference() != "" {
			add("ref %s", t.GetReference())
		}
	case e.GetRequest() != nil:
		r := e.GetRequest()
		status := strings.TrimPrefix(r.GetStatus().String(), "REQUEST_STATUS_")
		if e.GetType() == string(ledger.EventRequestCancelled) {
			status = "CANCELLED"
		}
		add("request %s %s, %d credits, %s", r.GetId(), status, r.GetAmount(), strings.TrimPrefix(r.GetPaymentMethod().String(), "PAYMENT_METHOD_"))
		if r.GetDecidedBy() != "" {
			add("decided by %s", r.GetDecidedBy())
		}
		if r.GetDecisionReason() != "" {
			add("reason %s", r.GetDecisionReason())
		}
	case e.GetHold() != nil:
		h := e.GetHold()
		add("hold %s %s, %d credits", h.GetId(), holdStatusName(h.GetStatus()), h.GetAmount())
		switch h.GetStatus() {
		case pb.HoldStatus_HOLD_STATUS_ACTIVE:
			add("expires %s", formatTime(h.GetExpireTime()))
		case pb.HoldStatus_HOLD_STATUS_CAPTURED:
			add("captured %d, transaction %s", h.GetCapturedAmount(), h.GetTransactionId())
		}
		if h.GetReference() != "" {
			add("ref %s", h.GetReference())
		}
	case e.GetBalanceLow() != nil:
		b := e.GetBalanceLow()
		add("balance %d, available %d, below %d", b.GetBalance(), b.GetAvailable(), b.GetThreshold())
	case e.GetSettings() != nil:
		state := "disabled"
		if e.GetSettings().GetCreditPaymentsEnabled() {
			state = "enabled"
		}
		add("credit payments %s", state)
	case e.GetCreditPackage() != nil:
		p := e.GetCreditPackage()
		add("package %s %q, %d credits for %s", p.GetId(), p.GetDisplayName(), p.GetCredits(), ledgerclient.FormatMoney(p.GetPrice()))
		if !p.GetActive() {
			add("archived")
		}
	}
	return strings.Join(parts, ", ")
}

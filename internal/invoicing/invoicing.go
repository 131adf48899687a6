// Package invoicing is the reference invoicing service of CreditLedger:
// invoices in money, and "Pay with Credit".
//
// Paying an invoice with credits is a small saga made safe by one
// idempotency key per payment attempt, "invoice:<id>" (then
// "invoice:<id>:<n>" should an attempt end without paying):
//
//  1. the intent is committed first: status PAYING with the converted
//     credits and the key;
//  2. the ledger's CreateHold (kind INVOICE_PAYMENT, reference
//     "invoice:<number>") reserves the credits with that key; the hold's
//     id is recorded on the invoice;
//  3. CaptureHold with "<key>:capture" spends them as one OUT entry;
//  4. only the ledger's answers move the invoice on: PAID with the
//     capture's transaction id, or back to OPEN with the reason when the
//     hold is refused, found expired or voided, or the capture is refused
//     (then the hold is voided with "<key>:void").
//
// Every call is retried by the client on timeouts and unavailability with
// the same key. If the process dies anywhere in between, Reconcile (run at
// start and periodically) finishes every PAYING invoice with the same keys:
// the hold's creation is replayed (→ the same hold) and its capture too
// (→ the same transaction). So an invoice is never marked paid without a
// posted entry, and never charged twice.
//
// A hold that ends on the ledger's side (it expired, or was voided or
// captured by a call whose answer was lost) reaches invoicing as the
// ledger's event (FollowEvents, events.go), Reconcile being the fallback.
package invoicing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/consumer"
	"github.com/creditledger/creditledger/internal/ident"
	"github.com/creditledger/creditledger/ledgerclient"
)

// Ledger is what invoicing needs from CreditLedger; *ledgerclient.Client
// provides it.
type Ledger interface {
	consumer.SpendLedger
	// EventLedger streams a workspace's events, resumed after every break.
	consumer.EventLedger
	// ListTransactions finds a payment posted with other terms than the
	// ones stored (see settleByHistory).
	ListTransactions(ctx context.Context, req *pb.ListTransactionsRequest) (*pb.ListTransactionsResponse, error)
}

// Config configures an App.
type Config struct {
	Store  *Store
	Ledger Ledger
	Logger *zap.Logger
	Now    func() time.Time
	// Verifier checks the bearer tokens of the API, unless NoAuth
	// (development only) serves it to anyone; one is required.
	Verifier consumer.Verifier
	NoAuth   bool
	// AfterDebit, when set, runs right after the ledger confirmed an
	// invoice's payment entry (the capture) and before the invoice is
	// marked PAID. TEST-ONLY
	// fault injection: cmd/invoicing sets it to exit the process when
	// INVOICING_CRASH_AFTER_DEBIT=1, to prove the reconciliation.
	AfterDebit func(Invoice)
	// Events tunes the follower of the ledger's events (discovery period,
	// backoff); its Ledger, Cursors, Types, Handle and Log are the App's.
	Events consumer.FollowerConfig
}

// App is the invoicing logic over its store and the ledger.
type App struct {
	consumer.Base
	store      *Store
	ledger     Ledger
	afterDebit func(Invoice)
}

// NewApp returns the invoicing service.
func NewApp(cfg Config) (*App, error) {
	if cfg.Store == nil || cfg.Ledger == nil {
		return nil, errors.New("invoicing: Store and Ledger are required")
	}
	a := &App{store: cfg.Store, ledger: cfg.Ledger, afterDebit: cfg.AfterDebit}
	events := cfg.Events
	events.Ledger, events.Cursors, events.Types, events.Handle = cfg.Ledger, cfg.Store, EventTypes, a.HandleEvent
	var err error
	if a.Base, err = consumer.NewBase(consumer.BaseConfig{
		Name: "invoicing", Log: cfg.Logger, Now: cfg.Now, Verifier: cfg.Verifier, NoAuth: cfg.NoAuth, Events: events,
	}); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *App) clock() time.Time { return a.Now().UTC().Truncate(time.Microsecond) }

// NewInvoice is what creating an invoice takes.
type NewInvoice struct {
	Account string `json:"account"`
	// Number is the invoice's human number (e.g. "INV-1042"); assigned
	// from the workspace's sequence when empty.
	Number      string `json:"number,omitempty"`
	Description string `json:"description,omitempty"`
	Amount      Money  `json:"amount"`
}

// Create records an OPEN invoice.
func (a *App) Create(ctx context.Context, workspace string, in NewInvoice) (Invoice, error) {
	if err := consumer.CheckIDs("workspace", workspace, "account", in.Account); err != nil {
		return Invoice{}, err
	}
	if in.Number != "" {
		if err := consumer.CheckIDs("number", in.Number); err != nil {
			return Invoice{}, err
		}
	}
	if len(in.Description) > 1024 {
		return Invoice{}, consumer.Invalidf("description", "at most 1024 characters")
	}
	if err := in.Amount.Check("amount"); err != nil {
		return Invoice{}, err
	}
	inv, err := a.store.Insert(ctx, Invoice{
		ID: uuid.Must(uuid.NewV7()).String(), Workspace: workspace, Account: in.Account, Number: in.Number,
		Description: in.Description, Amount: in.Amount, CreateTime: a.clock(),
	})
	if errors.Is(err, errExists) {
		return Invoice{}, &consumer.Error{
			Kind: consumer.KindConflict, Code: CodeAlreadyExists, Message: "an invoice with this number exists",
			Metadata: map[string]string{"number": in.Number},
		}
	}
	if err != nil {
		return Invoice{}, consumer.Internal(err)
	}
	a.Events.Follow(workspace)
	a.Log.Info("invoice created", zap.String("invoice_id", inv.ID), zap.String("number", inv.Number),
		zap.String("workspace", workspace), zap.String("account", inv.Account), zap.Stringer("amount", inv.Amount))
	return inv, nil
}

// Get returns an invoice.
func (a *App) Get(ctx context.Context, workspace, id string) (Invoice, error) {
	if err := consumer.CheckIDs("workspace", workspace); err != nil {
		return Invoice{}, err
	}
	inv, err := a.store.Get(ctx, workspace, id)
	return inv, consumer.FromStore(err, "invoice", id)
}

// List returns a workspace's invoices (of one account and status when
// given), newest first.
func (a *App) List(ctx context.Context, workspace, account string, status Status) ([]Invoice, error) {
	if err := consumer.CheckIDs("workspace", workspace); err != nil {
		return nil, err
	}
	if account != "" && !ident.Valid(account) {
		return nil, consumer.Invalidf("account", "invalid identifier")
	}
	switch status {
	case "", StatusOpen, StatusPaying, StatusPaid:
	default:
		return nil, consumer.Invalidf("status", "must be OPEN, PAYING or PAID")
	}
	out, err := a.store.List(ctx, workspace, account, status)
	if err != nil {
		return nil, consumer.Internal(err)
	}
	return out, nil
}

// CreditOption says whether "Pay with Credit" is offered, and why not.
type CreditOption = consumer.CreditOption

// PaymentOptions of an invoice.
type PaymentOptions struct {
	Invoice       Invoice      `json:"invoice"`
	PayWithCredit CreditOption `json:"pay_with_credit"`
}

// PaymentOptions answers whether "Pay with Credit" is offered: only for an
// OPEN invoice, and then by one CheckCreditPayment with its amount
// (payments enabled, a rate exists, the balance covers the converted
// amount).
func (a *App) PaymentOptions(ctx context.Context, workspace, id string) (PaymentOptions, error) {
	inv, err := a.Get(ctx, workspace, id)
	if err != nil {
		return PaymentOptions{}, err
	}
	out := PaymentOptions{Invoice: inv}
	if inv.Status != StatusOpen {
		out.PayWithCredit.Reason = CodeInvoiceNotOpen
		return out, nil
	}
	if out.PayWithCredit, err = consumer.OfferCredit(ctx, a.ledger, a.Log, inv.Workspace, inv.Account, inv.Amount); err != nil {
		return PaymentOptions{}, fromLedger(err)
	}
	return out, nil
}

func (a *App) check(ctx context.Context, inv Invoice) (*pb.CheckCreditPaymentResponse, error) {
	return a.ledger.CheckCreditPayment(ctx, &pb.CheckCreditPaymentRequest{
		Workspace: inv.Workspace, Account: inv.Account, Cost: &pb.CheckCreditPaymentRequest_Price{Price: inv.Amount.Proto()},
	})
}

// PayWithCredit pays an invoice with credits (see the package comment).
// A PAID invoice is returned as it is; a PAYING one is settled by
// replaying its key. The returned invoice is the stored state, also with
// an error: OPEN with a refusal (consumer.KindRefused), PAYING when the ledger did
// not confirm (consumer.KindUnavailable: it is reconciled later).
func (a *App) PayWithCredit(ctx context.Context, workspace, id string) (Invoice, error) {
	for range 3 {
		inv, err := a.Get(ctx, workspace, id)
		if err != nil {
			return Invoice{}, err
		}
		switch inv.Status {
		case StatusPaid:
			return inv, nil
		case StatusPaying:
			return a.settle(ctx, inv)
		}
		chk, err := a.check(ctx, inv)
		if err != nil {
			return inv, fromLedger(err)
		}
		if !chk.GetAllowed() {
			if err := a.store.NoteFailure(ctx, workspace, id, chk.GetReason(), a.clock()); err != nil {
				return inv, consumer.Internal(err)
			}
			inv.LastFailure = chk.GetReason()
			return inv, &consumer.Error{
				Kind: consumer.KindRefused, Code: chk.GetReason(), Message: "Pay with Credit is not available",
				Metadata: map[string]string{"balance": fmt.Sprint(chk.GetBalance()), "credits_required": fmt.Sprint(chk.GetCreditsRequired())},
			}
		}
		ok, err := a.store.BeginPaying(ctx, workspace, id, chk.GetCreditsRequired(), Key(inv.ID), a.clock())
		if err != nil {
			return inv, consumer.Internal(err)
		}
		if ok {
			if inv, err = a.store.Get(ctx, workspace, id); err != nil {
				return inv, consumer.Internal(err)
			}
			a.Log.Info("invoice payment started", zap.String("invoice_id", inv.ID), zap.String("number", inv.Number),
				zap.Int64("credits", inv.Credits), zap.String("idempotency_key_sha256", consumer.Fingerprint(inv.IdempotencyKey)))
			return a.settle(ctx, inv)
		}
		// A concurrent payment moved it first: look again.
	}
	return Invoice{}, &consumer.Error{Kind: consumer.KindConflict, Code: "CONCURRENT_UPDATE", Message: "the invoice is being changed concurrently; retry"}
}

// settle drives a PAYING invoice on: it creates (or replays) the hold
// when none is recorded, then captures it.
func (a *App) settle(ctx context.Context, inv Invoice) (Invoice, error) {
	if inv.Method == MethodDebit {
		return a.settleDebit(ctx, inv)
	}
	if inv.HoldID == "" {
		res, err := a.ledger.CreateHold(ctx, &pb.CreateHoldRequest{
			Workspace: inv.Workspace, Account: inv.Account, Amount: inv.Credits,
			Kind: pb.TransactionKind_TRANSACTION_KIND_INVOICE_PAYMENT, Reference: inv.Reference(),
			Ttl: durationpb.New(HoldTTL), IdempotencyKey: inv.IdempotencyKey,
			Metadata: map[string]string{"invoice_id": inv.ID, "invoice_number": inv.Number},
		})
		switch {
		case err == nil:
		case ledgerclient.IsRefused(err):
			le := fromLedger(err)
			out, aerr := a.store.AbortPaying(ctx, inv.Workspace, inv.ID, le.Code, a.clock())
			if aerr != nil {
				return inv, consumer.Internal(aerr)
			}
			a.Log.Info("invoice hold refused; back to OPEN", zap.String("invoice_id", inv.ID), zap.String("reason", le.Code))
			return out, le
		default:
			a.Log.Warn("invoice hold not confirmed; left PAYING", zap.String("invoice_id", inv.ID), zap.Error(err))
			return inv, fromLedger(err)
		}
		holdID := res.GetHold().GetId()
		out, err := a.store.SetHold(ctx, inv.Workspace, inv.ID, inv.IdempotencyKey, holdID, a.clock())
		if err != nil {
			return inv, consumer.Internal(err)
		}
		if out.Status != StatusPaying || out.HoldID != holdID {
			// Another call of this payment moved it on meanwhile.
			return out, nil
		}
		inv = out
		a.Log.Info("invoice credits held", zap.String("invoice_id", inv.ID), zap.String("hold_id", holdID),
			zap.Bool("replayed", res.GetReplayed()), zap.Int64("available", res.GetAvailable()))
	}
	return a.capture(ctx, inv)
}

// capture captures (or replays the capture of) the hold of a PAYING
// invoice and records the outcome.
func (a *App) capture(ctx context.Context, inv Invoice) (Invoice, error) {
	res, err := a.ledger.CaptureHold(ctx, &pb.CaptureHoldRequest{
		Workspace: inv.Workspace, HoldId: inv.HoldID, IdempotencyKey: inv.IdempotencyKey + ":capture",
	})
	var txID string
	switch {
	case err == nil:
		txID = res.GetTransaction().GetId()
		a.Log.Info("invoice hold captured", zap.String("invoice_id", inv.ID), zap.String("transaction_id", txID),
			zap.Bool("replayed", res.GetReplayed()))
	case errors.Is(err, ledgerclient.ErrHoldNotActive):
		// Captured already (by this payment: only it knows the hold), or
		// ended without paying: the hold says which.
		h, herr := a.ledger.GetHold(ctx, &pb.GetHoldRequest{Workspace: inv.Workspace, HoldId: inv.HoldID})
		if herr != nil {
			a.Log.Warn("invoice hold state unavailable; left PAYING", zap.String("invoice_id", inv.ID), zap.Error(herr))
			return inv, fromLedger(herr)
		}
		if h.GetHold().GetStatus() != pb.HoldStatus_HOLD_STATUS_CAPTURED {
			code := CodeHoldVoided
			if h.GetHold().GetStatus() == pb.HoldStatus_HOLD_STATUS_EXPIRED {
				code = CodeHoldExpired
			}
			return a.reopen(ctx, inv, &consumer.Error{Kind: consumer.KindRefused, Code: code, Message: "the credits held for the payment were released; pay again"})
		}
		txID = h.GetHold().GetTransactionId()
	case ledgerclient.IsRefused(err):
		// Nothing was posted: give the credits back now rather than at
		// the hold's expiry.
		return a.release(ctx, inv, fromLedger(err))
	default:
		a.Log.Warn("invoice capture not confirmed; left PAYING", zap.String("invoice_id", inv.ID), zap.Error(err))
		return inv, fromLedger(err)
	}
	return a.markPaid(ctx, inv, txID)
}

// release voids the hold of a PAYING invoice whose capture was refused,
// then reopens the invoice. A void the ledger does not confirm leaves the
// invoice PAYING: the next pass tries the capture again.
func (a *App) release(ctx context.Context, inv Invoice, cause *consumer.Error) (Invoice, error) {
	_, err := a.ledger.VoidHold(ctx, &pb.VoidHoldRequest{Workspace: inv.Workspace, HoldId: inv.HoldID, IdempotencyKey: inv.IdempotencyKey + ":void"})
	if err != nil && !errors.Is(err, ledgerclient.ErrHoldNotActive) {
		a.Log.Warn("invoice hold not voided after a refused capture; left PAYING", zap.String("invoice_id", inv.ID),
			zap.String("reason", cause.Code), zap.Error(err))
		return inv, fromLedger(err)
	}
	// The void's event may have reopened the invoice first, as
	// HOLD_VOIDED: the refusal is the reason.
	out, err := a.store.EndAttempt(ctx, inv.Workspace, inv.ID, inv.HoldID, cause.Code, true, a.clock())
	if err != nil {
		return inv, consumer.Internal(err)
	}
	a.Log.Info("invoice payment ended without paying; back to OPEN", zap.String("invoice_id", inv.ID),
		zap.String("hold_id", inv.HoldID), zap.String("reason", cause.Code))
	return out, cause
}

// reopen moves a PAYING invoice back to OPEN with the reason.
func (a *App) reopen(ctx context.Context, inv Invoice, cause *consumer.Error) (Invoice, error) {
	out, err := a.store.AbortPaying(ctx, inv.Workspace, inv.ID, cause.Code, a.clock())
	if err != nil {
		return inv, consumer.Internal(err)
	}
	a.Log.Info("invoice payment ended without paying; back to OPEN", zap.String("invoice_id", inv.ID),
		zap.String("hold_id", inv.HoldID), zap.String("reason", cause.Code))
	return out, cause
}

// markPaid records the entry that paid the invoice, as the capture's
// answer gave it.
func (a *App) markPaid(ctx context.Context, inv Invoice, txID string) (Invoice, error) {
	if a.afterDebit != nil {
		a.afterDebit(inv)
	}
	return a.recordPaid(ctx, inv, txID)
}

// recordPaid marks the invoice PAID with the entry txID.
func (a *App) recordPaid(ctx context.Context, inv Invoice, txID string) (Invoice, error) {
	out, err := a.store.MarkPaid(ctx, inv.Workspace, inv.ID, txID, a.clock())
	if err != nil {
		return inv, consumer.Internal(err)
	}
	a.Log.Info("invoice paid", zap.String("invoice_id", inv.ID), zap.String("transaction_id", txID))
	return out, nil
}

// settleDebit posts or replays the one-step debit of an invoice whose
// payment was begun before holds (Method DEBIT) and records the ledger's
// answer.
func (a *App) settleDebit(ctx context.Context, inv Invoice) (Invoice, error) {
	res, err := a.ledger.Debit(ctx, &pb.DebitRequest{
		Workspace: inv.Workspace, Account: inv.Account, Amount: inv.Credits,
		Kind: pb.TransactionKind_TRANSACTION_KIND_INVOICE_PAYMENT, Reference: inv.Reference(),
		IdempotencyKey: inv.IdempotencyKey, Metadata: map[string]string{"invoice_id": inv.ID, "invoice_number": inv.Number},
	})
	var txID string
	switch {
	case err == nil:
		txID = res.GetTransaction().GetId()
		a.Log.Info("invoice debit posted", zap.String("invoice_id", inv.ID), zap.String("transaction_id", txID),
			zap.Bool("replayed", res.GetReplayed()), zap.Int64("balance", res.GetBalance()))
	case errors.Is(err, ledgerclient.ErrIdempotencyKeyReused):
		// The key did post, with other terms (the amount was recomputed
		// after a refusal raced with a success). The posted debit is the
		// truth: find it.
		txID, err = a.findDebit(ctx, inv)
		if err != nil || txID == "" {
			a.Log.Error("invoice key posted with other terms and the debit cannot be found; left PAYING",
				zap.String("invoice_id", inv.ID), zap.Error(err))
			return inv, &consumer.Error{
				Kind: consumer.KindConflict, Code: ledgerclient.ReasonIdempotencyKeyReused,
				Message: "the payment key was used with other terms; an operator must check the ledger",
			}
		}
	case ledgerclient.IsRefused(err):
		le := fromLedger(err)
		out, aerr := a.store.AbortPaying(ctx, inv.Workspace, inv.ID, le.Code, a.clock())
		if aerr != nil {
			return inv, consumer.Internal(aerr)
		}
		a.Log.Info("invoice payment refused; back to OPEN", zap.String("invoice_id", inv.ID), zap.String("reason", le.Code))
		return out, le
	default:
		a.Log.Warn("invoice debit not confirmed; left PAYING", zap.String("invoice_id", inv.ID), zap.Error(err))
		return inv, fromLedger(err)
	}
	return a.markPaid(ctx, inv, txID)
}

// findDebit looks for the INVOICE_PAYMENT posted under the invoice's key.
func (a *App) findDebit(ctx context.Context, inv Invoice) (string, error) {
	req := &pb.ListTransactionsRequest{
		Workspace: inv.Workspace, Account: inv.Account, PageSize: 500,
		Type: pb.TransactionType_TRANSACTION_TYPE_OUT, Kind: pb.TransactionKind_TRANSACTION_KIND_INVOICE_PAYMENT,
	}
	for range 100 {
		res, err := a.ledger.ListTransactions(ctx, req)
		if err != nil {
			return "", err
		}
		for _, t := range res.GetTransactions() {
			if t.GetIdempotencyKey() == inv.IdempotencyKey {
				return t.GetId(), nil
			}
		}
		if res.GetNextPageToken() == "" {
			return "", nil
		}
		req.PageToken = res.GetNextPageToken()
	}
	return "", errors.New("history too long to search")
}

// ReconcileReport counts what a Reconcile pass found and settled.
type ReconcileReport struct {
	Paying, Paid, Reopened int
}

// Reconcile settles every PAYING invoice by replaying its keys: a hold
// not recorded yet is created or replayed, a recorded one is captured or
// its capture replayed (→ PAID); a refusal, or a hold found expired or
// voided, reopens the invoice; an unreachable ledger leaves it PAYING for
// the next pass.
func (a *App) Reconcile(ctx context.Context) (ReconcileReport, error) {
	var rep ReconcileReport
	paying, err := a.store.Paying(ctx)
	if err != nil {
		return rep, err
	}
	for _, inv := range paying {
		rep.Paying++
		out, _ := a.settle(ctx, inv)
		switch out.Status {
		case StatusPaid:
			rep.Paid++
		case StatusOpen:
			rep.Reopened++
		}
	}
	if rep.Paying > 0 {
		a.Log.Info("reconciled", zap.Int("paying", rep.Paying), zap.Int("paid", rep.Paid), zap.Int("reopened", rep.Reopened))
	}
	return rep, ctx.Err()
}

// ParseStatus reads a status filter ("" for any).
func ParseStatus(s string) Status { return Status(strings.ToUpper(s)) }

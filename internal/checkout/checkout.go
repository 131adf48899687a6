// Package checkout is the reference checkout service of CreditLedger: a
// catalog of services, "Buy with Credit" orders and the purchase of credit
// packages (instantly by card/PayPal through a payment webhook, or manually
// by bank transfer/crypto through a credit request the agency decides), with
// only the payment methods the workspace offers (the ledger's settings).
//
// "Buy with Credit" reserves the credits when the order is placed (a
// ledger hold: the order is HELD), spends them when it is confirmed (the
// hold's capture: CONFIRMED) or releases them when it is cancelled (the
// hold's void: CANCELLED); a confirmed order can be refunded, in whole or
// in part, by reversing its entry.
//
// Its own state lives in a SQLite file (Store). Every ledger write carries
// an idempotency key derived from a row committed before the call, so a
// crash, a timeout or a redelivery never loses or doubles a movement: what
// is left pending is replayed with the same key by Reconcile.
//
// The agency's decisions on manual purchases and the end of orders' holds
// (expired, voided, captured) reach the checkout as the ledger's events
// (FollowEvents, events.go); reading a purchase and Reconcile still ask
// the ledger, as a fallback.
package checkout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/consumer"
	"github.com/creditledger/creditledger/ledgerclient"
)

// Ledger is what the checkout needs from CreditLedger; *ledgerclient.Client
// provides it (with retries of what is safe and typed errors).
type Ledger interface {
	CheckCreditPayment(ctx context.Context, req *pb.CheckCreditPaymentRequest) (*pb.CheckCreditPaymentResponse, error)
	Debit(ctx context.Context, req *pb.DebitRequest) (*pb.DebitResponse, error)
	CreateHold(ctx context.Context, req *pb.CreateHoldRequest) (*pb.CreateHoldResponse, error)
	CaptureHold(ctx context.Context, req *pb.CaptureHoldRequest) (*pb.CaptureHoldResponse, error)
	VoidHold(ctx context.Context, req *pb.VoidHoldRequest) (*pb.VoidHoldResponse, error)
	GetHold(ctx context.Context, req *pb.GetHoldRequest) (*pb.GetHoldResponse, error)
	ReverseTransaction(ctx context.Context, req *pb.ReverseTransactionRequest) (*pb.ReverseTransactionResponse, error)
	Credit(ctx context.Context, req *pb.CreditRequest) (*pb.CreditResponse, error)
	SubmitRequest(ctx context.Context, req *pb.SubmitRequestRequest) (*pb.SubmitRequestResponse, error)
	GetRequest(ctx context.Context, req *pb.GetRequestRequest) (*pb.GetRequestResponse, error)
	CancelRequest(ctx context.Context, req *pb.CancelRequestRequest) (*pb.CancelRequestResponse, error)
	GetPackage(ctx context.Context, req *pb.GetPackageRequest) (*pb.GetPackageResponse, error)
	GetSettings(ctx context.Context, req *pb.GetSettingsRequest) (*pb.GetSettingsResponse, error)
	// Follow streams a workspace's events, resumed after every break.
	Follow(ctx context.Context, req *pb.WatchEventsRequest, handle func(context.Context, *pb.Event) error, o ledgerclient.FollowOptions) error
}

// Config configures an App.
type Config struct {
	Store  *Store
	Ledger Ledger
	Logger *zap.Logger
	// Verifier checks the bearer tokens of the API. It is required unless
	// NoAuth is set.
	Verifier Verifier
	// NoAuth serves the API without authentication: development only.
	NoAuth bool
	// StripeWebhookSecret is the signing secret (whsec_…) of the Stripe
	// webhook endpoint: payment webhooks must carry a valid
	// Stripe-Signature made with it. Empty refuses every webhook, unless
	// UnsignedWebhooks is set.
	StripeWebhookSecret string
	// UnsignedWebhooks accepts unsigned PaymentConfirmation bodies (those
	// without a Stripe-Signature): development only, since anyone who can
	// reach the endpoint can then credit any account.
	UnsignedWebhooks bool
	// Providers take the payment of instant purchases, by method: STRIPE
	// (NewStripe), and PAYPAL once it has an adapter. An instant purchase
	// whose method has no provider is refused with
	// PAYMENT_PROVIDER_NOT_CONFIGURED.
	Providers map[PaymentMethod]PaymentProvider
	// HoldTTL is how long an order's credits stay held waiting for its
	// confirmation (DefaultHoldTTL when zero; at most MaxHoldTTL).
	HoldTTL time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Events tunes the follower of the ledger's events (discovery period,
	// backoff); its Ledger, Cursors, Types, Handle and Log are the App's.
	Events consumer.FollowerConfig
}

// Bounds of an order's hold.
const (
	DefaultHoldTTL = 24 * time.Hour
	MaxHoldTTL     = 30 * 24 * time.Hour
)

// App is the checkout's logic over its store and the ledger.
type App struct {
	store        *Store
	ledger       Ledger
	log          *zap.Logger
	verifier     Verifier // nil: no authentication (development)
	stripeSecret string
	unsigned     bool
	providers    map[PaymentMethod]PaymentProvider
	holdTTL      time.Duration
	now          func() time.Time
	events       *consumer.Follower
}

// NewApp returns the checkout.
func NewApp(cfg Config) (*App, error) {
	if cfg.Store == nil || cfg.Ledger == nil {
		return nil, errors.New("checkout: Store and Ledger are required")
	}
	if cfg.Verifier == nil && !cfg.NoAuth {
		return nil, errors.New("checkout: a token Verifier is required (NoAuth is for development only)")
	}
	if cfg.Verifier != nil && cfg.NoAuth {
		return nil, errors.New("checkout: Verifier and NoAuth are exclusive")
	}
	if cfg.HoldTTL < 0 || cfg.HoldTTL > MaxHoldTTL || cfg.HoldTTL%time.Second != 0 {
		return nil, fmt.Errorf("checkout: HoldTTL %v: want whole seconds, at most %v", cfg.HoldTTL, MaxHoldTTL)
	}
	a := &App{
		store: cfg.Store, ledger: cfg.Ledger, log: cfg.Logger, verifier: cfg.Verifier,
		stripeSecret: cfg.StripeWebhookSecret, unsigned: cfg.UnsignedWebhooks, holdTTL: cfg.HoldTTL, now: cfg.Now,
		providers: map[PaymentMethod]PaymentProvider{},
	}
	for m, p := range cfg.Providers {
		if !m.instant() || p == nil {
			return nil, fmt.Errorf("checkout: no payment provider takes %q payments", m)
		}
		a.providers[m] = p
	}
	if a.holdTTL == 0 {
		a.holdTTL = DefaultHoldTTL
	}
	if a.log == nil {
		a.log = zap.NewNop()
	}
	if a.now == nil {
		a.now = time.Now
	}
	ev := cfg.Events
	ev.Ledger, ev.Cursors, ev.Types, ev.Handle, ev.Log = cfg.Ledger, cfg.Store, EventTypes, a.HandleEvent, a.log
	var err error
	if a.events, err = consumer.NewFollower(ev); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *App) clock() time.Time { return a.now().UTC().Truncate(time.Microsecond) }

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// OrderKey is the ledger idempotency key of an order's hold (or, for an
// order placed before holds, of its debit). The hold's capture takes
// OrderKey+":capture", its void OrderKey+":void".
func OrderKey(orderID string) string { return "checkout-order:" + orderID }

// RefundKey is the ledger idempotency key of a refund's reversal.
func RefundKey(refundID string) string { return "checkout-refund:" + refundID }

// PurchaseKey is the ledger idempotency key of a manual purchase's credit request.
func PurchaseKey(purchaseID string) string { return "checkout-purchase:" + purchaseID }

// PaymentKey is the ledger idempotency key (and reference) of a provider
// payment's credit: "stripe:pi_…".
func PaymentKey(provider, paymentID string) string { return provider + ":" + paymentID }

// --- catalog ---

// PutService creates or replaces a catalog entry.
func (a *App) PutService(ctx context.Context, s Service) (Service, error) {
	if err := checkIDs("workspace", s.Workspace, "id", s.ID); err != nil {
		return Service{}, err
	}
	if n := len([]rune(strings.TrimSpace(s.Name))); n == 0 || n > 128 {
		return Service{}, invalidf("name", "must be 1-128 characters")
	}
	if err := validatePrice("price", s.Price); err != nil {
		return Service{}, err
	}
	out, err := a.store.PutService(ctx, s, a.clock())
	if err != nil {
		return Service{}, internal(err)
	}
	return out, nil
}

// GetService returns a catalog entry.
func (a *App) GetService(ctx context.Context, workspace, id string) (Service, error) {
	if err := checkIDs("workspace", workspace, "service", id); err != nil {
		return Service{}, err
	}
	s, err := a.store.GetService(ctx, workspace, id)
	if errors.Is(err, errNoRows) {
		return Service{}, notFound("service", id)
	}
	if err != nil {
		return Service{}, internal(err)
	}
	return s, nil
}

// ListServices returns a workspace's catalog.
func (a *App) ListServices(ctx context.Context, workspace string) ([]Service, error) {
	if err := checkIDs("workspace", workspace); err != nil {
		return nil, err
	}
	out, err := a.store.ListServices(ctx, workspace)
	if err != nil {
		return nil, internal(err)
	}
	return out, nil
}

// --- Buy with Credit ---

// CreditOption says whether "Buy with Credit" is offered, and why not.
type CreditOption struct {
	Offered bool `json:"offered"`
	// Reason when not offered: SERVICE_NOT_ELIGIBLE, CREDIT_PAYMENTS_DISABLED,
	// NO_CONVERSION_RATE, INSUFFICIENT_CREDITS or LEDGER_UNAVAILABLE.
	Reason string `json:"reason,omitempty"`
	// CreditsRequired is the price converted with the workspace's rate.
	CreditsRequired       int64 `json:"credits_required"`
	Balance               int64 `json:"balance"`
	CreditPaymentsEnabled bool  `json:"credit_payments_enabled"`
}

// Options are the checkout options of a service for an account.
type Options struct {
	Workspace     string       `json:"workspace"`
	Account       string       `json:"account"`
	Service       Service      `json:"service"`
	BuyWithCredit CreditOption `json:"buy_with_credit"`
}

// CheckoutOptions answers whether "Buy with Credit" is offered for a
// service: the service's own eligibility flag, then ONE CheckCreditPayment
// with the price (payments enabled, a rate exists, the balance covers the
// converted price). A ledger that does not answer hides the option
// (LEDGER_UNAVAILABLE) instead of failing the page.
func (a *App) CheckoutOptions(ctx context.Context, workspace, account, serviceID string) (Options, error) {
	if err := checkIDs("workspace", workspace, "account", account, "service", serviceID); err != nil {
		return Options{}, err
	}
	svc, err := a.GetService(ctx, workspace, serviceID)
	if err != nil {
		return Options{}, err
	}
	out := Options{Workspace: workspace, Account: account, Service: svc}
	if !svc.CreditEligible {
		out.BuyWithCredit.Reason = CodeServiceNotEligible
		return out, nil
	}
	chk, err := a.ledger.CheckCreditPayment(ctx, &pb.CheckCreditPaymentRequest{
		Workspace: workspace, Account: account, Cost: &pb.CheckCreditPaymentRequest_Price{Price: svc.Price.proto()},
	})
	if err != nil {
		le := fromLedger(err)
		if le.Kind != KindUnavailable {
			return Options{}, le
		}
		a.log.Warn("checkout options: ledger unavailable", zap.String("workspace", workspace), zap.Error(err))
		out.BuyWithCredit.Reason = CodeLedgerUnavailable
		return out, nil
	}
	out.BuyWithCredit = CreditOption{
		Offered: chk.GetAllowed(), Reason: chk.GetReason(), CreditsRequired: chk.GetCreditsRequired(),
		Balance: chk.GetBalance(), CreditPaymentsEnabled: chk.GetCreditPaymentsEnabled(),
	}
	return out, nil
}

// BuyWithCredits places an order for a service, paid with credits: the
// option must be offered (see CheckoutOptions); the order is recorded
// PENDING with the converted credits, then a SERVICE_PURCHASE hold of them
// is placed with the key "checkout-order:<id>", and only then is the order
// HELD (the credits reserved, not spent): ConfirmOrder spends them,
// CancelOrder releases them. With confirm, the order is confirmed at once
// (hold, then capture: the one-step "Buy with Credit"). A refusal marks it
// FAILED with the reason. When the ledger does not confirm, the order
// stays where it is (error kind Unavailable) and Reconcile finishes it.
//
// clientKey, when set, makes the call idempotent for the client: the same
// key returns the same order (and finishes it if still in flight).
//
// The returned order is set whenever one exists, also with an error.
func (a *App) BuyWithCredits(ctx context.Context, workspace, account, serviceID, clientKey string, confirm bool) (Order, bool, error) {
	if err := checkIDs("workspace", workspace, "account", account, "service_id", serviceID); err != nil {
		return Order{}, false, err
	}
	if clientKey != "" && !validKey(clientKey) {
		return Order{}, false, invalidf("Idempotency-Key", "must be 1-128 printable ASCII characters")
	}
	svc, err := a.GetService(ctx, workspace, serviceID)
	if err != nil {
		return Order{}, false, err
	}
	if clientKey != "" {
		// A retry of an earlier request: no new check, no new order.
		orders, err := a.store.queryOrders(ctx, `SELECT `+orderColumns+` FROM orders WHERE workspace = ? AND account = ? AND client_key = ?`,
			workspace, account, clientKey)
		if err != nil {
			return Order{}, false, internal(err)
		}
		if len(orders) == 1 {
			o, err := a.replayedOrder(ctx, orders[0], serviceID)
			return o, true, err
		}
	}
	if !svc.CreditEligible {
		return Order{}, false, &Error{
			Kind: KindRefused, Code: CodeServiceNotEligible,
			Message: "this service cannot be bought with credits", Metadata: map[string]string{"service_id": svc.ID},
		}
	}
	chk, err := a.ledger.CheckCreditPayment(ctx, &pb.CheckCreditPaymentRequest{
		Workspace: workspace, Account: account, Cost: &pb.CheckCreditPaymentRequest_Price{Price: svc.Price.proto()},
	})
	if err != nil {
		return Order{}, false, fromLedger(err)
	}
	if !chk.GetAllowed() {
		return Order{}, false, &Error{
			Kind: KindRefused, Code: chk.GetReason(), Message: "Buy with Credit is not available",
			Metadata: map[string]string{
				"balance": fmt.Sprint(chk.GetBalance()), "credits_required": fmt.Sprint(chk.GetCreditsRequired()),
			},
		}
	}
	now := a.clock()
	id := newID()
	action := ActionNone
	if confirm {
		action = ActionConfirm
	}
	o, existing, err := a.store.InsertOrder(ctx, Order{
		ID: id, Workspace: workspace, Account: account, ServiceID: svc.ID, ServiceName: svc.Name, Price: svc.Price,
		Credits: chk.GetCreditsRequired(), IdempotencyKey: OrderKey(id), ClientKey: clientKey, CreateTime: now,
		Action: action, HoldTTL: a.holdTTL,
	})
	if err != nil {
		return Order{}, false, internal(err)
	}
	if existing { // a concurrent request with the same client key won
		o, err := a.replayedOrder(ctx, o, serviceID)
		return o, true, err
	}
	a.events.Follow(workspace)
	a.log.Info("order created", zap.String("order_id", o.ID), zap.String("workspace", workspace),
		zap.String("account", account), zap.String("service_id", svc.ID), zap.Int64("credits", o.Credits), zap.Bool("confirm", confirm))
	o, err = a.settleOrder(ctx, o)
	return o, false, err
}

// replayedOrder answers a client retry with the order it created.
func (a *App) replayedOrder(ctx context.Context, o Order, serviceID string) (Order, error) {
	if o.ServiceID != serviceID {
		return o, &Error{
			Kind: KindConflict, Code: CodeKeyReused, Message: "this Idempotency-Key was used for another order",
			Metadata: map[string]string{"order_id": o.ID},
		}
	}
	return a.settleOrder(ctx, o)
}

// inFlight says whether an order waits on the ledger: its hold (or debit)
// not yet answered, or its confirm or cancel.
func inFlight(o Order) bool {
	return o.Status == OrderPending || (o.Status == OrderHeld && o.Action != ActionNone)
}

// settleOrder drives an order as far as the ledger lets it: a PENDING
// order gets its hold (or, placed before holds, its debit), a HELD one
// with an action its capture or void. Anything else is returned as it is,
// with the refusal as error when it FAILED.
func (a *App) settleOrder(ctx context.Context, o Order) (Order, error) {
	switch o.Status {
	case OrderFailed:
		return o, &Error{Kind: KindRefused, Code: o.FailureReason, Message: "the order failed"}
	case OrderPending:
		if o.Method == MethodDebit {
			return a.debitOrder(ctx, o)
		}
		var err error
		if o, err = a.holdOrder(ctx, o); err != nil || o.Status != OrderHeld {
			return o, err
		}
	}
	if o.Status != OrderHeld {
		return o, nil
	}
	switch o.Action {
	case ActionConfirm:
		return a.captureOrder(ctx, o)
	case ActionCancel:
		return a.voidOrder(ctx, o)
	default:
		return o, nil
	}
}

// holdOrder places (or replays) the hold of a PENDING order.
func (a *App) holdOrder(ctx context.Context, o Order) (Order, error) {
	res, err := a.ledger.CreateHold(ctx, &pb.CreateHoldRequest{
		Workspace: o.Workspace, Account: o.Account, Amount: o.Credits,
		Kind: pb.TransactionKind_TRANSACTION_KIND_SERVICE_PURCHASE, Reference: "order:" + o.ID,
		Ttl: durationpb.New(o.HoldTTL), IdempotencyKey: o.IdempotencyKey,
		Metadata: map[string]string{"order_id": o.ID, "service_id": o.ServiceID},
	})
	if err != nil {
		return a.orderRefused(ctx, o, err, "order hold not confirmed; left pending")
	}
	h := res.GetHold()
	held, err := a.store.HoldOrder(ctx, o.Workspace, o.ID, h.GetId(), h.GetExpireTime().AsTime(), a.clock())
	if err != nil {
		return o, internal(err)
	}
	a.log.Info("order held", zap.String("order_id", o.ID), zap.String("hold_id", h.GetId()),
		zap.Bool("replayed", res.GetReplayed()), zap.Int64("available", res.GetAvailable()))
	return held, nil
}

// orderRefused records a ledger refusal as the order's failure; an answer
// that leaves the outcome unknown leaves the order as it is, for
// reconciliation.
func (a *App) orderRefused(ctx context.Context, o Order, err error, unknown string) (Order, error) {
	le := fromLedger(err)
	if !ledgerclient.IsRefused(err) {
		a.log.Warn(unknown, zap.String("order_id", o.ID), zap.Error(err))
		return o, le
	}
	failed, ferr := a.store.FinishOrder(ctx, o.Workspace, o.ID, OrderFailed, "", le.Code, a.clock())
	if ferr != nil {
		return o, internal(ferr)
	}
	a.log.Info("order failed", zap.String("order_id", o.ID), zap.String("reason", le.Code))
	return failed, le
}

// debitOrder posts (or replays) the one-step debit of a PENDING order
// placed before holds.
func (a *App) debitOrder(ctx context.Context, o Order) (Order, error) {
	res, err := a.ledger.Debit(ctx, &pb.DebitRequest{
		Workspace: o.Workspace, Account: o.Account, Amount: o.Credits,
		Kind: pb.TransactionKind_TRANSACTION_KIND_SERVICE_PURCHASE, Reference: "order:" + o.ID,
		IdempotencyKey: o.IdempotencyKey, Metadata: map[string]string{"order_id": o.ID, "service_id": o.ServiceID},
	})
	if err != nil {
		return a.orderRefused(ctx, o, err, "order debit not confirmed; left pending")
	}
	return a.confirmed(ctx, o, res.GetTransaction().GetId(), res.GetReplayed())
}

func (a *App) confirmed(ctx context.Context, o Order, txID string, replayed bool) (Order, error) {
	done, err := a.store.FinishOrder(ctx, o.Workspace, o.ID, OrderConfirmed, txID, "", a.clock())
	if err != nil {
		return o, internal(err)
	}
	a.log.Info("order confirmed", zap.String("order_id", o.ID), zap.String("transaction_id", txID), zap.Bool("replayed", replayed))
	return done, nil
}

// captureOrder captures (or replays the capture of) a HELD order's hold.
func (a *App) captureOrder(ctx context.Context, o Order) (Order, error) {
	res, err := a.ledger.CaptureHold(ctx, &pb.CaptureHoldRequest{
		Workspace: o.Workspace, HoldId: o.HoldID, IdempotencyKey: o.IdempotencyKey + ":capture",
	})
	switch {
	case err == nil:
		return a.confirmed(ctx, o, res.GetTransaction().GetId(), res.GetReplayed())
	case errors.Is(err, ledgerclient.ErrHoldNotActive):
		return a.holdEnded(ctx, o)
	case ledgerclient.IsRefused(err):
		// Nothing was posted: release the credits now rather than at the
		// hold's expiry, then record the refusal.
		if _, verr := a.ledger.VoidHold(ctx, &pb.VoidHoldRequest{
			Workspace: o.Workspace, HoldId: o.HoldID, IdempotencyKey: o.IdempotencyKey + ":void",
		}); verr != nil && !errors.Is(verr, ledgerclient.ErrHoldNotActive) {
			a.log.Warn("order hold not voided after a refused capture; left held", zap.String("order_id", o.ID), zap.Error(verr))
			return o, fromLedger(verr)
		}
		return a.orderRefused(ctx, o, err, "")
	default:
		a.log.Warn("order capture not confirmed; left held", zap.String("order_id", o.ID), zap.Error(err))
		return o, fromLedger(err)
	}
}

// voidOrder voids (or replays the void of) a HELD order's hold.
func (a *App) voidOrder(ctx context.Context, o Order) (Order, error) {
	_, err := a.ledger.VoidHold(ctx, &pb.VoidHoldRequest{Workspace: o.Workspace, HoldId: o.HoldID, IdempotencyKey: o.IdempotencyKey + ":void"})
	switch {
	case err == nil:
		out, ferr := a.store.FinishOrder(ctx, o.Workspace, o.ID, OrderCancelled, "", "", a.clock())
		if ferr != nil {
			return o, internal(ferr)
		}
		a.log.Info("order cancelled", zap.String("order_id", o.ID), zap.String("hold_id", o.HoldID))
		return out, nil
	case errors.Is(err, ledgerclient.ErrHoldNotActive):
		return a.holdEnded(ctx, o)
	default:
		a.log.Warn("order void not confirmed; left held", zap.String("order_id", o.ID), zap.Error(err))
		return o, fromLedger(err)
	}
}

// holdEnded records what became of a HELD order's hold that is no longer
// active: captured (only this order knows the hold: by its own capture),
// voided, or expired. The error says why when that is not what the
// order's action asked for.
func (a *App) holdEnded(ctx context.Context, o Order) (Order, error) {
	res, err := a.ledger.GetHold(ctx, &pb.GetHoldRequest{Workspace: o.Workspace, HoldId: o.HoldID})
	if err != nil {
		a.log.Warn("order hold state unavailable; left held", zap.String("order_id", o.ID), zap.Error(err))
		return o, fromLedger(err)
	}
	return a.applyHoldEnd(ctx, o, res.GetHold())
}

// applyHoldEnd records what became of a HELD order's hold h, as GetHold
// or the hold's event says (see holdEnded).
func (a *App) applyHoldEnd(ctx context.Context, o Order, h *pb.Hold) (Order, error) {
	var status OrderStatus
	var code string
	switch h.GetStatus() {
	case pb.HoldStatus_HOLD_STATUS_CAPTURED:
		return a.confirmed(ctx, o, h.GetTransactionId(), true)
	case pb.HoldStatus_HOLD_STATUS_VOIDED:
		status, code = OrderCancelled, CodeHoldVoided
	case pb.HoldStatus_HOLD_STATUS_EXPIRED:
		status, code = OrderExpired, CodeHoldExpired
	default:
		return o, nil // still active (a stale answer): left as it is
	}
	out, err := a.store.FinishOrder(ctx, o.Workspace, o.ID, status, "", "", a.clock())
	if err != nil {
		return o, internal(err)
	}
	a.log.Info("order hold ended", zap.String("order_id", o.ID), zap.String("hold_id", o.HoldID), zap.String("status", string(status)))
	if o.Action == ActionConfirm {
		return out, &Error{
			Kind: KindRefused, Code: code, Message: "the credits held for the order were released; it cannot be confirmed",
			Metadata: map[string]string{"order_id": o.ID, "status": string(status)},
		}
	}
	return out, nil
}

// ConfirmOrder spends the credits a HELD order holds: the intent is
// recorded first (action CONFIRM), then the hold is captured with the key
// "checkout-order:<id>:capture", and only then is the order CONFIRMED
// with the captured entry. A confirmed order is returned as it is. When
// the ledger does not answer, the order stays HELD with its action and
// Reconcile finishes it; a hold that expired makes the order EXPIRED
// (HOLD_EXPIRED).
func (a *App) ConfirmOrder(ctx context.Context, workspace, id string) (Order, error) {
	return a.act(ctx, workspace, id, ActionConfirm)
}

// CancelOrder releases the credits a HELD order holds: the intent is
// recorded first (action CANCEL), then the hold is voided with the key
// "checkout-order:<id>:void", and only then is the order CANCELLED. A
// cancelled or expired order is returned as it is.
func (a *App) CancelOrder(ctx context.Context, workspace, id string) (Order, error) {
	return a.act(ctx, workspace, id, ActionCancel)
}

func (a *App) act(ctx context.Context, workspace, id string, action OrderAction) (Order, error) {
	o, err := a.GetOrder(ctx, workspace, id)
	if err != nil {
		return Order{}, err
	}
	done := map[OrderAction][]OrderStatus{
		ActionConfirm: {OrderConfirmed, OrderPartiallyRefunded, OrderRefunded},
		ActionCancel:  {OrderCancelled, OrderExpired},
	}[action]
	if slices.Contains(done, o.Status) {
		return o, nil
	}
	if o.Status == OrderPending || o.Status == OrderHeld {
		if o, err = a.store.SetOrderAction(ctx, workspace, id, action, a.clock()); err != nil {
			return o, internal(err)
		}
	}
	if (o.Status != OrderPending && o.Status != OrderHeld) || o.Action != action {
		if slices.Contains(done, o.Status) {
			return o, nil
		}
		return o, &Error{
			Kind: KindConflict, Code: CodeOrderNotHeld, Message: "the order is not held, or another action on it is in progress",
			Metadata: map[string]string{"order_id": o.ID, "status": string(o.Status), "pending_action": string(o.Action)},
		}
	}
	a.log.Info("order action", zap.String("order_id", o.ID), zap.String("action", string(action)))
	return a.settleOrder(ctx, o)
}

// RefundOrder gives back credits of a confirmed order: all that remains
// of it when credits is 0. The refund is recorded PENDING first (with the
// check that the order's credits not yet refunded cover it), then the
// order's entry is reversed with the key "checkout-refund:<refund id>",
// and only then is the refund REFUNDED and the order PARTIALLY_REFUNDED or
// REFUNDED. When the ledger does not answer, the refund stays PENDING and
// Reconcile finishes it. clientKey makes a retry return the same refund.
//
// The returned refund is set whenever one exists, also with an error; the
// order is the stored one after it.
func (a *App) RefundOrder(ctx context.Context, workspace, orderID string, credits int64, clientKey string) (Refund, Order, bool, error) {
	if credits < 0 {
		return Refund{}, Order{}, false, invalidf("credits", "must not be negative (0 or absent: all that remains)")
	}
	if clientKey != "" && !validKey(clientKey) {
		return Refund{}, Order{}, false, invalidf("Idempotency-Key", "must be 1-128 printable ASCII characters")
	}
	o, err := a.GetOrder(ctx, workspace, orderID)
	if err != nil {
		return Refund{}, Order{}, false, err
	}
	id := newID()
	r, existing, err := a.store.InsertRefund(ctx, Refund{
		ID: id, Workspace: workspace, OrderID: o.ID, Credits: credits, IdempotencyKey: RefundKey(id),
		ClientKey: clientKey, CreateTime: a.clock(),
	})
	switch {
	case errors.Is(err, errNotRefundable):
		return Refund{}, o, false, &Error{
			Kind: KindConflict, Code: CodeOrderNotConfirmed, Message: "only a confirmed order can be refunded",
			Metadata: map[string]string{"order_id": o.ID, "status": string(o.Status)},
		}
	case errors.Is(err, errRefundExceeds):
		return Refund{}, o, false, &Error{
			Kind: KindRefused, Code: CodeRefundExceedsOrder, Message: "the refund is more than what remains of the order",
			Metadata: map[string]string{"order_id": o.ID, "refundable": fmt.Sprint(r.Credits)},
		}
	case err != nil:
		return Refund{}, o, false, internal(err)
	}
	if existing && credits != 0 && r.Credits != credits {
		return r, o, true, &Error{
			Kind: KindConflict, Code: CodeKeyReused, Message: "this Idempotency-Key was used for another refund",
			Metadata: map[string]string{"refund_id": r.ID},
		}
	}
	if !existing {
		a.log.Info("refund created", zap.String("refund_id", r.ID), zap.String("order_id", o.ID), zap.Int64("credits", r.Credits))
	}
	r, err = a.settleRefund(ctx, r, o)
	if o2, gerr := a.store.GetOrder(ctx, workspace, o.ID); gerr == nil {
		o = o2
	}
	return r, o, existing, err
}

// settleRefund posts (or replays) a PENDING refund's reversal and records
// the ledger's answer.
func (a *App) settleRefund(ctx context.Context, r Refund, o Order) (Refund, error) {
	switch r.Status {
	case RefundRefunded:
		return r, nil
	case RefundFailed:
		return r, &Error{Kind: KindRefused, Code: r.FailureReason, Message: "the refund failed"}
	}
	res, err := a.ledger.ReverseTransaction(ctx, &pb.ReverseTransactionRequest{
		Workspace: r.Workspace, TransactionId: o.TransactionID, Amount: r.Credits,
		Reason: "refund of order " + o.ID, Reference: "order:" + o.ID + ":refund:" + r.ID, IdempotencyKey: r.IdempotencyKey,
		Metadata: map[string]string{"order_id": o.ID, "refund_id": r.ID},
	})
	if err != nil {
		le := fromLedger(err)
		if !ledgerclient.IsRefused(err) {
			a.log.Warn("refund not confirmed; left pending", zap.String("refund_id", r.ID), zap.Error(err))
			return r, le
		}
		failed, ferr := a.store.FinishRefund(ctx, r, RefundFailed, "", le.Code, a.clock())
		if ferr != nil {
			return r, internal(ferr)
		}
		a.log.Error("refund refused", zap.String("refund_id", r.ID), zap.String("order_id", o.ID), zap.String("reason", le.Code))
		return failed, le
	}
	done, err := a.store.FinishRefund(ctx, r, RefundRefunded, res.GetTransaction().GetId(), "", a.clock())
	if err != nil {
		return r, internal(err)
	}
	a.log.Info("order refunded", zap.String("refund_id", r.ID), zap.String("order_id", o.ID),
		zap.String("transaction_id", res.GetTransaction().GetId()), zap.Bool("replayed", res.GetReplayed()), zap.Int64("credits", r.Credits))
	return done, nil
}

// ListRefunds returns an order's refunds, oldest first.
func (a *App) ListRefunds(ctx context.Context, workspace, orderID string) ([]Refund, error) {
	out, err := a.store.ListRefunds(ctx, workspace, orderID)
	if err != nil {
		return nil, internal(err)
	}
	return out, nil
}

// GetOrder returns an order.
func (a *App) GetOrder(ctx context.Context, workspace, id string) (Order, error) {
	if err := checkIDs("workspace", workspace); err != nil {
		return Order{}, err
	}
	o, err := a.store.GetOrder(ctx, workspace, id)
	if errors.Is(err, errNoRows) {
		return Order{}, notFound("order", id)
	}
	if err != nil {
		return Order{}, internal(err)
	}
	return o, nil
}

// ListOrders returns an account's orders, newest first.
func (a *App) ListOrders(ctx context.Context, workspace, account string) ([]Order, error) {
	if err := checkIDs("workspace", workspace, "account", account); err != nil {
		return nil, err
	}
	out, err := a.store.ListOrders(ctx, workspace, account)
	if err != nil {
		return nil, internal(err)
	}
	return out, nil
}

// --- credit purchases ---

// PurchaseInput is a client's choice of package and payment method.
type PurchaseInput struct {
	PackageID        string        `json:"package_id"`
	Method           PaymentMethod `json:"payment_method"`
	PaymentReference string        `json:"payment_reference,omitempty"`
	Note             string        `json:"note,omitempty"`
	// SuccessURL and CancelURL (instant methods only, optional): where the
	// provider sends the buyer back after paying or giving up; absolute
	// http(s) URLs. Stripe replaces {CHECKOUT_SESSION_ID} in SuccessURL
	// with the session's id; the checkout adds nothing.
	SuccessURL string `json:"success_url,omitempty"`
	CancelURL  string `json:"cancel_url,omitempty"`
}

// StartPurchase starts buying a credit package with a method the workspace
// offers (else PAYMENT_METHOD_NOT_OFFERED, and nothing is recorded).
//
// STRIPE/PAYPAL: the checkout must have a provider for the method (else
// PAYMENT_PROVIDER_NOT_CONFIGURED, nothing recorded) and the package must be
// active. The purchase is recorded (AWAITING_PAYMENT), then the provider
// creates its payment page (a Stripe Checkout Session for the package's
// price) with the idempotency key PaymentStartKey, and the purchase is
// answered with it: checkout_url, where the browser goes to pay, and
// stripe_session_id. The provider's confirmation on the payment webhook
// credits it. When the provider fails or refuses, the purchase stays
// AWAITING_PAYMENT without a page and the error says so
// (PAYMENT_PROVIDER_UNAVAILABLE, PAYMENT_PROVIDER_REFUSED): the same call
// with the same client key asks the provider again for that purchase.
//
// BANK_TRANSFER/CRYPTO: the purchase is recorded (SUBMITTING) and a
// credit request is submitted to the ledger with the key
// "checkout-purchase:<id>" (PENDING_APPROVAL).
//
// The returned purchase is set whenever one exists, also with an error.
func (a *App) StartPurchase(ctx context.Context, workspace, account string, in PurchaseInput, clientKey string) (Purchase, bool, error) {
	if err := checkIDs("workspace", workspace, "account", account, "package_id", in.PackageID); err != nil {
		return Purchase{}, false, err
	}
	switch in.Method {
	case MethodStripe, MethodPayPal, MethodBankTransfer, MethodCrypto:
	default:
		return Purchase{}, false, invalidf("payment_method", "must be STRIPE, PAYPAL, BANK_TRANSFER or CRYPTO")
	}
	if err := a.offered(ctx, workspace, in.Method); err != nil {
		return Purchase{}, false, err
	}
	if len(in.PaymentReference) > 256 || len(in.Note) > 1024 {
		return Purchase{}, false, invalidf("payment_reference", "at most 256 characters (note: 1024)")
	}
	if clientKey != "" && !validKey(clientKey) {
		return Purchase{}, false, invalidf("Idempotency-Key", "must be 1-128 printable ASCII characters")
	}
	if err := checkReturnURL("success_url", in.SuccessURL); err != nil {
		return Purchase{}, false, err
	}
	if err := checkReturnURL("cancel_url", in.CancelURL); err != nil {
		return Purchase{}, false, err
	}
	status := PurchaseSubmitting
	var pkg CreditPackage
	if in.Method.instant() {
		if a.providers[in.Method] == nil {
			a.log.Warn("instant purchase refused: no payment provider", zap.String("method", string(in.Method)))
			return Purchase{}, false, providerNotConfigured(in.Method)
		}
		res, err := a.ledger.GetPackage(ctx, &pb.GetPackageRequest{Workspace: workspace, PackageId: in.PackageID})
		if err != nil {
			return Purchase{}, false, fromLedger(err)
		}
		cp := res.GetCreditPackage()
		if !cp.GetActive() {
			return Purchase{}, false, &Error{
				Kind: KindRefused, Code: ledgerclient.ReasonPackageInactive,
				Message: "the package is archived", Metadata: map[string]string{"package_id": in.PackageID},
			}
		}
		price := cp.GetPrice()
		pkg = CreditPackage{
			ID: in.PackageID, Name: cp.GetDisplayName(), Credits: cp.GetCredits(),
			Price: Money{CurrencyCode: price.GetCurrencyCode(), Units: price.GetUnits(), Nanos: price.GetNanos()},
		}
		status = PurchaseAwaitingPayment
	} else if in.SuccessURL != "" || in.CancelURL != "" {
		return Purchase{}, false, invalidf("success_url", "only a card or PayPal purchase returns from a payment page")
	}
	p, existing, err := a.store.InsertPurchase(ctx, Purchase{
		ID: newID(), Workspace: workspace, Account: account, PackageID: in.PackageID, Method: in.Method, Status: status,
		PaymentReference: in.PaymentReference, Note: in.Note, ClientKey: clientKey, CreateTime: a.clock(),
		SuccessURL: in.SuccessURL, CancelURL: in.CancelURL,
	})
	if err != nil {
		return Purchase{}, false, internal(err)
	}
	if existing && (p.PackageID != in.PackageID || p.Method != in.Method || p.SuccessURL != in.SuccessURL || p.CancelURL != in.CancelURL) {
		return p, true, &Error{
			Kind: KindConflict, Code: CodeKeyReused, Message: "this Idempotency-Key was used for another purchase",
			Metadata: map[string]string{"purchase_id": p.ID},
		}
	}
	a.events.Follow(workspace)
	if !existing {
		a.log.Info("purchase started", zap.String("purchase_id", p.ID), zap.String("method", string(p.Method)),
			zap.String("workspace", workspace), zap.String("account", account), zap.String("package_id", p.PackageID))
	}
	if in.Method.instant() {
		p, err = a.startPayment(ctx, p, pkg)
		return p, existing, err
	}
	p, err = a.advancePurchase(ctx, p)
	return p, existing, err
}

// startPayment has the provider create the payment page of an instant
// purchase that has none yet, and records it. A purchase that has one, or
// no longer awaits payment, is returned as it is. When the provider
// answered with an error, the purchase's next attempt takes a new
// idempotency key (the provider would replay that answer for the old
// one); when no answer came, the next attempt repeats the same key, and
// gets the page if the lost request created one.
func (a *App) startPayment(ctx context.Context, p Purchase, pkg CreditPackage) (Purchase, error) {
	if p.Status != PurchaseAwaitingPayment || p.CheckoutURL != "" {
		return p, nil
	}
	prov := a.providers[p.Method]
	if prov == nil {
		return p, providerNotConfigured(p.Method)
	}
	pageURL, ref, err := prov.StartPayment(ctx, p, pkg, ReturnURLs{SuccessURL: p.SuccessURL, CancelURL: p.CancelURL})
	if err != nil {
		var pe *ProviderError
		answered := errors.As(err, &pe) && pe.Answered
		a.log.Warn("payment page not created; the purchase waits for a retry", zap.String("purchase_id", p.ID),
			zap.String("method", string(p.Method)), zap.Int("attempt", p.PaymentAttempt), zap.Bool("provider_answered", answered), zap.Error(err))
		if answered {
			if nerr := a.store.NextPaymentAttempt(ctx, p.Workspace, p.ID, p.PaymentAttempt, a.clock()); nerr != nil {
				return p, internal(nerr)
			}
		}
		var ce *Error
		if !errors.As(err, &ce) {
			ce = &Error{Kind: KindUnavailable, Code: CodeProviderUnavailable, Message: "the payment provider did not create the payment page", cause: err}
		}
		if ce.Metadata == nil {
			ce.Metadata = map[string]string{}
		}
		ce.Metadata["purchase_id"] = p.ID
		return p, ce
	}
	out, err := a.store.SetPurchaseCheckout(ctx, p.Workspace, p.ID, pageURL, ref, a.clock())
	if err != nil {
		return p, internal(err)
	}
	a.log.Info("payment page created", zap.String("purchase_id", p.ID), zap.String("method", string(p.Method)),
		zap.String("provider_ref_sha256", fingerprint(ref)), zap.Int("attempt", p.PaymentAttempt))
	return out, nil
}

// PaymentMethods returns the payment methods the workspace offers, read
// from the ledger's settings each time (the agency may change them at any
// moment), in the ledger's order.
func (a *App) PaymentMethods(ctx context.Context, workspace string) ([]PaymentMethod, error) {
	if err := checkIDs("workspace", workspace); err != nil {
		return nil, err
	}
	res, err := a.ledger.GetSettings(ctx, &pb.GetSettingsRequest{Workspace: workspace})
	if err != nil {
		return nil, fromLedger(err)
	}
	out := []PaymentMethod{}
	for _, m := range res.GetSettings().GetPaymentMethods() {
		if pm, ok := checkoutMethod(m); ok {
			out = append(out, pm)
		}
	}
	return out, nil
}

// offered refuses, with PAYMENT_METHOD_NOT_OFFERED, a method the workspace
// does not offer. For BANK_TRANSFER and CRYPTO the ledger's SubmitRequest
// checks again against the settings of its own write, so that a change
// in between is not missed.
func (a *App) offered(ctx context.Context, workspace string, m PaymentMethod) error {
	methods, err := a.PaymentMethods(ctx, workspace)
	if err != nil {
		return err
	}
	if slices.Contains(methods, m) {
		return nil
	}
	return &Error{
		Kind: KindRefused, Code: ledgerclient.ReasonPaymentMethodNotOffered,
		Message:  "the workspace does not offer " + string(m) + " as a payment method",
		Metadata: map[string]string{"payment_method": string(m)},
	}
}

// CancelPurchase withdraws a manual purchase waiting for the agency: its
// credit request is cancelled on the ledger (key
// "checkout-purchase:<id>:cancel") and the purchase is CANCELLED. A
// purchase already cancelled is returned as it is; any other that no
// longer waits (credited, rejected, failed, or a card purchase, which its
// provider settles) is PURCHASE_NOT_PENDING.
func (a *App) CancelPurchase(ctx context.Context, workspace, id string) (Purchase, error) {
	p, err := a.storedPurchase(ctx, workspace, id)
	if err != nil {
		return Purchase{}, err
	}
	if p.Status == PurchaseSubmitting {
		// Its request must exist before it can be withdrawn.
		if p, err = a.advancePurchase(ctx, p); err != nil {
			return p, err
		}
	}
	switch p.Status {
	case PurchaseCancelled:
		return p, nil
	case PurchasePendingApproval:
	default:
		return p, &Error{
			Kind: KindConflict, Code: CodePurchaseNotPending, Message: "only a purchase waiting for the agency's approval can be cancelled",
			Metadata: map[string]string{"purchase_id": p.ID, "status": string(p.Status)},
		}
	}
	res, err := a.ledger.CancelRequest(ctx, &pb.CancelRequestRequest{
		Workspace: p.Workspace, RequestId: p.RequestID, IdempotencyKey: PurchaseKey(p.ID) + ":cancel",
		Reason: "cancelled by the client",
	})
	if errors.Is(err, ledgerclient.ErrRequestAlreadyDecided) {
		// Decided meanwhile: record the decision, and say so.
		if p, err = a.refreshPurchase(ctx, p); err != nil {
			return p, err
		}
		if p.Status == PurchaseCancelled {
			return p, nil
		}
		return p, &Error{
			Kind: KindConflict, Code: CodePurchaseNotPending, Message: "the agency decided the purchase first",
			Metadata: map[string]string{"purchase_id": p.ID, "status": string(p.Status)},
		}
	}
	if err != nil {
		return p, fromLedger(err)
	}
	out, err := a.applyDecision(ctx, p, res.GetRequest(), true)
	if err != nil {
		return p, err
	}
	a.log.Info("purchase cancelled", zap.String("purchase_id", p.ID), zap.Bool("replayed", res.GetReplayed()))
	return out, nil
}

// advancePurchase moves a manual purchase along: submits its request when
// SUBMITTING, reads the agency's decision when PENDING_APPROVAL, unless
// the workspace's events are followed (the decision's event moves it).
func (a *App) advancePurchase(ctx context.Context, p Purchase) (Purchase, error) {
	switch p.Status {
	case PurchaseSubmitting:
		res, err := a.ledger.SubmitRequest(ctx, &pb.SubmitRequestRequest{
			Workspace: p.Workspace, Account: p.Account, PackageId: p.PackageID, PaymentMethod: ledgerMethod(p.Method),
			PaymentReference: p.PaymentReference, Note: p.Note, IdempotencyKey: PurchaseKey(p.ID),
			Metadata: map[string]string{"purchase_id": p.ID},
		})
		if err != nil {
			le := fromLedger(err)
			if !ledgerclient.IsRefused(err) {
				a.log.Warn("credit request not confirmed; left submitting", zap.String("purchase_id", p.ID), zap.Error(err))
				return p, le
			}
			failed, ferr := a.store.UpdatePurchase(ctx, p.Workspace, p.ID, []PurchaseStatus{PurchaseSubmitting},
				purchaseUpdate{Status: PurchaseFailed, FailureReason: le.Code}, a.clock())
			if ferr != nil {
				return p, internal(ferr)
			}
			return failed, le
		}
		r := res.GetRequest()
		p, err = a.store.UpdatePurchase(ctx, p.Workspace, p.ID, []PurchaseStatus{PurchaseSubmitting},
			purchaseUpdate{Status: PurchasePendingApproval, RequestID: r.GetId(), Credits: r.GetAmount()}, a.clock())
		if err != nil {
			return p, internal(err)
		}
		if r.GetStatus() == pb.RequestStatus_REQUEST_STATUS_PENDING {
			return p, nil
		}
		return a.applyDecision(ctx, p, r, false)
	case PurchasePendingApproval:
		if a.events.Following(p.Workspace) {
			return p, nil
		}
		res, err := a.ledger.GetRequest(ctx, &pb.GetRequestRequest{Workspace: p.Workspace, RequestId: p.RequestID})
		if err != nil {
			// The stored state is still true, only possibly stale.
			a.log.Warn("credit request status unavailable", zap.String("purchase_id", p.ID), zap.Error(err))
			return p, nil
		}
		return a.applyDecision(ctx, p, res.GetRequest(), false)
	default:
		return p, nil
	}
}

// applyDecision records the agency's decision on a manual purchase, or
// its client's cancellation (cancelled: learnt from a request.cancelled
// event; the API has no CANCELLED request status yet, a future one is
// recognised by its name) as REJECTED with the reason CANCELLED. A
// request still pending leaves the purchase as it is.
func (a *App) applyDecision(ctx context.Context, p Purchase, r *pb.CreditPurchaseRequest, cancelled bool) (Purchase, error) {
	var u purchaseUpdate
	switch {
	case r.GetStatus() == pb.RequestStatus_REQUEST_STATUS_ACCEPTED:
		u = purchaseUpdate{Status: PurchaseCredited, TransactionID: r.GetTransactionId(), Credits: r.GetAmount()}
	case r.GetStatus() == pb.RequestStatus_REQUEST_STATUS_REJECTED:
		u = purchaseUpdate{Status: PurchaseRejected, FailureReason: r.GetDecisionReason()}
		if u.FailureReason == "" {
			u.FailureReason = "REJECTED"
		}
	case cancelled || r.GetStatus() == pb.RequestStatus_REQUEST_STATUS_CANCELLED:
		u = purchaseUpdate{Status: PurchaseCancelled, FailureReason: r.GetDecisionReason()}
		if u.FailureReason == "" {
			u.FailureReason = "CANCELLED"
		}
	default:
		return p, nil
	}
	out, err := a.store.UpdatePurchase(ctx, p.Workspace, p.ID, []PurchaseStatus{PurchasePendingApproval}, u, a.clock())
	if err != nil {
		return p, internal(err)
	}
	a.log.Info("purchase decided", zap.String("purchase_id", p.ID), zap.String("status", string(out.Status)))
	return out, nil
}

// checkoutMethod is the checkout's name of a ledger payment method.
func checkoutMethod(m pb.PaymentMethod) (PaymentMethod, bool) {
	switch m {
	case pb.PaymentMethod_PAYMENT_METHOD_STRIPE:
		return MethodStripe, true
	case pb.PaymentMethod_PAYMENT_METHOD_PAYPAL:
		return MethodPayPal, true
	case pb.PaymentMethod_PAYMENT_METHOD_BANK_TRANSFER:
		return MethodBankTransfer, true
	case pb.PaymentMethod_PAYMENT_METHOD_CRYPTO:
		return MethodCrypto, true
	default:
		return "", false
	}
}

func ledgerMethod(m PaymentMethod) pb.PaymentMethod {
	if m == MethodCrypto {
		return pb.PaymentMethod_PAYMENT_METHOD_CRYPTO
	}
	return pb.PaymentMethod_PAYMENT_METHOD_BANK_TRANSFER
}

// GetPurchase returns a purchase, first refreshing a manual one from the
// ledger (a pending request may have been decided meanwhile) when the
// workspace's events are not being followed.
func (a *App) GetPurchase(ctx context.Context, workspace, id string) (Purchase, error) {
	p, err := a.storedPurchase(ctx, workspace, id)
	if err != nil {
		return Purchase{}, err
	}
	return a.refreshPurchase(ctx, p)
}

// storedPurchase reads a purchase as stored, without asking the ledger.
func (a *App) storedPurchase(ctx context.Context, workspace, id string) (Purchase, error) {
	if err := checkIDs("workspace", workspace); err != nil {
		return Purchase{}, err
	}
	p, err := a.store.GetPurchase(ctx, workspace, id)
	if errors.Is(err, errNoRows) {
		return Purchase{}, notFound("purchase", id)
	}
	if err != nil {
		return Purchase{}, internal(err)
	}
	return p, nil
}

// refreshPurchase brings a stored purchase up to date with the ledger.
func (a *App) refreshPurchase(ctx context.Context, p Purchase) (Purchase, error) {
	out, err := a.advancePurchase(ctx, p)
	var ce *Error
	if errors.As(err, &ce) && ce.Kind != KindInternal {
		// The stored state is the answer: still SUBMITTING when the
		// ledger did not answer, FAILED (with the reason) when it refused.
		return out, nil
	}
	return out, err
}

// --- payment webhook ---

// PaymentConfirmation is what a payment provider delivers when a card or
// PayPal payment succeeded.
type PaymentConfirmation struct {
	Provider   string `json:"provider"`   // "stripe" or "paypal"
	PaymentID  string `json:"payment_id"` // the provider's id, e.g. "pi_3Nq…"
	Workspace  string `json:"workspace"`
	Account    string `json:"account"`
	PackageID  string `json:"package_id"`
	PurchaseID string `json:"purchase_id,omitempty"` // the checkout's purchase, when the provider echoes it
}

// ConfirmPayment handles a payment confirmation, however often it is
// delivered: the delivery is stored, then the ledger's Credit is called
// with the package and the key "<provider>:<payment id>" (also the
// reference), so the credits are posted exactly once. A confirmed payment is
// credited even when the workspace has credit payments disabled.
func (a *App) ConfirmPayment(ctx context.Context, in PaymentConfirmation) (Payment, error) {
	in.Provider = strings.ToLower(strings.TrimSpace(in.Provider))
	if in.Provider != "stripe" && in.Provider != "paypal" {
		return Payment{}, invalidf("provider", `must be "stripe" or "paypal"`)
	}
	if !validKey(in.PaymentID) || len(in.PaymentID) > 200 {
		return Payment{}, invalidf("payment_id", "must be 1-200 printable ASCII characters")
	}
	if err := checkIDs("workspace", in.Workspace, "account", in.Account, "package_id", in.PackageID); err != nil {
		return Payment{}, err
	}
	if in.PurchaseID != "" && len(in.PurchaseID) > 64 {
		return Payment{}, invalidf("purchase_id", "at most 64 characters")
	}
	return a.confirm(ctx, Payment{
		Provider: in.Provider, PaymentID: in.PaymentID, Workspace: in.Workspace, Account: in.Account,
		PackageID: in.PackageID, PurchaseID: in.PurchaseID,
	})
}

// confirm stores a delivery of a checked confirmation, then credits it.
func (a *App) confirm(ctx context.Context, in Payment) (Payment, error) {
	p, err := a.store.RecordDelivery(ctx, in, a.clock())
	if err != nil {
		return Payment{}, internal(err)
	}
	keyHash := fingerprint(PaymentKey(p.Provider, p.PaymentID))
	if p.Workspace != in.Workspace || p.Account != in.Account || p.PackageID != in.PackageID {
		a.log.Error("payment redelivered with other fields", zap.String("provider", p.Provider), zap.String("payment_key_sha256", keyHash))
		return p, &Error{
			Kind: KindConflict, Code: CodePaymentMismatch,
			Message: "this payment id was already delivered for another workspace, account or package",
		}
	}
	a.log.Info("payment confirmation received", zap.String("provider", p.Provider), zap.String("payment_key_sha256", keyHash),
		zap.Int("deliveries", p.Deliveries), zap.String("status", string(p.Status)))
	return a.creditPayment(ctx, p)
}

// creditPayment posts (or replays) the credit of a stored payment.
func (a *App) creditPayment(ctx context.Context, p Payment) (Payment, error) {
	if p.Status == PaymentCredited {
		if p.PurchaseID != "" {
			a.linkPurchase(ctx, p) // in case a crash came between the two writes
		}
		return p, nil
	}
	key := PaymentKey(p.Provider, p.PaymentID)
	res, err := a.ledger.Credit(ctx, &pb.CreditRequest{
		Workspace: p.Workspace, Account: p.Account, PackageId: p.PackageID,
		Kind: pb.TransactionKind_TRANSACTION_KIND_PURCHASE, Reference: key, IdempotencyKey: key,
		Metadata: map[string]string{"provider": p.Provider, "payment_id": p.PaymentID},
	})
	if err != nil {
		le := fromLedger(err)
		if !ledgerclient.IsRefused(err) {
			a.log.Warn("payment credit not confirmed; left received", zap.String("payment_key_sha256", fingerprint(key)), zap.Error(err))
			return p, le
		}
		// Nothing was posted. The payment stays on record as FAILED for
		// the operator; a redelivery tries again.
		a.log.Error("payment credit refused", zap.String("payment_key_sha256", fingerprint(key)), zap.String("reason", le.Code))
		failed, ferr := a.store.FinishPayment(ctx, p.Provider, p.PaymentID, PaymentFailed, 0, "", le.Code, a.clock())
		if ferr != nil {
			return p, internal(ferr)
		}
		return failed, le
	}
	t := res.GetTransaction()
	done, err := a.store.FinishPayment(ctx, p.Provider, p.PaymentID, PaymentCredited, t.GetAmount(), t.GetId(), "", a.clock())
	if err != nil {
		return p, internal(err)
	}
	a.log.Info("payment credited", zap.String("payment_key_sha256", fingerprint(key)), zap.String("transaction_id", t.GetId()),
		zap.Bool("replayed", res.GetReplayed()), zap.Int64("credits", t.GetAmount()))
	if p.PurchaseID != "" {
		a.linkPurchase(ctx, done)
	}
	return done, nil
}

// linkPurchase marks the card purchase the payment paid for as CREDITED.
func (a *App) linkPurchase(ctx context.Context, p Payment) {
	pur, err := a.store.GetPurchase(ctx, p.Workspace, p.PurchaseID)
	if err != nil {
		a.log.Warn("payment names an unknown purchase", zap.String("purchase_id", p.PurchaseID), zap.Error(err))
		return
	}
	if pur.Account != p.Account || pur.PackageID != p.PackageID || strings.ToLower(string(pur.Method)) != p.Provider {
		a.log.Warn("payment does not match its purchase; not linked", zap.String("purchase_id", p.PurchaseID))
		return
	}
	if _, err := a.store.UpdatePurchase(ctx, p.Workspace, p.PurchaseID, []PurchaseStatus{PurchaseAwaitingPayment},
		purchaseUpdate{Status: PurchaseCredited, TransactionID: p.TransactionID, Credits: p.Credits, ProviderPaymentID: p.PaymentID},
		a.clock()); err != nil {
		a.log.Error("link purchase", zap.String("purchase_id", p.PurchaseID), zap.Error(err))
	}
}

// --- reconciliation ---

// ReconcileReport counts what a Reconcile pass found and settled.
type ReconcileReport struct {
	// Orders waiting on the ledger (PENDING, or HELD with a confirm or
	// cancel in flight), and those no longer waiting after the pass.
	Orders, OrdersSettled int
	// OrdersExpired: HELD orders whose hold was found expired.
	OrdersExpired             int
	Refunds, RefundsSettled   int
	Payments, PaymentsSettled int
	Purchases                 int
}

// Reconcile settles everything a crash or an unreachable ledger left
// unfinished, by replaying the same idempotency keys: PENDING orders (the
// hold, or the debit of an order placed before holds), HELD orders with a
// confirm or cancel in flight (the capture or void), PENDING refunds (the
// reversal), RECEIVED payments (credit), SUBMITTING purchases (credit
// request) and PENDING_APPROVAL purchases (read the decision). A HELD order
// whose hold's expire time passed is asked about its hold: EXPIRED when
// the ledger released it. Those two reads are skipped in a workspace whose
// events are being followed (FollowEvents): the decision and the expiry
// arrive as events, and asking is only the fallback. It runs at start and
// periodically; each item is independent, and an item the ledger still
// does not confirm is left for the next pass.
func (a *App) Reconcile(ctx context.Context) (ReconcileReport, error) {
	var rep ReconcileReport
	orders, err := a.store.OpenOrders(ctx, a.clock())
	if err != nil {
		return rep, err
	}
	for _, o := range orders {
		if !inFlight(o) { // HELD, its hold due to expire
			if a.events.Following(o.Workspace) {
				continue // hold.expired will tell
			}
			if out, _ := a.holdEnded(ctx, o); out.Status == OrderExpired {
				rep.OrdersExpired++
			}
			continue
		}
		rep.Orders++
		if out, _ := a.settleOrder(ctx, o); !inFlight(out) {
			rep.OrdersSettled++
		}
	}
	refunds, err := a.store.PendingRefunds(ctx)
	if err != nil {
		return rep, err
	}
	for _, r := range refunds {
		rep.Refunds++
		o, err := a.store.GetOrder(ctx, r.Workspace, r.OrderID)
		if err != nil {
			return rep, err
		}
		if out, _ := a.settleRefund(ctx, r, o); out.Status != RefundPending {
			rep.RefundsSettled++
		}
	}
	payments, err := a.store.ReceivedPayments(ctx)
	if err != nil {
		return rep, err
	}
	for _, p := range payments {
		rep.Payments++
		if out, _ := a.creditPayment(ctx, p); out.Status != PaymentReceived {
			rep.PaymentsSettled++
		}
	}
	purchases, err := a.store.OpenPurchases(ctx)
	if err != nil {
		return rep, err
	}
	for _, p := range purchases {
		if p.Status == PurchasePendingApproval && a.events.Following(p.Workspace) {
			continue // request.decided will tell
		}
		rep.Purchases++
		_, _ = a.advancePurchase(ctx, p)
	}
	if rep.Orders+rep.OrdersExpired+rep.Refunds+rep.Payments > 0 {
		a.log.Info("reconciled", zap.Int("orders", rep.Orders), zap.Int("orders_settled", rep.OrdersSettled),
			zap.Int("orders_expired", rep.OrdersExpired), zap.Int("refunds", rep.Refunds), zap.Int("refunds_settled", rep.RefundsSettled),
			zap.Int("payments", rep.Payments), zap.Int("payments_settled", rep.PaymentsSettled), zap.Int("purchases", rep.Purchases))
	}
	return rep, ctx.Err()
}

package grpcserver

import (
	"fmt"
	"maps"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/type/money"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledger"
)

// Converters between the generated API types and the domain. Generated
// types never enter internal/ledger: every request is turned into a domain
// input here and every domain result back into a response.
//
// Enum numbers that the API does not define (a client built against a newer
// proto, or a hand-crafted message) are refused as INVALID_ARGUMENT on the
// field, never passed on as an unknown domain value.

// fieldErrors collects conversion problems and becomes one INVALID error,
// shaped exactly like the domain's own validation errors.
type fieldErrors []ledger.FieldViolation

func (f *fieldErrors) add(field, format string, args ...any) {
	*f = append(*f, ledger.FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)})
}

func (f fieldErrors) err() error {
	if len(f) == 0 {
		return nil
	}
	msgs := make([]string, 0, len(f))
	for _, v := range f {
		msgs = append(msgs, v.Field+": "+v.Description)
	}
	return &ledger.Error{
		Code:       ledger.CodeInvalid,
		Reason:     ledger.ReasonInvalidArgument,
		Message:    "invalid request: " + strings.Join(msgs, "; "),
		Violations: f,
	}
}

// ---------------------------------------------------------------------------
// Enums

func fromProtoTxType(f *fieldErrors, field string, t pb.TransactionType) ledger.TxType {
	switch t {
	case pb.TransactionType_TRANSACTION_TYPE_UNSPECIFIED:
		return ledger.TypeUnspecified
	case pb.TransactionType_TRANSACTION_TYPE_IN:
		return ledger.TypeIn
	case pb.TransactionType_TRANSACTION_TYPE_OUT:
		return ledger.TypeOut
	}
	f.add(field, "unknown transaction type %d", int32(t))
	return ledger.TypeUnspecified
}

func toProtoTxType(t ledger.TxType) pb.TransactionType {
	switch t {
	case ledger.TypeIn:
		return pb.TransactionType_TRANSACTION_TYPE_IN
	case ledger.TypeOut:
		return pb.TransactionType_TRANSACTION_TYPE_OUT
	default:
		return pb.TransactionType_TRANSACTION_TYPE_UNSPECIFIED
	}
}

func fromProtoKind(f *fieldErrors, field string, k pb.TransactionKind) ledger.Kind {
	switch k {
	case pb.TransactionKind_TRANSACTION_KIND_UNSPECIFIED:
		return ledger.KindUnspecified
	case pb.TransactionKind_TRANSACTION_KIND_PURCHASE:
		return ledger.KindPurchase
	case pb.TransactionKind_TRANSACTION_KIND_REQUEST_APPROVED:
		return ledger.KindRequestApproved
	case pb.TransactionKind_TRANSACTION_KIND_SERVICE_PURCHASE:
		return ledger.KindServicePurchase
	case pb.TransactionKind_TRANSACTION_KIND_INVOICE_PAYMENT:
		return ledger.KindInvoicePayment
	case pb.TransactionKind_TRANSACTION_KIND_REFUND:
		return ledger.KindRefund
	case pb.TransactionKind_TRANSACTION_KIND_ADJUSTMENT:
		return ledger.KindAdjustment
	case pb.TransactionKind_TRANSACTION_KIND_REVERSAL:
		return ledger.KindReversal
	case pb.TransactionKind_TRANSACTION_KIND_EXPIRY:
		return ledger.KindExpiry
	}
	f.add(field, "unknown transaction kind %d", int32(k))
	return ledger.KindUnspecified
}

func toProtoKind(k ledger.Kind) pb.TransactionKind {
	switch k {
	case ledger.KindPurchase:
		return pb.TransactionKind_TRANSACTION_KIND_PURCHASE
	case ledger.KindRequestApproved:
		return pb.TransactionKind_TRANSACTION_KIND_REQUEST_APPROVED
	case ledger.KindServicePurchase:
		return pb.TransactionKind_TRANSACTION_KIND_SERVICE_PURCHASE
	case ledger.KindInvoicePayment:
		return pb.TransactionKind_TRANSACTION_KIND_INVOICE_PAYMENT
	case ledger.KindRefund:
		return pb.TransactionKind_TRANSACTION_KIND_REFUND
	case ledger.KindAdjustment:
		return pb.TransactionKind_TRANSACTION_KIND_ADJUSTMENT
	case ledger.KindReversal:
		return pb.TransactionKind_TRANSACTION_KIND_REVERSAL
	case ledger.KindExpiry:
		return pb.TransactionKind_TRANSACTION_KIND_EXPIRY
	default:
		return pb.TransactionKind_TRANSACTION_KIND_UNSPECIFIED
	}
}

func fromProtoPaymentMethod(f *fieldErrors, field string, m pb.PaymentMethod) ledger.PaymentMethod {
	switch m {
	case pb.PaymentMethod_PAYMENT_METHOD_UNSPECIFIED:
		return ledger.MethodUnspecified
	case pb.PaymentMethod_PAYMENT_METHOD_BANK_TRANSFER:
		return ledger.MethodBankTransfer
	case pb.PaymentMethod_PAYMENT_METHOD_CRYPTO:
		return ledger.MethodCrypto
	case pb.PaymentMethod_PAYMENT_METHOD_STRIPE:
		return ledger.MethodStripe
	case pb.PaymentMethod_PAYMENT_METHOD_PAYPAL:
		return ledger.MethodPayPal
	}
	f.add(field, "unknown payment method %d", int32(m))
	return ledger.MethodUnspecified
}

func toProtoPaymentMethod(m ledger.PaymentMethod) pb.PaymentMethod {
	switch m {
	case ledger.MethodBankTransfer:
		return pb.PaymentMethod_PAYMENT_METHOD_BANK_TRANSFER
	case ledger.MethodCrypto:
		return pb.PaymentMethod_PAYMENT_METHOD_CRYPTO
	case ledger.MethodStripe:
		return pb.PaymentMethod_PAYMENT_METHOD_STRIPE
	case ledger.MethodPayPal:
		return pb.PaymentMethod_PAYMENT_METHOD_PAYPAL
	default:
		return pb.PaymentMethod_PAYMENT_METHOD_UNSPECIFIED
	}
}

// fromProtoPaymentMethods converts a list of methods; an unknown number is
// a violation of the list (the domain refuses unspecified and repeated
// values). nil stays nil.
func fromProtoPaymentMethods(f *fieldErrors, field string, ms []pb.PaymentMethod) []ledger.PaymentMethod {
	if ms == nil {
		return nil
	}
	out := make([]ledger.PaymentMethod, 0, len(ms))
	for _, m := range ms {
		out = append(out, fromProtoPaymentMethod(f, field, m))
	}
	return out
}

func fromProtoRequestStatus(f *fieldErrors, field string, s pb.RequestStatus) ledger.RequestStatus {
	switch s {
	case pb.RequestStatus_REQUEST_STATUS_UNSPECIFIED:
		return ledger.StatusUnspecified
	case pb.RequestStatus_REQUEST_STATUS_PENDING:
		return ledger.StatusPending
	case pb.RequestStatus_REQUEST_STATUS_ACCEPTED:
		return ledger.StatusAccepted
	case pb.RequestStatus_REQUEST_STATUS_REJECTED:
		return ledger.StatusRejected
	case pb.RequestStatus_REQUEST_STATUS_CANCELLED:
		return ledger.StatusCancelled
	}
	f.add(field, "unknown request status %d", int32(s))
	return ledger.StatusUnspecified
}

func toProtoRequestStatus(s ledger.RequestStatus) pb.RequestStatus {
	switch s {
	case ledger.StatusPending:
		return pb.RequestStatus_REQUEST_STATUS_PENDING
	case ledger.StatusAccepted:
		return pb.RequestStatus_REQUEST_STATUS_ACCEPTED
	case ledger.StatusRejected:
		return pb.RequestStatus_REQUEST_STATUS_REJECTED
	case ledger.StatusCancelled:
		return pb.RequestStatus_REQUEST_STATUS_CANCELLED
	default:
		return pb.RequestStatus_REQUEST_STATUS_UNSPECIFIED
	}
}

func fromProtoHoldStatus(f *fieldErrors, field string, s pb.HoldStatus) ledger.HoldStatus {
	switch s {
	case pb.HoldStatus_HOLD_STATUS_UNSPECIFIED:
		return ledger.HoldUnspecified
	case pb.HoldStatus_HOLD_STATUS_ACTIVE:
		return ledger.HoldActive
	case pb.HoldStatus_HOLD_STATUS_CAPTURED:
		return ledger.HoldCaptured
	case pb.HoldStatus_HOLD_STATUS_VOIDED:
		return ledger.HoldVoided
	case pb.HoldStatus_HOLD_STATUS_EXPIRED:
		return ledger.HoldExpired
	}
	f.add(field, "unknown hold status %d", int32(s))
	return ledger.HoldUnspecified
}

func toProtoHoldStatus(s ledger.HoldStatus) pb.HoldStatus {
	switch s {
	case ledger.HoldActive:
		return pb.HoldStatus_HOLD_STATUS_ACTIVE
	case ledger.HoldCaptured:
		return pb.HoldStatus_HOLD_STATUS_CAPTURED
	case ledger.HoldVoided:
		return pb.HoldStatus_HOLD_STATUS_VOIDED
	case ledger.HoldExpired:
		return pb.HoldStatus_HOLD_STATUS_EXPIRED
	default:
		return pb.HoldStatus_HOLD_STATUS_UNSPECIFIED
	}
}

func fromProtoDecision(f *fieldErrors, field string, d pb.Decision) ledger.Decision {
	switch d {
	case pb.Decision_DECISION_UNSPECIFIED:
		return ledger.DecisionUnspecified
	case pb.Decision_DECISION_ACCEPT:
		return ledger.DecisionAccept
	case pb.Decision_DECISION_REJECT:
		return ledger.DecisionReject
	}
	f.add(field, "unknown decision %d", int32(d))
	return ledger.DecisionUnspecified
}

// ---------------------------------------------------------------------------
// Scalars

// fromProtoTime turns an optional timestamp into a time; unset is the zero
// time, which the domain reads as "no bound".
func fromProtoTime(f *fieldErrors, field string, ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	if err := ts.CheckValid(); err != nil {
		f.add(field, "is not a valid timestamp")
		return time.Time{}
	}
	return ts.AsTime()
}

// toProtoTime renders a time; the zero time (never set) is unset.
func toProtoTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// fromProtoDuration turns an optional duration into a time.Duration; unset
// is 0, which the domain reads as "none". A duration too long for
// time.Duration is refused on the field rather than clamped.
func fromProtoDuration(f *fieldErrors, field string, d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	if err := d.CheckValid(); err != nil {
		f.add(field, "is not a valid duration")
		return 0
	}
	// AsDuration saturates at ±292 years; such a value is out of every
	// bound the domain accepts, and saturating keeps it so.
	return d.AsDuration()
}

// toProtoDuration renders a duration; zero (none) is unset.
func toProtoDuration(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

// fromProtoMoney turns google.type.Money into a domain amount. An unset
// price becomes the zero Money, which the domain refuses with a field
// violation naming the price.
func fromProtoMoney(m *money.Money) ledger.Money {
	if m == nil {
		return ledger.Money{}
	}
	return ledger.Money{Currency: m.GetCurrencyCode(), Units: m.GetUnits(), Nanos: m.GetNanos()}
}

func toProtoMoney(m ledger.Money) *money.Money {
	if m == (ledger.Money{}) {
		return nil
	}
	return &money.Money{CurrencyCode: m.Currency, Units: m.Units, Nanos: m.Nanos}
}

// fromProtoFieldMask returns the mask's paths; the domain validates them.
func fromProtoFieldMask(m *fieldmaskpb.FieldMask) []string {
	if m == nil {
		return nil
	}
	return m.GetPaths()
}

// copyMetadata copies a metadata map across the boundary, both ways, so
// that the domain and a generated message never share storage; an empty map
// becomes nil (the domain's "no metadata").
func copyMetadata(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

// ---------------------------------------------------------------------------
// Requests

func fromProtoCredit(r *pb.CreditRequest) (ledger.CreditInput, error) {
	var f fieldErrors
	in := ledger.CreditInput{
		Workspace:       r.GetWorkspace(),
		Account:         r.GetAccount(),
		Amount:          r.GetAmount(),
		PackageID:       r.GetPackageId(),
		Kind:            fromProtoKind(&f, "kind", r.GetKind()),
		Reference:       r.GetReference(),
		IdempotencyKey:  r.GetIdempotencyKey(),
		ExpectedVersion: optionalInt64(r.ExpectedVersion),
		Metadata:        copyMetadata(r.GetMetadata()),
		ExpireTime:      fromProtoTime(&f, "expire_time", r.GetExpireTime()),
	}
	return in, f.err()
}

func fromProtoDebit(r *pb.DebitRequest) (ledger.DebitInput, error) {
	var f fieldErrors
	in := ledger.DebitInput{
		Workspace:       r.GetWorkspace(),
		Account:         r.GetAccount(),
		Amount:          r.GetAmount(),
		Kind:            fromProtoKind(&f, "kind", r.GetKind()),
		Reference:       r.GetReference(),
		IdempotencyKey:  r.GetIdempotencyKey(),
		ExpectedVersion: optionalInt64(r.ExpectedVersion),
		Metadata:        copyMetadata(r.GetMetadata()),
	}
	return in, f.err()
}

// optionalInt64 copies a proto3 optional so the domain holds its own pointer.
func optionalInt64(p *int64) *int64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func fromProtoListTransactions(r *pb.ListTransactionsRequest) (ledger.ListTransactionsInput, error) {
	var f fieldErrors
	in := ledger.ListTransactionsInput{
		Workspace:  r.GetWorkspace(),
		Account:    r.GetAccount(),
		PageSize:   r.GetPageSize(),
		PageToken:  r.GetPageToken(),
		Type:       fromProtoTxType(&f, "type", r.GetType()),
		Kind:       fromProtoKind(&f, "kind", r.GetKind()),
		Start:      fromProtoTime(&f, "start_time", r.GetStartTime()),
		End:        fromProtoTime(&f, "end_time", r.GetEndTime()),
		MinVersion: r.GetMinVersion(),
	}
	return in, f.err()
}

func fromProtoSubmit(r *pb.SubmitRequestRequest) (ledger.SubmitInput, error) {
	var f fieldErrors
	in := ledger.SubmitInput{
		Workspace:        r.GetWorkspace(),
		Account:          r.GetAccount(),
		Amount:           r.GetAmount(),
		PackageID:        r.GetPackageId(),
		PaymentMethod:    fromProtoPaymentMethod(&f, "payment_method", r.GetPaymentMethod()),
		PaymentReference: r.GetPaymentReference(),
		Note:             r.GetNote(),
		IdempotencyKey:   r.GetIdempotencyKey(),
		Metadata:         copyMetadata(r.GetMetadata()),
	}
	return in, f.err()
}

func fromProtoDecide(r *pb.DecideRequestRequest) (ledger.DecideInput, error) {
	var f fieldErrors
	in := ledger.DecideInput{
		Workspace:      r.GetWorkspace(),
		RequestID:      r.GetRequestId(),
		Decision:       fromProtoDecision(&f, "decision", r.GetDecision()),
		Reason:         r.GetReason(),
		DecidedBy:      r.GetDecidedBy(),
		IdempotencyKey: r.GetIdempotencyKey(),
	}
	return in, f.err()
}

// fromProtoCancel reads a cancellation; the transport adds who cancels
// and, for a client's token, the only account it may touch.
func fromProtoCancel(r *pb.CancelRequestRequest) ledger.CancelInput {
	return ledger.CancelInput{
		Workspace:      r.GetWorkspace(),
		RequestID:      r.GetRequestId(),
		Reason:         r.GetReason(),
		IdempotencyKey: r.GetIdempotencyKey(),
	}
}

// fromProtoSettings reads the caller-settable settings; output-only fields
// (workspace, update_time) are ignored.
func fromProtoSettings(s *pb.Settings) (ledger.Settings, error) {
	var f fieldErrors
	in := ledger.Settings{
		CreditPaymentsEnabled:   s.GetCreditPaymentsEnabled(),
		RequireDistinctApprover: s.GetRequireDistinctApprover(),
		PaymentMethods:          fromProtoPaymentMethods(&f, "settings.payment_methods", s.GetPaymentMethods()),
		LowBalanceThreshold:     s.GetLowBalanceThreshold(),
	}
	return in, f.err()
}

func fromProtoListRequests(r *pb.ListRequestsRequest) (ledger.ListRequestsInput, error) {
	var f fieldErrors
	in := ledger.ListRequestsInput{
		Workspace: r.GetWorkspace(),
		Account:   r.GetAccount(),
		Status:    fromProtoRequestStatus(&f, "status", r.GetStatus()),
		PageSize:  r.GetPageSize(),
		PageToken: r.GetPageToken(),
		OrderBy:   r.GetOrderBy(),
	}
	return in, f.err()
}

// fromProtoCheck turns the cost oneof into CheckInput: credits, or a price
// to convert. An unset oneof leaves both empty and the domain refuses it.
func fromProtoCheck(r *pb.CheckCreditPaymentRequest) ledger.CheckInput {
	in := ledger.CheckInput{Workspace: r.GetWorkspace(), Account: r.GetAccount()}
	switch c := r.GetCost().(type) {
	case *pb.CheckCreditPaymentRequest_Credits:
		in.Credits = c.Credits
	case *pb.CheckCreditPaymentRequest_Price:
		p := fromProtoMoney(c.Price)
		in.Price = &p
	}
	return in
}

// fromProtoPackage reads the caller-settable fields of a package; output-only
// fields (id, workspace, times) are ignored. The domain checks the
// validity's bounds; a duration that is not one at all is refused here.
func fromProtoPackage(p *pb.CreditPackage) (ledger.Package, error) {
	var f fieldErrors
	pkg := ledger.Package{
		DisplayName: p.GetDisplayName(),
		Credits:     p.GetCredits(),
		Price:       fromProtoMoney(p.GetPrice()),
		Active:      p.GetActive(),
		Validity:    fromProtoDuration(&f, "credit_package.validity", p.GetValidity()),
	}
	return pkg, f.err()
}

func fromProtoCreateHold(r *pb.CreateHoldRequest) (ledger.CreateHoldInput, error) {
	var f fieldErrors
	in := ledger.CreateHoldInput{
		Workspace:      r.GetWorkspace(),
		Account:        r.GetAccount(),
		Amount:         r.GetAmount(),
		Kind:           fromProtoKind(&f, "kind", r.GetKind()),
		Reference:      r.GetReference(),
		ExpireTime:     fromProtoTime(&f, "expire_time", r.GetExpireTime()),
		TTL:            fromProtoDuration(&f, "ttl", r.GetTtl()),
		IdempotencyKey: r.GetIdempotencyKey(),
		Metadata:       copyMetadata(r.GetMetadata()),
	}
	return in, f.err()
}

func fromProtoListHolds(r *pb.ListHoldsRequest) (ledger.ListHoldsInput, error) {
	var f fieldErrors
	in := ledger.ListHoldsInput{
		Workspace: r.GetWorkspace(),
		Account:   r.GetAccount(),
		Status:    fromProtoHoldStatus(&f, "status", r.GetStatus()),
		PageSize:  r.GetPageSize(),
		PageToken: r.GetPageToken(),
	}
	return in, f.err()
}

func fromProtoReverse(r *pb.ReverseTransactionRequest) ledger.ReverseInput {
	return ledger.ReverseInput{
		Workspace:      r.GetWorkspace(),
		TransactionID:  r.GetTransactionId(),
		Amount:         r.GetAmount(),
		Reason:         r.GetReason(),
		Reference:      r.GetReference(),
		IdempotencyKey: r.GetIdempotencyKey(),
		Metadata:       copyMetadata(r.GetMetadata()),
	}
}

// fromProtoPeriod reads a statement's period; the domain requires both
// ends (unset is the zero time) and their order.
func fromProtoPeriod(start, end *timestamppb.Timestamp) (time.Time, time.Time, error) {
	var f fieldErrors
	s := fromProtoTime(&f, "start_time", start)
	e := fromProtoTime(&f, "end_time", end)
	return s, e, f.err()
}

// ---------------------------------------------------------------------------
// Responses

func toProtoTransaction(t ledger.Transaction) *pb.Transaction {
	return &pb.Transaction{
		Id:             t.ID,
		Workspace:      t.Workspace,
		Account:        t.Account,
		Type:           toProtoTxType(t.Type),
		Kind:           toProtoKind(t.Kind),
		Amount:         t.Amount,
		BalanceAfter:   t.BalanceAfter,
		AccountVersion: t.AccountVersion,
		Reference:      t.Reference,
		IdempotencyKey: t.IdempotencyKey,
		Metadata:       copyMetadata(t.Metadata),
		PackageId:      t.PackageID,
		RequestId:      t.RequestID,
		CreateTime:     toProtoTime(t.CreateTime),

		ReversesTransactionId: t.ReversesTransactionID,
		ReversedAmount:        t.ReversedAmount,
		ExpireTime:            toProtoTime(t.ExpireTime),
		HoldId:                t.HoldID,
	}
}

func toProtoTransactions(ts []ledger.Transaction) []*pb.Transaction {
	out := make([]*pb.Transaction, len(ts))
	for i, t := range ts {
		out[i] = toProtoTransaction(t)
	}
	return out
}

func toProtoBalance(b ledger.Balance) *pb.Balance {
	return &pb.Balance{
		Workspace:             b.Workspace,
		Account:               b.ID,
		Balance:               b.Balance,
		Version:               b.Version,
		CreditPaymentsEnabled: b.CreditPaymentsEnabled,
		PendingRequestCredits: b.PendingRequestCredits,
		UpdateTime:            toProtoTime(b.UpdateTime),
		Available:             b.Available(),
		Held:                  b.Held,
		NextExpireTime:        toProtoTime(b.NextExpireTime),
		NextExpiringCredits:   b.NextExpiringCredits,
	}
}

func toProtoHold(h ledger.Hold) *pb.Hold {
	return &pb.Hold{
		Id:             h.ID,
		Workspace:      h.Workspace,
		Account:        h.Account,
		Amount:         h.Amount,
		Kind:           toProtoKind(h.Kind),
		Reference:      h.Reference,
		Status:         toProtoHoldStatus(h.Status),
		ExpireTime:     toProtoTime(h.ExpireTime),
		CapturedAmount: h.CapturedAmount,
		TransactionId:  h.TransactionID,
		Metadata:       copyMetadata(h.Metadata),
		IdempotencyKey: h.IdempotencyKey,
		CreateTime:     toProtoTime(h.CreateTime),
		UpdateTime:     toProtoTime(h.UpdateTime),
	}
}

func toProtoStatement(st ledger.Statement) *pb.Statement {
	out := &pb.Statement{
		Workspace:        st.Workspace,
		Account:          st.Account,
		StartTime:        toProtoTime(st.Start),
		EndTime:          toProtoTime(st.End),
		OpeningBalance:   st.OpeningBalance,
		ClosingBalance:   st.ClosingBalance,
		TotalIn:          st.TotalIn,
		TotalOut:         st.TotalOut,
		TransactionCount: st.Count,
		Lines:            make([]*pb.StatementLine, len(st.Lines)),
	}
	for i, l := range st.Lines {
		out.Lines[i] = &pb.StatementLine{
			Type: toProtoTxType(l.Type), Kind: toProtoKind(l.Kind), Amount: l.Amount, Count: l.Count,
		}
	}
	return out
}

func toProtoCreditRequest(r ledger.CreditRequest) *pb.CreditPurchaseRequest {
	return &pb.CreditPurchaseRequest{
		Id:               r.ID,
		Workspace:        r.Workspace,
		Account:          r.Account,
		Amount:           r.Amount,
		PackageId:        r.PackageID,
		PaymentMethod:    toProtoPaymentMethod(r.PaymentMethod),
		PaymentReference: r.PaymentReference,
		Note:             r.Note,
		Status:           toProtoRequestStatus(r.Status),
		DecisionReason:   r.DecisionReason,
		DecidedBy:        r.DecidedBy,
		DecideTime:       toProtoTime(r.DecideTime),
		TransactionId:    r.TransactionID,
		Metadata:         copyMetadata(r.Metadata),
		CreateTime:       toProtoTime(r.CreateTime),
		SubmittedBy:      r.SubmittedBy,
	}
}

func toProtoSettings(s ledger.Settings) *pb.Settings {
	offered := s.OfferedPaymentMethods()
	methods := make([]pb.PaymentMethod, len(offered))
	for i, m := range offered {
		methods[i] = toProtoPaymentMethod(m)
	}
	return &pb.Settings{
		Workspace:               s.Workspace,
		CreditPaymentsEnabled:   s.CreditPaymentsEnabled,
		RequireDistinctApprover: s.RequireDistinctApprover,
		UpdateTime:              toProtoTime(s.UpdateTime),
		PaymentMethods:          methods,
		LowBalanceThreshold:     s.LowBalanceThreshold,
	}
}

func toProtoPackage(p ledger.Package) *pb.CreditPackage {
	return &pb.CreditPackage{
		Id:          p.ID,
		Workspace:   p.Workspace,
		DisplayName: p.DisplayName,
		Credits:     p.Credits,
		Price:       toProtoMoney(p.Price),
		Active:      p.Active,
		CreateTime:  toProtoTime(p.CreateTime),
		UpdateTime:  toProtoTime(p.UpdateTime),
		Validity:    toProtoDuration(p.Validity),
	}
}

func toProtoConversionRate(r ledger.ConversionRate) *pb.ConversionRate {
	return &pb.ConversionRate{
		Workspace:    r.Workspace,
		CurrencyCode: r.Currency,
		Rate:         r.Rate.String(),
		Active:       r.Active,
		CreateTime:   toProtoTime(r.CreateTime),
	}
}

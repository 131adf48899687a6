package grpcserver

import (
	"fmt"
	"maps"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/type/money"
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
	default:
		return pb.PaymentMethod_PAYMENT_METHOD_UNSPECIFIED
	}
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
	default:
		return pb.RequestStatus_REQUEST_STATUS_UNSPECIFIED
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
		Workspace: r.GetWorkspace(),
		Account:   r.GetAccount(),
		PageSize:  r.GetPageSize(),
		PageToken: r.GetPageToken(),
		Type:      fromProtoTxType(&f, "type", r.GetType()),
		Kind:      fromProtoKind(&f, "kind", r.GetKind()),
		Start:     fromProtoTime(&f, "start_time", r.GetStartTime()),
		End:       fromProtoTime(&f, "end_time", r.GetEndTime()),
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
// fields (id, workspace, times) are ignored.
func fromProtoPackage(p *pb.CreditPackage) ledger.Package {
	return ledger.Package{
		DisplayName: p.GetDisplayName(),
		Credits:     p.GetCredits(),
		Price:       fromProtoMoney(p.GetPrice()),
		Active:      p.GetActive(),
	}
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
	}
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
	return &pb.Settings{
		Workspace:               s.Workspace,
		CreditPaymentsEnabled:   s.CreditPaymentsEnabled,
		RequireDistinctApprover: s.RequireDistinctApprover,
		UpdateTime:              toProtoTime(s.UpdateTime),
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

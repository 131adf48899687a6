package ledger

import (
	"context"
	"strconv"
	"strings"
)

// SubmitInput is a manual credit purchase (bank transfer, crypto).
type SubmitInput struct {
	Workspace        string
	Account          string
	Amount           int64  // > 0, or 0 with PackageID
	PackageID        string // take the credits from this active package
	PaymentMethod    PaymentMethod
	PaymentReference string
	Note             string
	IdempotencyKey   string
	Metadata         map[string]string
	// SubmittedBy is the caller's authenticated subject (the transport
	// sets it, never the request body).
	SubmittedBy string
}

// SubmitResult carries the pending request.
type SubmitResult struct {
	Request  CreditRequest
	Replayed bool
}

// SubmitRequest records a PENDING credit request. Refused while credit
// payments are disabled, and for a payment method the workspace does not
// offer (decided against the settings the batch reads, so a concurrent
// change of the settings is seen either wholly before or after).
func (s *Service) SubmitRequest(ctx context.Context, in SubmitInput) (SubmitResult, error) {
	var v violations
	checkID(&v, "workspace", in.Workspace)
	checkID(&v, "account", in.Account)
	checkKey(&v, in.IdempotencyKey)
	checkMetadata(&v, in.Metadata)
	checkText(&v, "payment_reference", in.PaymentReference, MaxReferenceLength)
	checkText(&v, "note", in.Note, MaxNoteLength)
	checkText(&v, "submitted_by", in.SubmittedBy, MaxDecidedByLength)
	if in.PaymentMethod != MethodBankTransfer && in.PaymentMethod != MethodCrypto {
		v.add("payment_method", "must be BANK_TRANSFER or CRYPTO")
	}
	switch {
	case in.PackageID != "":
		checkID(&v, "package_id", in.PackageID)
		if in.Amount != 0 {
			v.add("amount", "must be empty when package_id is given (the package sets the credits)")
		}
	default:
		checkAmount(&v, "amount", in.Amount)
	}
	if err := v.err(); err != nil {
		return SubmitResult{}, err
	}
	md := normMap(in.Metadata)
	fp := newFingerprint(OpSubmitRequest).str(in.Workspace).str(in.Account).int(in.Amount).str(in.PackageID).
		str(in.PaymentMethod.String()).str(in.PaymentReference).str(in.Note).strMap(md).sum()

	o := &submitOp{opBase: opBase{operation: OpSubmitRequest, workspace: in.Workspace, key: SubmitKey(in.Account, in.IdempotencyKey)}, in: in, md: md, fp: fp}
	if err := s.batch.do(ctx, o); err != nil {
		return SubmitResult{}, err
	}
	if o.err != nil {
		return SubmitResult{}, o.err
	}
	return o.res, nil
}

// DecideInput is the agency's decision on a pending request.
type DecideInput struct {
	Workspace string
	RequestID string
	Decision  Decision
	Reason    string
	// DecidedBy is the caller's authenticated subject (the transport sets
	// it, never the request body).
	DecidedBy      string
	IdempotencyKey string
}

// DecideResult carries the decided request and, on acceptance, its transaction.
type DecideResult struct {
	Request     CreditRequest
	Transaction *Transaction
	Replayed    bool
}

// DecideRequest accepts (posting exactly one REQUEST_APPROVED transaction in
// the same store transaction as the status change) or rejects a PENDING
// request. Works while credit payments are disabled.
func (s *Service) DecideRequest(ctx context.Context, in DecideInput) (DecideResult, error) {
	var v violations
	checkID(&v, "workspace", in.Workspace)
	checkID(&v, "request_id", in.RequestID)
	checkKey(&v, in.IdempotencyKey)
	checkText(&v, "reason", in.Reason, MaxReasonLength)
	if strings.TrimSpace(in.DecidedBy) == "" {
		v.add("decided_by", "is required")
	} else {
		checkText(&v, "decided_by", in.DecidedBy, MaxDecidedByLength)
	}
	if in.Decision != DecisionAccept && in.Decision != DecisionReject {
		v.add("decision", "must be ACCEPT or REJECT")
	}
	if err := v.err(); err != nil {
		return DecideResult{}, err
	}
	fp := newFingerprint(OpDecideRequest).str(in.Workspace).str(in.RequestID).str(in.Decision.String()).
		str(in.Reason).str(in.DecidedBy).sum()

	o := &decideOp{opBase: opBase{operation: OpDecideRequest, workspace: in.Workspace, key: DecideKey(in.RequestID, in.IdempotencyKey)}, in: in, fp: fp}
	if err := s.batch.do(ctx, o); err != nil {
		return DecideResult{}, err
	}
	if o.err != nil {
		return DecideResult{}, o.err
	}
	return o.res, nil
}

// CancelInput withdraws a pending credit request.
type CancelInput struct {
	Workspace string
	RequestID string
	// Reason is kept as the request's DecisionReason.
	Reason string
	// Account, when set, is the only account whose requests the caller
	// may cancel (a client's token): another account's request is
	// NOT_FOUND, exactly as one that does not exist.
	Account string
	// CancelledBy is the caller's authenticated subject (the transport
	// sets it, never the request body); recorded as DecidedBy.
	CancelledBy    string
	IdempotencyKey string
}

// CancelResult carries the cancelled request.
type CancelResult struct {
	Request  CreditRequest
	Replayed bool
}

// CancelRequest withdraws a PENDING request: it becomes CANCELLED, nothing
// is posted, and the account's pending count and credits drop. It is
// decided in the batch like a decision, so a cancellation and a decision
// racing for one request cannot both win; a request that left PENDING is
// refused with REQUEST_ALREADY_DECIDED. Works while credit payments are
// disabled. Idempotent on the key, scoped to the request (CancelKey).
func (s *Service) CancelRequest(ctx context.Context, in CancelInput) (CancelResult, error) {
	var v violations
	checkID(&v, "workspace", in.Workspace)
	checkID(&v, "request_id", in.RequestID)
	if in.Account != "" {
		checkID(&v, "account", in.Account)
	}
	checkKey(&v, in.IdempotencyKey)
	checkText(&v, "reason", in.Reason, MaxReasonLength)
	if strings.TrimSpace(in.CancelledBy) == "" {
		v.add("cancelled_by", "is required")
	} else {
		checkText(&v, "cancelled_by", in.CancelledBy, MaxDecidedByLength)
	}
	if err := v.err(); err != nil {
		return CancelResult{}, err
	}
	fp := newFingerprint(OpCancelRequest).str(in.Workspace).str(in.RequestID).str(in.Reason).str(in.CancelledBy).sum()

	o := &cancelOp{opBase: opBase{operation: OpCancelRequest, workspace: in.Workspace, key: CancelKey(in.RequestID, in.IdempotencyKey)}, in: in, fp: fp}
	if err := s.batch.do(ctx, o); err != nil {
		return CancelResult{}, err
	}
	if o.err != nil {
		return CancelResult{}, o.err
	}
	return o.res, nil
}

// GetRequest returns one credit request of the workspace.
func (s *Service) GetRequest(ctx context.Context, workspace, id string) (CreditRequest, error) {
	var v violations
	checkID(&v, "workspace", workspace)
	checkID(&v, "request_id", id)
	if err := v.err(); err != nil {
		return CreditRequest{}, err
	}
	var r CreditRequest
	err := s.store.View(ctx, func(ctx context.Context, tx ReadTx) error {
		var err error
		r, err = tx.Request(ctx, workspace, id)
		return err
	})
	return r, err
}

// ListRequestsInput selects a page of credit requests.
type ListRequestsInput struct {
	Workspace string
	Account   string        // "" for the whole workspace
	Status    RequestStatus // StatusUnspecified: any
	PageSize  int32
	PageToken string
	OrderBy   string // "create_time" | "create_time desc"; default per ListRequests
}

// RequestPage is a page of credit requests.
type RequestPage struct {
	Requests      []CreditRequest
	NextPageToken string
}

// ListRequests lists credit requests: by default the agency's queue (whole
// workspace, oldest first) or, filtered by account, the client's view
// (newest first).
func (s *Service) ListRequests(ctx context.Context, in ListRequestsInput) (RequestPage, error) {
	var v violations
	checkID(&v, "workspace", in.Workspace)
	if in.Account != "" {
		checkID(&v, "account", in.Account)
	}
	size := pageSize(&v, in.PageSize)
	if in.Status < StatusUnspecified || in.Status > StatusCancelled {
		v.add("status", "unknown status")
	}
	desc := in.Account != ""
	switch strings.Join(strings.Fields(strings.ToLower(in.OrderBy)), " ") {
	case "":
	case "create_time", "create_time asc":
		desc = false
	case "create_time desc":
		desc = true
	default:
		v.add("order_by", `must be "create_time" or "create_time desc"`)
	}
	if err := v.err(); err != nil {
		return RequestPage{}, err
	}
	dir := "asc"
	if desc {
		dir = "desc"
	}
	bind := binding("requests.seq", in.Workspace, in.Account, in.Status.String(), dir)
	q := RequestQuery{Workspace: in.Workspace, Account: in.Account, Status: in.Status, Desc: desc, Limit: size + 1}
	if in.PageToken != "" {
		cur, err := s.tokens.Decode(bind, in.PageToken)
		if err != nil {
			return RequestPage{}, err
		}
		after, perr := strconv.ParseInt(cur, 10, 64)
		if perr != nil || after < 1 {
			return RequestPage{}, invalid("page_token", "is invalid")
		}
		q.AfterSeq = after
	}
	var rows []CreditRequest
	err := s.store.View(ctx, func(ctx context.Context, tx ReadTx) error {
		var err error
		rows, err = tx.ListRequests(ctx, q)
		return err
	})
	if err != nil {
		return RequestPage{}, err
	}
	page := RequestPage{Requests: rows}
	if len(rows) > size {
		page.Requests = rows[:size]
		page.NextPageToken = s.tokens.Encode(bind, strconv.FormatInt(rows[size-1].Seq, 10))
	}
	return page, nil
}

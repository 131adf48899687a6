package ledger

import (
	"context"
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
}

// SubmitResult carries the pending request.
type SubmitResult struct {
	Request  CreditRequest
	Replayed bool
}

// SubmitRequest records a PENDING credit request. Refused while credit
// payments are disabled.
func (s *Service) SubmitRequest(ctx context.Context, in SubmitInput) (SubmitResult, error) {
	var v violations
	checkID(&v, "workspace", in.Workspace)
	checkID(&v, "account", in.Account)
	checkKey(&v, in.IdempotencyKey)
	checkMetadata(&v, in.Metadata)
	checkText(&v, "payment_reference", in.PaymentReference, MaxReferenceLength)
	checkText(&v, "note", in.Note, MaxNoteLength)
	if in.PaymentMethod != MethodBankTransfer && in.PaymentMethod != MethodCrypto {
		v.add("payment_method", "must be BANK_TRANSFER or CRYPTO")
	}
	switch {
	case in.PackageID != "":
		checkID(&v, "package_id", in.PackageID)
		if in.Amount != 0 {
			v.add("amount", "must be empty when package_id is given (the package sets the credits)")
		}
	case in.Amount <= 0:
		v.add("amount", "must be greater than 0")
	}
	if err := v.err(); err != nil {
		return SubmitResult{}, err
	}
	md := normMap(in.Metadata)
	fp := newFingerprint(OpSubmitRequest).str(in.Workspace).str(in.Account).int(in.Amount).str(in.PackageID).
		str(in.PaymentMethod.String()).str(in.PaymentReference).str(in.Note).strMap(md).sum()

	var res SubmitResult
	err := s.update(ctx, OpSubmitRequest, func(ctx context.Context, tx Tx) error {
		res = SubmitResult{}
		rec, found, err := tx.LockIdempotency(ctx, in.Workspace, in.IdempotencyKey)
		if err != nil {
			return err
		}
		if found {
			if err := sameRequest(rec, OpSubmitRequest, fp); err != nil {
				return err
			}
			r, err := tx.Request(ctx, in.Workspace, rec.RequestID)
			if err != nil {
				return err
			}
			res = SubmitResult{Request: r, Replayed: true}
			return nil
		}
		st, err := tx.Settings(ctx, in.Workspace)
		if err != nil {
			return err
		}
		if !st.CreditPaymentsEnabled {
			return errDisabled(in.Workspace)
		}
		amount := in.Amount
		if in.PackageID != "" {
			pkg, err := tx.Package(ctx, in.Workspace, in.PackageID)
			if err != nil {
				return err
			}
			if !pkg.Active {
				return errPackageInactive(pkg.ID)
			}
			amount = pkg.Credits
		}
		r := CreditRequest{
			ID: s.newID(), Workspace: in.Workspace, Account: in.Account, Amount: amount, PackageID: in.PackageID,
			PaymentMethod: in.PaymentMethod, PaymentReference: in.PaymentReference, Note: in.Note,
			Status: StatusPending, Metadata: md, IdempotencyKey: in.IdempotencyKey, CreateTime: s.clock(),
		}
		if err := tx.InsertRequest(ctx, r); err != nil {
			return err
		}
		if err := tx.PutIdempotency(ctx, IdempotencyRecord{
			Workspace: in.Workspace, Key: in.IdempotencyKey, Operation: OpSubmitRequest, Fingerprint: fp,
			RequestID: r.ID, CreateTime: r.CreateTime,
		}); err != nil {
			return err
		}
		res = SubmitResult{Request: r}
		return nil
	})
	if err != nil {
		s.observeRefusal(OpSubmitRequest, err)
		return SubmitResult{}, err
	}
	if res.Replayed {
		s.obs.Replayed(OpSubmitRequest)
	}
	return res, nil
}

// DecideInput is the agency's decision on a pending request.
type DecideInput struct {
	Workspace      string
	RequestID      string
	Decision       Decision
	Reason         string
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

	var res DecideResult
	err := s.update(ctx, OpDecideRequest, func(ctx context.Context, tx Tx) error {
		res = DecideResult{}
		rec, found, err := tx.LockIdempotency(ctx, in.Workspace, in.IdempotencyKey)
		if err != nil {
			return err
		}
		if found {
			if err := sameRequest(rec, OpDecideRequest, fp); err != nil {
				return err
			}
			r, err := tx.Request(ctx, in.Workspace, rec.RequestID)
			if err != nil {
				return err
			}
			res = DecideResult{Request: r, Replayed: true}
			if rec.TransactionID != "" {
				t, err := tx.Transaction(ctx, in.Workspace, rec.TransactionID)
				if err != nil {
					return err
				}
				res.Transaction = &t
			}
			return nil
		}
		r, err := tx.LockRequest(ctx, in.Workspace, in.RequestID)
		if err != nil {
			return err
		}
		if r.Status != StatusPending {
			return newErr(CodeFailedPrecondition, ReasonRequestAlreadyDecided,
				"the request was already "+strings.ToLower(r.Status.String()),
				map[string]string{"request_id": r.ID, "status": r.Status.String()})
		}
		now := s.clock()
		r.DecisionReason, r.DecidedBy, r.DecideTime = in.Reason, in.DecidedBy, now
		var posted *Transaction
		if in.Decision == DecisionAccept {
			acct, err := tx.LockAccount(ctx, in.Workspace, r.Account)
			if err != nil {
				return err
			}
			t, err := s.nextEntry(acct, TypeIn, r.Amount, nil)
			if err != nil {
				return err
			}
			t.Kind, t.Reference, t.IdempotencyKey = KindRequestApproved, "creditRequest:"+r.ID, in.IdempotencyKey
			t.PackageID, t.RequestID, t.CreateTime = r.PackageID, r.ID, now
			if err := tx.AppendTransaction(ctx, t); err != nil {
				return err
			}
			r.Status, r.TransactionID = StatusAccepted, t.ID
			posted = &t
		} else {
			r.Status = StatusRejected
		}
		if err := tx.DecideRequest(ctx, r); err != nil {
			return err
		}
		rec = IdempotencyRecord{
			Workspace: in.Workspace, Key: in.IdempotencyKey, Operation: OpDecideRequest,
			Fingerprint: fp, RequestID: r.ID, CreateTime: now,
		}
		if posted != nil {
			rec.TransactionID = posted.ID
		}
		if err := tx.PutIdempotency(ctx, rec); err != nil {
			return err
		}
		res = DecideResult{Request: r, Transaction: posted}
		return nil
	})
	if err != nil {
		s.observeRefusal(OpDecideRequest, err)
		return DecideResult{}, err
	}
	switch {
	case res.Replayed:
		s.obs.Replayed(OpDecideRequest)
	case res.Transaction != nil:
		s.obs.Posted(*res.Transaction)
	}
	return res, nil
}

func (s *Service) observeRefusal(op Operation, err error) {
	if e := ErrorOf(err); e.Code == CodeFailedPrecondition || e.Reason == ReasonVersionMismatch || e.Reason == ReasonIdempotencyKeyReused {
		s.obs.Refused(op, e.Reason)
	}
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
	if in.Status < StatusUnspecified || in.Status > StatusRejected {
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
	bind := binding("requests", in.Workspace, in.Account, in.Status.String(), dir)
	q := RequestQuery{Workspace: in.Workspace, Account: in.Account, Status: in.Status, Desc: desc, Limit: size + 1}
	if in.PageToken != "" {
		cur, err := s.tokens.Decode(bind, in.PageToken)
		if err != nil {
			return RequestPage{}, err
		}
		q.AfterID = cur
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
		page.NextPageToken = s.tokens.Encode(bind, rows[size-1].ID)
	}
	return page, nil
}

package fakeledger

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledger"
)

// Holds and reversals (SPEC §9), as the fake keeps them: available =
// balance − Σ ACTIVE holds; a hold ends once (CAPTURED, VOIDED or
// EXPIRED); expiry happens lazily, at the next call after the fake's
// clock (see Advance) passed expire_time. Capture and void keys are
// scoped to the hold, reverse keys to the reversed entry, create keys to
// the workspace like the fake's other writes.

const (
	maxHoldTTL     = 30 * 24 * time.Hour
	defaultHoldTTL = 15 * time.Minute
)

func holdNotActive(h *pb.Hold) error {
	return fail(codes.FailedPrecondition, "HOLD_NOT_ACTIVE", "the hold is "+h.GetStatus().String(),
		map[string]string{"hold_id": h.GetId(), "status": h.GetStatus().String()})
}

// holdKey scopes a capture or void key to its hold.
func holdKey(holdID, key string) string { return "hold/" + holdID + "/" + key }

// expireDue ends every ACTIVE hold of w whose expire_time has passed.
func (s *Server) expireDue(w *workspace) {
	now := s.now()
	for _, id := range w.holdIDs {
		h := w.holds[id]
		if h.GetStatus() == pb.HoldStatus_HOLD_STATUS_ACTIVE && !now.Before(h.GetExpireTime().AsTime()) {
			h.Status, h.UpdateTime = pb.HoldStatus_HOLD_STATUS_EXPIRED, timestamppb.New(now.UTC())
			s.emit(w, ledger.EventHoldExpired, h.GetAccount(), h)
		}
	}
}

// held is the sum of an account's ACTIVE holds.
func (w *workspace) held(acct string) int64 {
	var n int64
	for _, h := range w.holds {
		if h.GetAccount() == acct && h.GetStatus() == pb.HoldStatus_HOLD_STATUS_ACTIVE {
			n += h.GetAmount()
		}
	}
	return n
}

// cover checks that an account's available credits cover amount.
func (s *Server) cover(w *workspace, acct string, amount int64) error {
	s.expireDue(w)
	a := w.account(acct)
	held := w.held(acct)
	if a.balance-held < amount {
		md := map[string]string{"balance": strconv.FormatInt(a.balance, 10), "required": strconv.FormatInt(amount, 10)}
		if held > 0 {
			md["available"] = strconv.FormatInt(a.balance-held, 10)
		}
		return fail(codes.FailedPrecondition, "INSUFFICIENT_CREDITS", "the available credits do not cover the amount", md)
	}
	return nil
}

// view is a copy of a stored entry with its reversed amount.
func (w *workspace) view(t *pb.Transaction) *pb.Transaction {
	c := proto.CloneOf(t)
	c.ReversedAmount = w.reversed[t.GetId()]
	return c
}

// Hold returns a copy of a hold (test inspection), nil when unknown.
func (s *Server) Hold(workspace, id string) *pb.Hold {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.workspace(workspace)
	s.expireDue(w)
	h, ok := w.holds[id]
	if !ok {
		return nil
	}
	return proto.CloneOf(h)
}

// Holds returns copies of an account's holds, oldest first.
func (s *Server) Holds(workspace, acct string) []*pb.Hold {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.workspace(workspace)
	s.expireDue(w)
	var out []*pb.Hold
	for _, id := range w.holdIDs {
		if h := w.holds[id]; h.GetAccount() == acct {
			out = append(out, proto.CloneOf(h))
		}
	}
	return out
}

func (l ledgerService) CreateHold(_ context.Context, req *pb.CreateHoldRequest) (*pb.CreateHoldResponse, error) {
	s := l.s
	if err := checkKey(req.GetIdempotencyKey(), "workspace", req.GetWorkspace(), "account", req.GetAccount()); err != nil {
		return nil, err
	}
	if req.GetAmount() <= 0 {
		return nil, invalid("amount", "must be greater than 0")
	}
	kind := req.GetKind()
	if kind == pb.TransactionKind_TRANSACTION_KIND_UNSPECIFIED {
		kind = pb.TransactionKind_TRANSACTION_KIND_SERVICE_PURCHASE
	}
	if kind != pb.TransactionKind_TRANSACTION_KIND_SERVICE_PURCHASE && kind != pb.TransactionKind_TRANSACTION_KIND_INVOICE_PAYMENT && kind != pb.TransactionKind_TRANSACTION_KIND_ADJUSTMENT {
		return nil, invalid("kind", "must be SERVICE_PURCHASE, INVOICE_PAYMENT or ADJUSTMENT")
	}
	if req.GetExpireTime() != nil && req.GetTtl() != nil {
		return nil, invalid("ttl", "give expire_time or ttl, not both")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.workspace(req.GetWorkspace())
	if prev, err := replay(w, "CreateHold", req.GetIdempotencyKey(), req); err != nil || prev != nil {
		if prev != nil {
			// The hold as it is now, as the real ledger answers a replay.
			r := prev.(*pb.CreateHoldResponse)
			r.Hold = proto.CloneOf(w.holds[r.GetHold().GetId()])
			r.Replayed = true
			return r, nil
		}
		return nil, err
	}
	now := s.now().UTC()
	expire := now.Add(defaultHoldTTL)
	switch {
	case req.GetExpireTime() != nil:
		expire = req.GetExpireTime().AsTime()
	case req.GetTtl() != nil:
		expire = now.Add(req.GetTtl().AsDuration())
	}
	if !expire.After(now) || expire.Sub(now) > maxHoldTTL {
		return nil, invalid("expire_time", "must be in the future and at most 30 days ahead")
	}
	if !w.enabled {
		return nil, fail(codes.FailedPrecondition, "CREDIT_PAYMENTS_DISABLED", "credit payments are disabled in this workspace",
			map[string]string{"workspace": req.GetWorkspace()})
	}
	if err := s.cover(w, req.GetAccount(), req.GetAmount()); err != nil {
		return nil, err
	}
	h := &pb.Hold{
		Id: s.newID("hold"), Workspace: req.GetWorkspace(), Account: req.GetAccount(), Amount: req.GetAmount(), Kind: kind,
		Reference: req.GetReference(), Status: pb.HoldStatus_HOLD_STATUS_ACTIVE, ExpireTime: timestamppb.New(expire),
		Metadata: maps.Clone(req.GetMetadata()), IdempotencyKey: req.GetIdempotencyKey(), CreateTime: timestamppb.New(now),
	}
	w.holds[h.GetId()] = h
	w.holdIDs = append(w.holdIDs, h.GetId())
	s.emit(w, ledger.EventHoldCreated, h.GetAccount(), h)
	a := w.account(req.GetAccount())
	res := &pb.CreateHoldResponse{Hold: proto.CloneOf(h), Available: a.balance - w.held(req.GetAccount())}
	w.keys[req.GetIdempotencyKey()] = keyRecord{method: "CreateHold", fingerprint: fingerprint(req), response: proto.Clone(res)}
	return res, nil
}

// activeHold finds a hold and checks that it is ACTIVE.
func (s *Server) activeHold(w *workspace, id string) (*pb.Hold, error) {
	s.expireDue(w)
	h, ok := w.holds[id]
	if !ok {
		return nil, notFound("hold", id)
	}
	if h.GetStatus() != pb.HoldStatus_HOLD_STATUS_ACTIVE {
		return nil, holdNotActive(h)
	}
	return h, nil
}

func (l ledgerService) CaptureHold(_ context.Context, req *pb.CaptureHoldRequest) (*pb.CaptureHoldResponse, error) {
	s := l.s
	if err := checkKey(req.GetIdempotencyKey(), "workspace", req.GetWorkspace(), "hold_id", req.GetHoldId()); err != nil {
		return nil, err
	}
	if req.GetAmount() < 0 {
		return nil, invalid("amount", "must not be negative")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.workspace(req.GetWorkspace())
	key := holdKey(req.GetHoldId(), req.GetIdempotencyKey())
	if prev, err := replay(w, "CaptureHold", key, req); err != nil || prev != nil {
		if prev != nil {
			r := prev.(*pb.CaptureHoldResponse)
			r.Replayed = true
			return r, nil
		}
		return nil, err
	}
	h, err := s.activeHold(w, req.GetHoldId())
	if err != nil {
		return nil, err
	}
	amount := req.GetAmount()
	if amount == 0 {
		amount = h.GetAmount()
	}
	if amount > h.GetAmount() {
		return nil, invalid("amount", "must not exceed the hold's amount")
	}
	// Release first: the capture spends credits the hold reserved, so it
	// cannot fail for lack of them.
	h.Status, h.UpdateTime = pb.HoldStatus_HOLD_STATUS_CAPTURED, s.ts()
	t := s.appendTx(req.GetWorkspace(), w.account(h.GetAccount()), h.GetAccount(), pb.TransactionType_TRANSACTION_TYPE_OUT, h.GetKind(),
		amount, h.GetReference(), req.GetIdempotencyKey(), h.GetMetadata(), "", "")
	t.HoldId = h.GetId()
	h.CapturedAmount, h.TransactionId = amount, t.GetId()
	s.posted(w, t)
	s.emit(w, ledger.EventHoldCaptured, h.GetAccount(), h)
	res := &pb.CaptureHoldResponse{Hold: proto.CloneOf(h), Transaction: proto.CloneOf(t)}
	w.keys[key] = keyRecord{method: "CaptureHold", fingerprint: fingerprint(req), response: proto.Clone(res)}
	return res, nil
}

func (l ledgerService) VoidHold(_ context.Context, req *pb.VoidHoldRequest) (*pb.VoidHoldResponse, error) {
	s := l.s
	if err := checkKey(req.GetIdempotencyKey(), "workspace", req.GetWorkspace(), "hold_id", req.GetHoldId()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.workspace(req.GetWorkspace())
	key := holdKey(req.GetHoldId(), req.GetIdempotencyKey())
	if prev, err := replay(w, "VoidHold", key, req); err != nil || prev != nil {
		if prev != nil {
			r := prev.(*pb.VoidHoldResponse)
			r.Replayed = true
			return r, nil
		}
		return nil, err
	}
	h, err := s.activeHold(w, req.GetHoldId())
	if err != nil {
		return nil, err
	}
	h.Status, h.UpdateTime = pb.HoldStatus_HOLD_STATUS_VOIDED, s.ts()
	s.emit(w, ledger.EventHoldVoided, h.GetAccount(), h)
	res := &pb.VoidHoldResponse{Hold: proto.CloneOf(h)}
	w.keys[key] = keyRecord{method: "VoidHold", fingerprint: fingerprint(req), response: proto.Clone(res)}
	return res, nil
}

func (l ledgerService) GetHold(_ context.Context, req *pb.GetHoldRequest) (*pb.GetHoldResponse, error) {
	if err := required("workspace", req.GetWorkspace(), "hold_id", req.GetHoldId()); err != nil {
		return nil, err
	}
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	w := l.s.workspace(req.GetWorkspace())
	l.s.expireDue(w)
	h, ok := w.holds[req.GetHoldId()]
	if !ok {
		return nil, notFound("hold", req.GetHoldId())
	}
	return &pb.GetHoldResponse{Hold: proto.CloneOf(h)}, nil
}

func (l ledgerService) ListHolds(_ context.Context, req *pb.ListHoldsRequest) (*pb.ListHoldsResponse, error) {
	if err := required("workspace", req.GetWorkspace(), "account", req.GetAccount()); err != nil {
		return nil, err
	}
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	w := l.s.workspace(req.GetWorkspace())
	l.s.expireDue(w)
	var all []*pb.Hold
	for _, id := range slices.Backward(w.holdIDs) {
		h := w.holds[id]
		if h.GetAccount() != req.GetAccount() || (req.GetStatus() != 0 && h.GetStatus() != req.GetStatus()) {
			continue
		}
		all = append(all, proto.CloneOf(h))
	}
	p, next, err := page(all, req.GetPageToken(), req.GetPageSize())
	if err != nil {
		return nil, err
	}
	return &pb.ListHoldsResponse{Holds: p, NextPageToken: next}, nil
}

func (l ledgerService) ReverseTransaction(_ context.Context, req *pb.ReverseTransactionRequest) (*pb.ReverseTransactionResponse, error) {
	s := l.s
	if err := checkKey(req.GetIdempotencyKey(), "workspace", req.GetWorkspace(), "transaction_id", req.GetTransactionId()); err != nil {
		return nil, err
	}
	if req.GetAmount() < 0 {
		return nil, invalid("amount", "must not be negative")
	}
	if len(req.GetReason()) > 1024 || len(req.GetReference()) > 256 {
		return nil, invalid("reason", "at most 1024 characters (reference: 256)")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.workspace(req.GetWorkspace())
	key := "tx/" + req.GetTransactionId() + "/" + req.GetIdempotencyKey()
	if prev, err := replay(w, "ReverseTransaction", key, req); err != nil || prev != nil {
		if prev != nil {
			r := prev.(*pb.ReverseTransactionResponse)
			r.Replayed = true
			return r, nil
		}
		return nil, err
	}
	orig, ok := w.txByID[req.GetTransactionId()]
	if !ok {
		return nil, notFound("transaction", req.GetTransactionId())
	}
	if k := orig.GetKind(); k == pb.TransactionKind_TRANSACTION_KIND_REVERSAL || k == pb.TransactionKind_TRANSACTION_KIND_EXPIRY {
		return nil, fail(codes.FailedPrecondition, "NOT_REVERSIBLE", "a "+k.String()+" entry cannot be reversed",
			map[string]string{"transaction_id": orig.GetId()})
	}
	remaining := orig.GetAmount() - w.reversed[orig.GetId()]
	amount := req.GetAmount()
	if amount == 0 {
		amount = remaining
	}
	if amount == 0 || amount > remaining {
		return nil, fail(codes.FailedPrecondition, "REVERSAL_EXCEEDS_ORIGINAL", "the reversals would exceed the original entry",
			map[string]string{
				"transaction_id": orig.GetId(), "amount": strconv.FormatInt(orig.GetAmount(), 10),
				"reversed_amount": strconv.FormatInt(w.reversed[orig.GetId()], 10), "requested": strconv.FormatInt(amount, 10),
			})
	}
	typ := pb.TransactionType_TRANSACTION_TYPE_IN
	if orig.GetType() == pb.TransactionType_TRANSACTION_TYPE_IN {
		// Taking credits back: they must not have been spent (or held).
		if err := s.cover(w, orig.GetAccount(), amount); err != nil {
			return nil, err
		}
		typ = pb.TransactionType_TRANSACTION_TYPE_OUT
	}
	ref := req.GetReference()
	if ref == "" {
		ref = req.GetReason()
		if len(ref) > 256 {
			ref = ref[:256]
		}
	}
	a := w.account(orig.GetAccount())
	t := s.appendTx(req.GetWorkspace(), a, orig.GetAccount(), typ, pb.TransactionKind_TRANSACTION_KIND_REVERSAL, amount,
		ref, req.GetIdempotencyKey(), req.GetMetadata(), "", "")
	t.ReversesTransactionId = orig.GetId()
	w.reversed[orig.GetId()] += amount
	s.posted(w, t)
	res := &pb.ReverseTransactionResponse{
		Transaction: proto.CloneOf(t), Original: w.view(orig), Balance: a.balance, Version: a.version,
	}
	w.keys[key] = keyRecord{method: "ReverseTransaction", fingerprint: fingerprint(req), response: proto.Clone(res)}
	return res, nil
}

func (l ledgerService) GetTransaction(_ context.Context, req *pb.GetTransactionRequest) (*pb.GetTransactionResponse, error) {
	if err := required("workspace", req.GetWorkspace(), "transaction_id", req.GetTransactionId()); err != nil {
		return nil, err
	}
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	w := l.s.workspace(req.GetWorkspace())
	t, ok := w.txByID[req.GetTransactionId()]
	if !ok {
		return nil, notFound("transaction", req.GetTransactionId())
	}
	return &pb.GetTransactionResponse{Transaction: w.view(t)}, nil
}

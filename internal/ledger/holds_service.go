package ledger

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/creditledger/creditledger/internal/ident"
)

// CreateHold reserves credits: available (balance − held) must cover the
// amount, and credit payments must be on.
func (s *Service) CreateHold(ctx context.Context, in CreateHoldInput) (HoldResult, error) {
	var v violations
	validatePostingCommon(&v, in.Workspace, in.Account, in.Reference, in.IdempotencyKey, nil, in.Metadata)
	kind := checkKind(&v, in.Kind, holdKinds)
	checkAmount(&v, "amount", in.Amount)
	now := s.clock()
	expire := in.ExpireTime.UTC().Truncate(time.Microsecond)
	switch {
	case !expire.IsZero() && in.TTL != 0:
		v.add("ttl", "give expire_time or ttl, not both")
	case in.TTL < 0 || in.TTL > MaxHoldTTL:
		v.add("ttl", "must be positive and at most 30 days")
	case in.TTL > 0:
		expire = now.Add(in.TTL)
	case expire.IsZero():
		expire = now.Add(DefaultHoldTTL)
	case !expire.After(now):
		v.add("expire_time", "must be in the future")
	case expire.Sub(now) > MaxHoldTTL:
		v.add("expire_time", "must be at most 30 days ahead")
	}
	if err := v.err(); err != nil {
		return HoldResult{}, err
	}
	md := normMap(in.Metadata)
	// The expiry is part of the request's meaning only when the caller
	// named the time: a TTL's retry computes a later time for the same hold.
	fp := newFingerprint(OpCreateHold).str(in.Workspace).str(in.Account).int(in.Amount).str(kind.String()).
		str(in.Reference).str(timeKey(in.ExpireTime)).int(int64(in.TTL)).strMap(md).sum()
	o := &createHoldOp{
		opBase: opBase{operation: OpCreateHold, workspace: in.Workspace, key: PostKey(in.Account, in.IdempotencyKey)},
		in:     in, kind: kind, expire: expire, md: md, fp: fp,
	}
	if err := s.batch.do(ctx, o); err != nil {
		return HoldResult{}, err
	}
	return o.res, o.err
}

// CaptureHold spends an Active hold (in whole or in part) as one OUT entry
// of its kind and releases the rest; it never fails for lack of credits.
func (s *Service) CaptureHold(ctx context.Context, in CaptureHoldInput) (HoldResult, error) {
	var v violations
	checkID(&v, "workspace", in.Workspace)
	checkID(&v, "hold_id", in.HoldID)
	checkKey(&v, in.IdempotencyKey)
	if in.Amount != 0 {
		checkAmount(&v, "amount", in.Amount)
	}
	if err := v.err(); err != nil {
		return HoldResult{}, err
	}
	fp := newFingerprint(OpCaptureHold).str(in.Workspace).str(in.HoldID).int(in.Amount).sum()
	o := &endHoldOp{
		opBase: opBase{operation: OpCaptureHold, workspace: in.Workspace, key: HoldKey(in.HoldID, in.IdempotencyKey)},
		ws:     in.Workspace, id: in.HoldID, capture: true, amount: in.Amount, fp: fp,
	}
	if err := s.batch.do(ctx, o); err != nil {
		return HoldResult{}, err
	}
	return o.res, o.err
}

// VoidHold releases an Active hold.
func (s *Service) VoidHold(ctx context.Context, in VoidHoldInput) (HoldResult, error) {
	var v violations
	checkID(&v, "workspace", in.Workspace)
	checkID(&v, "hold_id", in.HoldID)
	checkKey(&v, in.IdempotencyKey)
	if err := v.err(); err != nil {
		return HoldResult{}, err
	}
	fp := newFingerprint(OpVoidHold).str(in.Workspace).str(in.HoldID).sum()
	o := &endHoldOp{
		opBase: opBase{operation: OpVoidHold, workspace: in.Workspace, key: HoldKey(in.HoldID, in.IdempotencyKey)},
		ws:     in.Workspace, id: in.HoldID, fp: fp,
	}
	if err := s.batch.do(ctx, o); err != nil {
		return HoldResult{}, err
	}
	return o.res, o.err
}

// GetHold returns one hold of the workspace.
func (s *Service) GetHold(ctx context.Context, workspace, id string) (Hold, error) {
	var v violations
	checkID(&v, "workspace", workspace)
	checkID(&v, "hold_id", id)
	if err := v.err(); err != nil {
		return Hold{}, err
	}
	var h Hold
	err := s.store.View(ctx, func(ctx context.Context, tx ReadTx) error {
		var err error
		h, err = tx.Hold(ctx, workspace, id)
		return err
	})
	return h, err
}

// ListHolds returns a page of an account's holds, newest first.
func (s *Service) ListHolds(ctx context.Context, in ListHoldsInput) (HoldPage, error) {
	var v violations
	checkID(&v, "workspace", in.Workspace)
	checkID(&v, "account", in.Account)
	size := pageSize(&v, in.PageSize)
	if in.Status < HoldUnspecified || in.Status > HoldExpired {
		v.add("status", "unknown hold status")
	}
	if err := v.err(); err != nil {
		return HoldPage{}, err
	}
	bind := binding("holds", in.Workspace, in.Account, in.Status.String())
	q := HoldQuery{Workspace: in.Workspace, Account: in.Account, Status: in.Status, Limit: size + 1}
	if in.PageToken != "" {
		cur, err := s.tokens.Decode(bind, in.PageToken)
		if err != nil {
			return HoldPage{}, err
		}
		if !ident.Valid(cur) {
			return HoldPage{}, invalid("page_token", "is invalid")
		}
		q.BeforeID = cur
	}
	var rows []Hold
	err := s.store.View(ctx, func(ctx context.Context, tx ReadTx) error {
		var err error
		rows, err = tx.ListHolds(ctx, q)
		return err
	})
	if err != nil {
		return HoldPage{}, err
	}
	page := HoldPage{Holds: rows}
	if len(rows) > size {
		page.Holds = rows[:size]
		page.NextPageToken = s.tokens.Encode(bind, rows[size-1].ID)
	}
	return page, nil
}

// ReverseTransaction posts the opposite of an entry (in whole or in part)
// as a REVERSAL entry linked to it.
func (s *Service) ReverseTransaction(ctx context.Context, in ReverseInput) (ReverseResult, error) {
	var v violations
	checkID(&v, "workspace", in.Workspace)
	checkID(&v, "transaction_id", in.TransactionID)
	checkKey(&v, in.IdempotencyKey)
	checkText(&v, "reason", in.Reason, MaxReasonLength)
	checkText(&v, "reference", in.Reference, MaxReferenceLength)
	checkMetadata(&v, in.Metadata)
	if in.Amount != 0 {
		checkAmount(&v, "amount", in.Amount)
	}
	if err := v.err(); err != nil {
		return ReverseResult{}, err
	}
	ref := in.Reference
	if ref == "" {
		ref = truncate(in.Reason, MaxReferenceLength)
	}
	md := normMap(in.Metadata)
	fp := newFingerprint(OpReverse).str(in.Workspace).str(in.TransactionID).int(in.Amount).str(in.Reason).
		str(in.Reference).strMap(md).sum()
	o := &reverseOp{
		opBase: opBase{operation: OpReverse, workspace: in.Workspace, key: ReverseKey(in.TransactionID, in.IdempotencyKey)},
		in:     in, ref: ref, md: md, fp: fp,
	}
	if err := s.batch.do(ctx, o); err != nil {
		return ReverseResult{}, err
	}
	return o.res, o.err
}

// GetTransaction returns one entry of the workspace, with its ReversedAmount.
func (s *Service) GetTransaction(ctx context.Context, workspace, id string) (Transaction, error) {
	var v violations
	checkID(&v, "workspace", workspace)
	checkID(&v, "transaction_id", id)
	if err := v.err(); err != nil {
		return Transaction{}, err
	}
	var t Transaction
	err := s.store.View(ctx, func(ctx context.Context, tx ReadTx) error {
		var err error
		t, err = tx.Transaction(ctx, workspace, id)
		return err
	})
	return t, err
}

// GetStatement sums an account's entries over [start, end). It reads from a
// replica when the store has one (see MinVersion).
func (s *Service) GetStatement(ctx context.Context, workspace, account string, start, end time.Time, opts ...ReadOption) (Statement, error) {
	o := readOpts(opts)
	var v violations
	checkMinVersion(&v, o.minVersion)
	checkID(&v, "workspace", workspace)
	checkID(&v, "account", account)
	switch {
	case start.IsZero():
		v.add("start_time", "is required")
	case end.IsZero():
		v.add("end_time", "is required")
	case !start.Before(end):
		v.add("end_time", "must be after start_time")
	}
	if err := v.err(); err != nil {
		return Statement{}, err
	}
	var st Statement
	err := s.replicaRead(ctx, workspace, account, o.minVersion, func(ctx context.Context, tx ReadTx) error {
		var err error
		st, err = tx.Statement(ctx, workspace, account, start.UTC(), end.UTC())
		return err
	})
	return st, err
}

// exportPage is how many entries an export reads per transaction.
const exportPage = 500

// ExportTransactions calls fn for each of the account's entries created in
// [start, end) (zero: unbounded), oldest first, reading the history in
// pages so that a long export holds no transaction open.
func (s *Service) ExportTransactions(ctx context.Context, workspace, account string, start, end time.Time, fn func(Transaction) error) error {
	var v violations
	checkID(&v, "workspace", workspace)
	checkID(&v, "account", account)
	if !start.IsZero() && !end.IsZero() && !start.Before(end) {
		v.add("end_time", "must be after start_time")
	}
	if err := v.err(); err != nil {
		return err
	}
	q := TransactionQuery{Workspace: workspace, Account: account, Start: start, End: end, Limit: exportPage, Ascending: true}
	for {
		var rows []Transaction
		err := s.store.View(ctx, func(ctx context.Context, tx ReadTx) error {
			var err error
			rows, err = tx.ListTransactions(ctx, q)
			return err
		})
		if err != nil {
			return err
		}
		for _, t := range rows {
			if err := fn(t); err != nil {
				return err
			}
		}
		if len(rows) < exportPage {
			return nil
		}
		q.AfterVersion = rows[len(rows)-1].AccountVersion
	}
}

// sweepBatch bounds the holds and grants one sweep takes per workspace.
const sweepBatch = 500

// ExpireDue releases every due hold and expires every due grant of every
// workspace, through the batched write path: with several replicas
// sweeping at once, each hold and grant still ends exactly once.
func (s *Service) ExpireDue(ctx context.Context) (ExpiryReport, error) {
	aud, ok := s.store.(Auditor)
	if !ok {
		return ExpiryReport{}, errors.New("ledger: the store cannot list its workspaces")
	}
	var workspaces []string
	err := s.store.View(ctx, func(ctx context.Context, tx ReadTx) error {
		var err error
		workspaces, err = aud.Workspaces(ctx, tx)
		return err
	})
	if err != nil {
		return ExpiryReport{}, err
	}
	var rep ExpiryReport
	var errs []error
	for _, ws := range workspaces {
		r, err := s.expireWorkspace(ctx, ws)
		rep.Holds, rep.Grants, rep.Deferred = rep.Holds+r.Holds, rep.Grants+r.Grants, rep.Deferred+r.Deferred
		if err != nil {
			errs = append(errs, err)
		}
	}
	return rep, errors.Join(errs...)
}

func (s *Service) expireWorkspace(ctx context.Context, ws string) (ExpiryReport, error) {
	now := s.clock()
	var holds []Hold
	var grants []Grant
	err := s.store.View(ctx, func(ctx context.Context, tx ReadTx) error {
		var err error
		if holds, err = tx.DueHolds(ctx, ws, now, sweepBatch); err != nil {
			return err
		}
		grants, err = tx.DueGrants(ctx, ws, now, sweepBatch)
		return err
	})
	if err != nil || len(holds)+len(grants) == 0 {
		return ExpiryReport{}, err
	}
	// Holds first: a released hold may let a grant it reserved expire in
	// the same sweep.
	hops := make([]*expireHoldOp, len(holds))
	for i, h := range holds {
		hops[i] = &expireHoldOp{opBase: opBase{workspace: ws}, id: h.ID}
	}
	var rep ExpiryReport
	err = s.runAll(ctx, len(hops), func(i int) op { return hops[i] })
	for _, o := range hops {
		if o.expired {
			rep.Holds++
		}
	}
	if err != nil {
		return rep, err
	}
	gops := make([]*expireGrantOp, len(grants))
	for i, g := range grants {
		gops[i] = &expireGrantOp{opBase: opBase{workspace: ws}, account: g.Account, grant: g.TransactionID}
	}
	err = s.runAll(ctx, len(gops), func(i int) op { return gops[i] })
	for _, o := range gops {
		switch {
		case o.expired:
			rep.Grants++
		case o.deferred:
			rep.Deferred++
		}
	}
	return rep, err
}

// runAll submits n ops at once (they share batches) and waits for them.
func (s *Service) runAll(ctx context.Context, n int, get func(int) op) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			o := get(i)
			if err := s.batch.do(ctx, o); err != nil {
				errs[i] = err
			} else if o.base().err != nil {
				errs[i] = o.base().err
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

package ledger

import (
	"context"
	"fmt"
	"strings"
)

// Auditor is implemented by stores that can enumerate their whole content,
// which Verify needs. Workspaces is read in a View of its own; each
// workspace is then read in another.
type Auditor interface {
	// Workspaces lists every workspace that has settings, accounts,
	// requests, idempotency keys, packages or conversion rates.
	Workspaces(ctx context.Context, tx ReadTx) ([]string, error)
	// IdempotencyRecords calls fn for every idempotency record of the workspace.
	IdempotencyRecords(ctx context.Context, tx ReadTx, workspace string, fn func(IdempotencyRecord) error) error
}

// VerifyReport summarises a verification run. Problems lists every
// discrepancy found; an empty list means the ledger is consistent.
type VerifyReport struct {
	Workspaces   int
	Accounts     int
	Transactions int
	Requests     int
	Keys         int
	Events       int
	Problems     []string
}

// OK reports whether no discrepancy was found.
func (r VerifyReport) OK() bool { return len(r.Problems) == 0 }

const maxProblems = 1000

func (r *VerifyReport) problem(format string, args ...any) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// Verify walks every account's entries in version order, recomputes the
// balance_after chain and the balance, and checks that every idempotency
// record points at an existing transaction or request of the right shape and
// that every accepted request points at its REQUEST_APPROVED transaction.
//
// It lists the workspaces in one short View, then checks each workspace in
// a View of its own: every invariant is per workspace, so each is checked in
// a consistent snapshot of its workspace, and no transaction spans two
// workspaces (which a store sharded by workspace could not serve as one
// shard's transaction). A workspace created after the listing is not
// checked by this run.
func Verify(ctx context.Context, store Store) (VerifyReport, error) {
	aud, ok := store.(Auditor)
	if !ok {
		return VerifyReport{}, fmt.Errorf("store %T cannot be audited", store)
	}
	var wss []string
	err := store.View(ctx, func(ctx context.Context, tx ReadTx) error {
		var err error
		wss, err = aud.Workspaces(ctx, tx)
		return err
	})
	if err != nil {
		return VerifyReport{}, err
	}
	var rep VerifyReport
	for _, ws := range wss {
		var part VerifyReport
		err := store.View(ctx, func(ctx context.Context, tx ReadTx) error {
			part = VerifyReport{} // fn may run again
			return verifyWorkspace(ctx, aud, tx, ws, &part)
		})
		if err != nil {
			return rep, fmt.Errorf("workspace %s: %w", ws, err)
		}
		rep.add(part)
	}
	return rep, nil
}

// add counts one workspace's report into r.
func (r *VerifyReport) add(ws VerifyReport) {
	r.Workspaces++
	r.Accounts += ws.Accounts
	r.Transactions += ws.Transactions
	r.Requests += ws.Requests
	r.Keys += ws.Keys
	r.Events += ws.Events
	r.Problems = append(r.Problems, ws.Problems[:min(len(ws.Problems), maxProblems-len(r.Problems))]...)
}

func verifyWorkspace(ctx context.Context, aud Auditor, tx ReadTx, ws string, rep *VerifyReport) error {
	after := ""
	for {
		accts, err := tx.ListAccounts(ctx, AccountQuery{Workspace: ws, AfterID: after, Limit: 500})
		if err != nil {
			return err
		}
		for _, a := range accts {
			rep.Accounts++
			if err := verifyAccount(ctx, tx, a, rep); err != nil {
				return err
			}
		}
		if len(accts) < 500 {
			break
		}
		after = accts[len(accts)-1].ID
	}

	// Requests run 1..n in the workspace's sequence, with no gap.
	var seq int64
	for {
		reqs, err := tx.ListRequests(ctx, RequestQuery{Workspace: ws, AfterSeq: seq, Limit: 500})
		if err != nil {
			return err
		}
		for _, r := range reqs {
			rep.Requests++
			if r.Seq != seq+1 {
				rep.problem("%s: request %s has sequence %d after %d", ws, r.ID, r.Seq, seq)
			}
			seq = r.Seq
			verifyRequest(ctx, tx, r, rep)
		}
		if len(reqs) < 500 {
			break
		}
	}

	// Events run 1..n in the workspace's sequence, with no gap, up to its
	// counter. (Entries posted before events existed have none.)
	var last int64
	for {
		evs, err := tx.ListEvents(ctx, EventQuery{Workspace: ws, After: last, Limit: 1000})
		if err != nil {
			return err
		}
		for _, e := range evs {
			rep.Events++
			if e.Sequence != last+1 {
				rep.problem("%s: event %d follows event %d", ws, e.Sequence, last)
			}
			last = e.Sequence
		}
		if len(evs) < 1000 {
			break
		}
	}
	if counter, err := tx.LastEventSequence(ctx, ws); err != nil {
		return err
	} else if counter != last {
		rep.problem("%s: the event counter is at %d, the last event is %d", ws, counter, last)
	}

	return aud.IdempotencyRecords(ctx, tx, ws, func(rec IdempotencyRecord) error {
		rep.Keys++
		switch rec.Operation {
		case OpCredit, OpDebit:
			t, err := tx.Transaction(ctx, ws, rec.TransactionID)
			if err != nil {
				rep.problem("%s: key %q (%s) points at missing transaction %q", ws, truncate(rec.Key, 32), rec.Operation, rec.TransactionID)
				return nil
			}
			if want := map[Operation]TxType{OpCredit: TypeIn, OpDebit: TypeOut}[rec.Operation]; t.Type != want {
				rep.problem("%s: key %q (%s) points at a %s transaction %s", ws, truncate(rec.Key, 32), rec.Operation, t.Type, t.ID)
			}
		case OpSubmitRequest, OpDecideRequest, OpCancelRequest:
			r, err := tx.Request(ctx, ws, rec.RequestID)
			if err != nil {
				rep.problem("%s: key %q (%s) points at missing request %q", ws, truncate(rec.Key, 32), rec.Operation, rec.RequestID)
				return nil
			}
			if rec.Operation == OpDecideRequest && r.Status == StatusPending {
				rep.problem("%s: decision key %q points at request %s that is still pending", ws, truncate(rec.Key, 32), r.ID)
			}
			if rec.Operation == OpCancelRequest && r.Status != StatusCancelled {
				rep.problem("%s: cancellation key %q points at request %s that is %s", ws, truncate(rec.Key, 32), r.ID, r.Status)
			}
			if rec.Operation == OpDecideRequest && r.Status == StatusCancelled {
				rep.problem("%s: decision key %q points at request %s that was cancelled", ws, truncate(rec.Key, 32), r.ID)
			}
			if rec.Operation == OpDecideRequest && rec.TransactionID != r.TransactionID {
				rep.problem("%s: decision key %q names transaction %q, request %s has %q", ws, truncate(rec.Key, 32), rec.TransactionID, r.ID, r.TransactionID)
			}
		case OpCreateHold, OpCaptureHold, OpVoidHold:
			h, err := tx.Hold(ctx, ws, rec.HoldID)
			if err != nil {
				rep.problem("%s: key %q (%s) points at missing hold %q", ws, truncate(rec.Key, 32), rec.Operation, rec.HoldID)
				return nil
			}
			switch {
			case rec.Operation == OpCaptureHold && (h.Status != HoldCaptured || h.TransactionID != rec.TransactionID):
				rep.problem("%s: capture key %q names entry %q, hold %s is %s with %q", ws, truncate(rec.Key, 32), rec.TransactionID, h.ID, h.Status, h.TransactionID)
			case rec.Operation == OpVoidHold && h.Status != HoldVoided:
				rep.problem("%s: void key %q points at hold %s that is %s", ws, truncate(rec.Key, 32), h.ID, h.Status)
			}
		case OpReverse:
			t, err := tx.Transaction(ctx, ws, rec.TransactionID)
			if err != nil || t.Kind != KindReversal {
				rep.problem("%s: reversal key %q does not point at a REVERSAL entry (%q)", ws, truncate(rec.Key, 32), rec.TransactionID)
			}
		default:
			rep.problem("%s: key %q has unknown operation %q", ws, truncate(rec.Key, 32), rec.Operation)
		}
		return nil
	})
}

func verifyAccount(ctx context.Context, tx ReadTx, a Account, rep *VerifyReport) error {
	// History comes newest first; collect the page versions, then replay oldest first.
	var all []Transaction
	before := int64(0)
	for {
		page, err := tx.ListTransactions(ctx, TransactionQuery{Workspace: a.Workspace, Account: a.ID, BeforeVersion: before, Limit: 1000})
		if err != nil {
			return err
		}
		all = append(all, page...)
		if len(page) < 1000 {
			break
		}
		before = page[len(page)-1].AccountVersion
	}
	var bal int64
	for i := len(all) - 1; i >= 0; i-- {
		t := all[i]
		rep.Transactions++
		want := int64(len(all) - i)
		if t.AccountVersion != want {
			rep.problem("%s/%s: entry %s has version %d, expected %d", a.Workspace, a.ID, t.ID, t.AccountVersion, want)
			return nil
		}
		switch t.Type {
		case TypeIn:
			bal += t.Amount
		case TypeOut:
			bal -= t.Amount
		default:
			rep.problem("%s/%s: entry %s has no type", a.Workspace, a.ID, t.ID)
		}
		if t.Amount <= 0 {
			rep.problem("%s/%s: entry v%d has amount %d", a.Workspace, a.ID, t.AccountVersion, t.Amount)
		}
		if bal < 0 {
			rep.problem("%s/%s: balance negative (%d) at v%d", a.Workspace, a.ID, bal, t.AccountVersion)
		}
		if t.BalanceAfter != bal {
			rep.problem("%s/%s: v%d balance_after %d, recomputed %d", a.Workspace, a.ID, t.AccountVersion, t.BalanceAfter, bal)
			bal = t.BalanceAfter // report each break once
		}
	}
	if a.Version != int64(len(all)) || a.Balance != bal {
		rep.problem("%s/%s: account at balance %d version %d, entries replay to %d at version %d",
			a.Workspace, a.ID, a.Balance, a.Version, bal, len(all))
	}
	return verifyMoves(ctx, tx, a, all, rep)
}

// verifyMoves checks the holds, reversals and grants of an account
// against its entries (all, newest first): held is the sum of the ACTIVE
// holds and at most the balance; a captured hold names its entry and the
// entry its hold; the reversals of an entry link to it, go the other way
// and sum to at most it; an EXPIRY entry names a grant of the account that
// was due; the open grants leave room in the balance.
func verifyMoves(ctx context.Context, tx ReadTx, a Account, all []Transaction, rep *VerifyReport) error {
	where := a.Workspace + "/" + a.ID
	if a.Held < 0 || a.Held > a.Balance {
		rep.problem("%s: held %d outside [0, balance %d]", where, a.Held, a.Balance)
	}
	byID := make(map[string]Transaction, len(all))
	for _, t := range all {
		byID[t.ID] = t
	}
	var held int64
	before := ""
	for {
		holds, err := tx.ListHolds(ctx, HoldQuery{Workspace: a.Workspace, Account: a.ID, BeforeID: before, Limit: 500})
		if err != nil {
			return err
		}
		for _, h := range holds {
			switch h.Status {
			case HoldActive:
				held += h.Amount
			case HoldCaptured:
				t, ok := byID[h.TransactionID]
				if !ok || t.HoldID != h.ID || t.Amount != h.CapturedAmount || t.Type != TypeOut || h.CapturedAmount > h.Amount {
					rep.problem("%s: captured hold %s does not match its entry %q", where, h.ID, h.TransactionID)
				}
			case HoldVoided, HoldExpired:
				if h.TransactionID != "" || h.CapturedAmount != 0 {
					rep.problem("%s: %s hold %s names a capture", where, h.Status, h.ID)
				}
			}
		}
		if len(holds) < 500 {
			break
		}
		before = holds[len(holds)-1].ID
	}
	if held != a.Held {
		rep.problem("%s: held %d, active holds sum to %d", where, a.Held, held)
	}
	reversed := map[string]int64{}
	for _, t := range all {
		switch {
		case t.Kind == KindReversal:
			o, ok := byID[t.ReversesTransactionID]
			if !ok || o.Type == t.Type || o.Kind == KindReversal || o.Kind == KindExpiry {
				rep.problem("%s: reversal %s does not reverse an entry of the account the other way", where, t.ID)
				continue
			}
			reversed[o.ID] += t.Amount
		case t.Kind == KindExpiry:
			g, ok := byID[strings.TrimPrefix(t.Reference, "expiry:")]
			if !ok || g.Type != TypeIn || g.ExpireTime.IsZero() || g.ExpireTime.After(t.CreateTime) || t.Amount > g.Amount {
				rep.problem("%s: expiry %s does not expire a due grant of the account", where, t.ID)
			}
		case t.HoldID != "":
			if h, err := tx.Hold(ctx, a.Workspace, t.HoldID); err != nil || h.TransactionID != t.ID {
				rep.problem("%s: entry %s names hold %s, which does not name it", where, t.ID, t.HoldID)
			}
		}
	}
	for _, t := range all {
		if t.ReversedAmount != reversed[t.ID] || t.ReversedAmount > t.Amount {
			rep.problem("%s: entry %s reversed %d of %d, its reversals sum to %d", where, t.ID, t.ReversedAmount, t.Amount, reversed[t.ID])
		}
	}
	if a.Version == 0 {
		return nil
	}
	grants, err := tx.Grants(ctx, a.Workspace, a.ID)
	if err != nil {
		return err
	}
	var open int64
	for _, g := range grants {
		open += g.Remaining
		t, ok := byID[g.TransactionID]
		if !ok || t.Type != TypeIn || t.Amount != g.Amount || !t.ExpireTime.Equal(g.ExpireTime) || g.Remaining > g.Amount {
			rep.problem("%s: grant %s does not match its entry", where, g.TransactionID)
		}
	}
	if open > a.Balance {
		rep.problem("%s: open grants hold %d credits, the balance is %d", where, open, a.Balance)
	}
	return nil
}

func verifyRequest(ctx context.Context, tx ReadTx, r CreditRequest, rep *VerifyReport) {
	switch r.Status {
	case StatusAccepted:
		t, err := tx.Transaction(ctx, r.Workspace, r.TransactionID)
		if err != nil {
			rep.problem("%s: accepted request %s points at missing transaction %q", r.Workspace, r.ID, r.TransactionID)
			return
		}
		if t.Kind != KindRequestApproved || t.RequestID != r.ID || t.Amount != r.Amount || t.Account != r.Account || t.Type != TypeIn {
			rep.problem("%s: accepted request %s and its transaction %s disagree", r.Workspace, r.ID, t.ID)
		}
	case StatusPending, StatusRejected, StatusCancelled:
		if r.TransactionID != "" {
			rep.problem("%s: %s request %s has transaction %q", r.Workspace, r.Status, r.ID, r.TransactionID)
		}
		if (r.Status == StatusPending) != r.DecideTime.IsZero() {
			rep.problem("%s: %s request %s has decide time %v", r.Workspace, r.Status, r.ID, r.DecideTime)
		}
	default:
		rep.problem("%s: request %s has status %v", r.Workspace, r.ID, r.Status)
	}
}

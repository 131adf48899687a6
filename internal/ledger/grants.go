package ledger

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// grantBook is an account's grants as a batch draws them: the open grants
// the store read (WriteSet.GrantsOf) and those the batch opened, in
// spending order (soonest expiry first).
type grantBook struct {
	list    []Grant
	opened  map[string]bool // opened by this batch
	changed map[string]bool // read from the store and changed
}

func grantOrder(x, y Grant) int {
	return cmp.Or(x.ExpireTime.Compare(y.ExpireTime), strings.Compare(x.TransactionID, y.TransactionID))
}

// hasGrants reports whether the account has grants in this batch: most
// accounts have none, and then spending needs no book.
func (b *batchState) hasGrants(account string) bool {
	_, ok := b.grants[account]
	return ok || len(b.snap.Grants[account]) > 0
}

// book returns the account's grant book, starting from the snapshot.
func (b *batchState) book(account string) *grantBook {
	if g, ok := b.grants[account]; ok {
		return g
	}
	g := &grantBook{list: slices.Clone(b.snap.Grants[account]), opened: map[string]bool{}, changed: map[string]bool{}}
	slices.SortFunc(g.list, grantOrder)
	b.grants[account] = g
	return g
}

func (g *grantBook) open(gr Grant) {
	g.list = append(g.list, gr)
	slices.SortFunc(g.list, grantOrder)
	g.opened[gr.TransactionID] = true
}

func (g *grantBook) touch(i int) {
	if !g.opened[g.list[i].TransactionID] {
		g.changed[g.list[i].TransactionID] = true
	}
}

// draw spends amount from the grants: first from the grant of entry first
// (when it is open: a reversed credit takes back its own credits), then
// soonest-expiring first. What the grants do not cover comes from the
// account's non-expiring credits. Grants past their expiry at now are
// skipped unless now is zero (a capture spends what its hold reserved,
// whatever has expired since).
func (g *grantBook) draw(amount int64, first string, now time.Time) {
	usable := func(i int) bool {
		return g.list[i].ExpiryTransactionID == "" && (now.IsZero() || g.list[i].ExpireTime.After(now))
	}
	take := func(i int) {
		n := min(amount, g.list[i].Remaining)
		if n <= 0 {
			return
		}
		g.list[i].Remaining -= n
		amount -= n
		g.touch(i)
	}
	if first != "" {
		for i := range g.list {
			if g.list[i].TransactionID == first && usable(i) {
				take(i)
			}
		}
	}
	for i := range g.list {
		if amount == 0 {
			return
		}
		if usable(i) {
			take(i)
		}
	}
}

// expired is what of the open grants past their expiry at now no hold
// reserves: credits gone, waiting for the sweep to post their EXPIRY
// entry, which new spending cannot use.
func (g *grantBook) expired(now time.Time, held int64) int64 {
	var n int64
	for i, gr := range g.list {
		if gr.ExpiryTransactionID == "" && gr.Remaining > 0 && !gr.ExpireTime.After(now) {
			n += gr.Remaining - g.reserved(i, held)
		}
	}
	return n
}

// spendable is the account as new spending sees it: its balance less the
// credits that expired and wait for the sweep.
func (b *batchState) spendable(a *accountState) Account {
	acct := a.Account
	if b.hasGrants(a.ID) {
		acct.Balance -= b.book(a.ID).expired(b.s.clock(), a.Held)
	}
	return acct
}

// draw spends amount of the account's grants (see grantBook.draw).
func (b *batchState) draw(account string, amount int64, first string, now time.Time) {
	if b.hasGrants(account) {
		b.book(account).draw(amount, first, now)
	}
}

// find returns the index of the open grant of entry id, or -1.
func (g *grantBook) find(id string) int {
	for i, gr := range g.list {
		if gr.TransactionID == id && gr.Remaining > 0 && gr.ExpiryTransactionID == "" {
			return i
		}
	}
	return -1
}

// reserved is what of grant i the account's holds reserve: holds take an
// account's credits in spending order, so they cover the first held
// credits of the open grants (then the non-expiring rest).
func (g *grantBook) reserved(i int, held int64) int64 {
	before := int64(0)
	for j := 0; j < i; j++ {
		if g.list[j].ExpiryTransactionID == "" {
			before += g.list[j].Remaining
		}
	}
	return max(0, min(held-before, g.list[i].Remaining))
}

// next returns the soonest expire time of the open grants and what of
// them expires then.
func nextExpiry(grants []Grant) (time.Time, int64) {
	var at time.Time
	var n int64
	for _, gr := range grants {
		if gr.Remaining <= 0 || gr.ExpiryTransactionID != "" {
			continue
		}
		switch {
		case at.IsZero() || gr.ExpireTime.Before(at):
			at, n = gr.ExpireTime, gr.Remaining
		case gr.ExpireTime.Equal(at):
			n += gr.Remaining
		}
	}
	return at, n
}

// grantEffects adds the batch's grants to its effects: those it opened
// (with what is left of them), and the changes to those it read.
func (b *batchState) grantEffects() {
	accts := make([]string, 0, len(b.grants))
	for a := range b.grants {
		accts = append(accts, a)
	}
	slices.Sort(accts)
	for _, a := range accts {
		g := b.grants[a]
		for _, gr := range g.list {
			switch {
			case g.opened[gr.TransactionID]:
				b.eff.NewGrants = append(b.eff.NewGrants, gr)
			case g.changed[gr.TransactionID]:
				b.eff.GrantUpdates = append(b.eff.GrantUpdates, gr)
			}
		}
	}
}

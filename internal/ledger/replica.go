package ledger

import (
	"context"
	"errors"
	"fmt"
)

// ReplicaViewer is implemented by stores that can serve reads from read
// replicas (hot standbys that replay the primary's log and may lag it).
type ReplicaViewer interface {
	// HasReplicas reports whether the store has read replicas at all;
	// without, reads go to View directly.
	HasReplicas() bool
	// ViewReplica runs fn like View, in one snapshot of a replica. When no
	// replica is usable (none is configured as healthy, the one chosen
	// broke, or it cancelled the read to replay the log), it returns an
	// error matching ErrNoReplica without having called fn to completion,
	// and the caller reads from the primary. fn's own errors come back
	// unchanged.
	ViewReplica(ctx context.Context, fn func(ctx context.Context, tx ReadTx) error) error
}

// ErrNoReplica reports that a replica read could not be served: read from
// the primary instead.
var ErrNoReplica = errors.New("ledger: no usable read replica")

// belowMinVersion ends a read whose snapshot holds the account at a
// version below the one the caller must see: a replica that has not caught
// up, or, on the primary, a version the account has not reached.
type belowMinVersion struct {
	account string
	current int64
}

func (e belowMinVersion) Error() string {
	return fmt.Sprintf("ledger: account %s is at version %d, below min_version", e.account, e.current)
}

// Where a read was served, reported to Observer.Read.
const (
	ReadReplica          = "replica"            // on a replica
	ReadPrimaryBehind    = "primary_behind"     // on the primary: the replica had not reached min_version
	ReadPrimaryNoReplica = "primary_no_replica" // on the primary: no replica was usable
)

// ReadOption tunes a read.
type ReadOption func(*readOptions)

type readOptions struct{ minVersion int64 }

// MinVersion makes a read reflect the account at version v or later: the
// version a write answered, so that a caller reads its own writes even
// when the read is served by a replica that lags. A replica that has not
// replayed version v yet is passed over for the primary. A version the
// account has not reached even on the primary is refused with
// ABORTED (VERSION_MISMATCH), as SPEC §4 pairs that reason.
func MinVersion(v int64) ReadOption { return func(o *readOptions) { o.minVersion = v } }

func readOpts(opts []ReadOption) readOptions {
	var o readOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// replicaRead runs fn on a read replica when the store has one and it holds
// the account at minVersion or later; otherwise on the primary. The
// version is checked before fn when account is set; a read that reads the
// account anyway (GetBalance) leaves account empty and checks it itself,
// returning belowMinVersion. fn may run twice (replica, then primary): it
// must set its results afresh on every call.
func (s *Service) replicaRead(ctx context.Context, workspace, account string, minVersion int64, fn func(ctx context.Context, tx ReadTx) error) error {
	read := func(ctx context.Context, tx ReadTx) error {
		if minVersion > 0 && account != "" {
			acct, err := tx.Account(ctx, workspace, account)
			if err != nil {
				return err
			}
			if acct.Version < minVersion {
				return belowMinVersion{account, acct.Version}
			}
		}
		return fn(ctx, tx)
	}
	var below belowMinVersion
	if rv, ok := s.store.(ReplicaViewer); ok && rv.HasReplicas() {
		err := rv.ViewReplica(ctx, read)
		switch {
		case err == nil:
			s.obs.Read(ReadReplica)
			return nil
		case errors.As(err, &below):
			s.obs.Read(ReadPrimaryBehind)
		case errors.Is(err, ErrNoReplica):
			s.obs.Read(ReadPrimaryNoReplica)
		default:
			return err
		}
	}
	err := s.store.View(ctx, read)
	if errors.As(err, &below) {
		return newErr(CodeAborted, ReasonVersionMismatch,
			fmt.Sprintf("account %s is at version %d, below min_version %d", below.account, below.current, minVersion),
			map[string]string{"current_version": fmt.Sprint(below.current), "min_version": fmt.Sprint(minVersion)})
	}
	return err
}

func checkMinVersion(v *violations, minVersion int64) {
	if minVersion < 0 {
		v.add("min_version", "must be ≥ 0")
	}
}

// BalanceReader is implemented by a ReadTx that reads everything a
// balance shows in one statement: what Account, Settings, PendingCredits
// and Grants (open grants only) return, in one round trip instead of four.
type BalanceReader interface {
	BalanceView(ctx context.Context, workspace, account string) (BalanceView, error)
}

// BalanceView is what a BalanceReader reads.
type BalanceView struct {
	Account  Account
	Settings Settings
	Pending  int64
	Grants   []Grant // open grants, in spending order
}

// balanceView reads an account's balance figures, in one statement when
// tx can.
func balanceView(ctx context.Context, tx ReadTx, workspace, account string) (BalanceView, error) {
	if br, ok := tx.(BalanceReader); ok {
		return br.BalanceView(ctx, workspace, account)
	}
	var v BalanceView
	var err error
	if v.Account, err = tx.Account(ctx, workspace, account); err != nil {
		return BalanceView{}, err
	}
	if v.Settings, err = tx.Settings(ctx, workspace); err != nil {
		return BalanceView{}, err
	}
	if v.Pending, err = tx.PendingCredits(ctx, workspace, account); err != nil {
		return BalanceView{}, err
	}
	if v.Account.Version == 0 {
		return v, nil // never credited: no grants
	}
	v.Grants, err = tx.Grants(ctx, workspace, account)
	return v, err
}

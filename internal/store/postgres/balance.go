package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/creditledger/creditledger/internal/ledger"
)

// qBalanceView reads what GetBalance answers in one statement, so one
// round trip: the account (NULLs when never credited), the workspace's
// settings (NULLs when never set), the credits of the account's PENDING
// requests (as qPendingCredits), and its open grants as arrays in spending
// order (as qGrants).
const qBalanceView = `SELECT a.balance, a.version, a.update_time, a.held,
		s.credit_payments_enabled, s.require_distinct_approver, s.payment_methods, s.low_balance_threshold, s.update_time,
		(SELECT LEAST(COALESCE(SUM(amount), 0), 9223372036854775807)::bigint FROM credit_requests
			WHERE workspace = $1 AND account = $2 AND status = 'PENDING'),
		g.ids, g.amounts, g.remaining, g.expire_times
	FROM (SELECT 1) AS one
	LEFT JOIN accounts a ON a.workspace = $1 AND a.id = $2
	LEFT JOIN settings s ON s.workspace = $1
	CROSS JOIN LATERAL (SELECT array_agg(transaction_id ORDER BY expire_time, transaction_id) AS ids,
			array_agg(amount ORDER BY expire_time, transaction_id) AS amounts,
			array_agg(remaining ORDER BY expire_time, transaction_id) AS remaining,
			array_agg(expire_time ORDER BY expire_time, transaction_id) AS expire_times
		FROM grants WHERE account = $2 AND workspace = $1 AND remaining > 0) g`

// BalanceView implements ledger.BalanceReader: Account, Settings,
// PendingCredits and Grants in one statement.
func (t *readTx) BalanceView(ctx context.Context, workspace, account string) (ledger.BalanceView, error) {
	v := ledger.BalanceView{
		Account:  ledger.Account{Workspace: workspace, ID: account},
		Settings: ledger.Settings{Workspace: workspace},
	}
	var (
		balance, version, held, lowBalance pgtype.Int8
		acctUpd, setUpd                    pgtype.Timestamptz
		enabled, distinct                  pgtype.Bool
		methods                            pgtype.FlatArray[string]
		ids                                pgtype.FlatArray[string]
		amounts, remaining                 pgtype.FlatArray[int64]
		expires                            pgtype.FlatArray[time.Time]
	)
	err := t.one(ctx, qBalanceView, workspace, []any{account},
		&balance, &version, &acctUpd, &held,
		&enabled, &distinct, &methods, &lowBalance, &setUpd,
		&v.Pending, &ids, &amounts, &remaining, &expires)
	if err != nil {
		return ledger.BalanceView{}, mapErr(ctx, "read balance", err)
	}
	if version.Valid {
		v.Account.Balance, v.Account.Version, v.Account.Held = balance.Int64, version.Int64, held.Int64
		v.Account.UpdateTime = fromTime(acctUpd)
	}
	if enabled.Valid {
		v.Settings.CreditPaymentsEnabled, v.Settings.RequireDistinctApprover = enabled.Bool, distinct.Bool
		v.Settings.LowBalanceThreshold = lowBalance.Int64
		if err := fillSettings(&v.Settings, methods, setUpd); err != nil {
			return ledger.BalanceView{}, mapErr(ctx, "read balance", err)
		}
	}
	for i := range ids {
		v.Grants = append(v.Grants, ledger.Grant{
			Workspace: workspace, Account: account, TransactionID: ids[i],
			Amount: amounts[i], Remaining: remaining[i], ExpireTime: expires[i].UTC(),
		})
	}
	return v, nil
}

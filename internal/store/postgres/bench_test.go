package postgres

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/ledger"
)

// BenchmarkWriteBatch measures one batch of the hot path as the service
// writes it under load: 32 plain credits or debits, one per account (of
// 1,000 funded ones), each with its idempotency key and its event, written one batch at
// a time on one connection, so that the time per batch is the store's and
// the server's work plus two round trips; pg-cpu-µs/op is the CPU time
// of the server's backend per batch (Linux), which the load of other
// processes disturbs less. Debits name their accounts in WriteSet.GrantsOf,
// as the domain does.
//
// The hot cases write the same 32 entries on 4 accounts, 8 each, as the
// hot scenario of make bench does: there, what each entry costs weighs
// more than what each account does.
func BenchmarkWriteBatch(b *testing.B) {
	for _, hot := range []bool{false, true} {
		for _, typ := range []ledger.TxType{ledger.TypeIn, ledger.TypeOut} {
			name := typ.String()
			if hot {
				name = "hot-" + name
			}
			b.Run(name, func(b *testing.B) { benchmarkWriteBatch(b, typ, hot) })
		}
	}
}

func benchmarkWriteBatch(b *testing.B, typ ledger.TxType, hot bool) {
	const accounts, batch, funds = 1000, 32, 1 << 40
	s := newStore(b, Options{MaxConns: 1})
	ctx := context.Background()
	state := make([]ledger.Account, accounts)
	seq := 0
	write := func(ids []int, typ ledger.TxType, amount int64) {
		set := ledger.WriteSet{Workspace: ws}
		eff := &ledger.Effects{}
		now := time.Now().UTC().Truncate(time.Microsecond)
		moved := map[int]int{} // account → its move in eff.Accounts
		for _, i := range ids {
			a := &state[i]
			m, ok := moved[i]
			if !ok {
				m = len(eff.Accounts)
				moved[i] = m
				set.Accounts = append(set.Accounts, a.ID)
				if typ == ledger.TypeOut {
					set.GrantsOf = append(set.GrantsOf, a.ID)
				}
				eff.Accounts = append(eff.Accounts, ledger.AccountMove{FromVersion: a.Version, Create: a.Version == 0})
			}
			if typ == ledger.TypeIn {
				a.Balance += amount
			} else {
				a.Balance -= amount
			}
			a.Version++
			a.UpdateTime = now
			eff.Accounts[m].Account = *a
			seq++
			id := fmt.Sprintf("t%09d", seq)
			key := ledger.PostKey(a.ID, "k"+id)
			set.Keys = append(set.Keys, key)
			tx := ledger.Transaction{
				ID: id, Workspace: ws, Account: a.ID, Type: typ, Kind: ledger.KindAdjustment, Amount: amount,
				BalanceAfter: a.Balance, AccountVersion: a.Version, IdempotencyKey: "k" + id, CreateTime: now,
			}
			eff.Transactions = append(eff.Transactions, tx)
			// The event the domain writes with each entry.
			eff.Events = append(eff.Events, ledger.Event{
				Workspace: ws, Type: ledger.EventTransactionPosted, Account: a.ID, Transaction: &tx, CreateTime: now,
			})
			op := ledger.OpCredit
			if typ == ledger.TypeOut {
				op = ledger.OpDebit
			}
			eff.Keys = append(eff.Keys, ledger.IdempotencyRecord{
				Workspace: ws, Key: key, Operation: op, Fingerprint: make([]byte, 32), TransactionID: id, CreateTime: now,
			})
		}
		if err := s.Write(ctx, set, prepared(eff)); err != nil {
			b.Fatal(err)
		}
	}
	ids := make([]int, 0, batch)
	for i := range state {
		state[i] = ledger.Account{Workspace: ws, ID: fmt.Sprintf("acct-%05d", i)}
		ids = append(ids, i)
		if len(ids) == batch || i == accounts-1 {
			write(ids, ledger.TypeIn, funds)
			ids = ids[:0]
		}
	}
	var pid int
	if err := s.Pool().QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		b.Fatal(err)
	}
	var lsn0 string
	if err := s.Pool().QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn0); err != nil {
		b.Fatal(err)
	}
	cpu0, cpuOK := backendCPU(pid)
	next := 0
	b.ResetTimer()
	for b.Loop() {
		ids = ids[:0]
		for i := range batch {
			ids = append(ids, next)
			if !hot || i%8 == 7 {
				next = (next + 1) % accounts
			}
		}
		slices.Sort(ids)
		write(ids, typ, 1)
	}
	b.StopTimer()
	if cpu1, ok := backendCPU(pid); ok && cpuOK {
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "pg-cpu-µs/op")
	}
	// What a batch writes to the WAL, which every commit waits to flush:
	// unlike times, the same in every run.
	var wal float64
	if err := s.Pool().QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)`, lsn0).Scan(&wal); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(wal/float64(b.N), "wal-B/op")
}

// backendCPU is the CPU time (user and system) of process pid so far, from
// /proc; false where there is none.
func backendCPU(pid int) (time.Duration, bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The fields after the command (which may hold spaces) in parentheses.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	const ticks = 100 // USER_HZ, the same on every Linux
	return time.Duration(utime+stime) * time.Second / ticks, true
}

package grpcserver

import (
	"bytes"
	"encoding/csv"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledger"
)

// CSVContentType is the content type of ExportTransactions' messages.
const CSVContentType = "text/csv; charset=utf-8"

// exportChunkBytes is about how much CSV one message carries: small enough
// to stream a long history without holding it, large enough that the
// framing costs nothing.
const exportChunkBytes = 32 << 10

// csvHeader are the export's columns: the portal's table first, then the
// links a reconciliation needs.
var csvHeader = []string{
	"date", "type", "kind", "reference", "amount", "balance_after",
	"id", "version", "package_id", "request_id", "reverses_transaction_id", "hold_id",
}

// ExportTransactions streams an account's history as CSV, oldest first.
//
// Nothing is sent before the first chunk is full (or the history ends),
// so that a refusal (a malformed request, an unavailable store) reaches
// the caller as a status, which the REST door turns into its HTTP status
// and JSON error, rather than after a 200 and half a file.
func (s *LedgerServer) ExportTransactions(r *pb.ExportTransactionsRequest, stream grpc.ServerStreamingServer[httpbody.HttpBody]) error {
	var f fieldErrors
	start := fromProtoTime(&f, "start_time", r.GetStartTime())
	end := fromProtoTime(&f, "end_time", r.GetEndTime())
	if err := f.err(); err != nil {
		return err
	}
	w := newCSVChunker(func(b []byte, first bool) error {
		msg := &httpbody.HttpBody{Data: b}
		if first {
			msg.ContentType = CSVContentType
		}
		return stream.SendMsg(msg)
	})
	if err := w.row(csvHeader); err != nil {
		return err
	}
	err := s.svc.ExportTransactions(stream.Context(), r.GetWorkspace(), r.GetAccount(), start, end, func(t ledger.Transaction) error {
		return w.row(csvRecord(t))
	})
	if err != nil {
		return err
	}
	return w.close()
}

// csvRecord is one entry's row. Amounts are unsigned (the type says the
// direction), so that no numeric cell starts with a sign.
func csvRecord(t ledger.Transaction) []string {
	return []string{
		t.CreateTime.UTC().Format(time.RFC3339),
		t.Type.String(),
		t.Kind.String(),
		t.Reference,
		strconv.FormatInt(t.Amount, 10),
		strconv.FormatInt(t.BalanceAfter, 10),
		t.ID,
		strconv.FormatInt(t.AccountVersion, 10),
		t.PackageID,
		t.RequestID,
		t.ReversesTransactionID,
		t.HoldID,
	}
}

// csvCell neutralises spreadsheet formula injection: a cell a spreadsheet
// would evaluate (starting with =, +, -, @, tab or carriage return) gets a
// leading single quote, which spreadsheets show as text. A reference is
// the caller's text and may be an attacker's.
func csvCell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}

// csvChunker writes CSV rows (RFC 4180 quoting) and hands them on in
// chunks of about exportChunkBytes.
type csvChunker struct {
	buf   *bytes.Buffer
	w     *csv.Writer
	send  func(b []byte, first bool) error
	sent  bool
	cells []string
}

func newCSVChunker(send func([]byte, bool) error) *csvChunker {
	c := &csvChunker{send: send}
	c.reset()
	return c
}

func (c *csvChunker) reset() {
	c.buf = bytes.NewBuffer(make([]byte, 0, exportChunkBytes+exportChunkBytes/4))
	c.w = csv.NewWriter(c.buf)
}

// row writes one record, neutralised, and sends the chunk once it is full.
func (c *csvChunker) row(rec []string) error {
	c.cells = c.cells[:0]
	for _, v := range rec {
		c.cells = append(c.cells, csvCell(v))
	}
	if err := c.w.Write(c.cells); err != nil {
		return err
	}
	c.w.Flush()
	if c.buf.Len() < exportChunkBytes {
		return nil
	}
	return c.flush()
}

// flush sends what is buffered. A message is never modified after it is
// sent: each chunk gets a fresh buffer.
func (c *csvChunker) flush() error {
	c.w.Flush()
	if err := c.w.Error(); err != nil {
		return err
	}
	if c.buf.Len() == 0 {
		return nil
	}
	b, first := c.buf.Bytes(), !c.sent
	c.reset()
	c.sent = true
	return c.send(b, first)
}

// close sends the last chunk.
func (c *csvChunker) close() error { return c.flush() }

// Package ledgerclient is the Go client of CreditLedger: what a Go service
// (checkout, invoicing, a payment webhook, the operator CLI) uses to call
// ledgerd over gRPC.
//
// It adds to the generated clients (package
// github.com/creditledger/creditledger/gen/creditledger/v1) what every
// consumer would otherwise get wrong on its own:
//
//   - a deadline on every attempt and on every call;
//   - TLS (WithTLS, TLSConfigFromFiles: a CA file, and a client
//     certificate for mTLS, re-read when renewed) and a bearer token
//     (WithToken: header "authorization: Bearer <token>");
//   - retries of exactly what is safe to retry: UNAVAILABLE,
//     DEADLINE_EXCEEDED and ABORTED/IDEMPOTENCY_KEY_IN_USE, always with the
//     same request (so the same idempotency key), with bounded exponential
//     backoff and jitter. Business refusals are never retried;
//   - typed errors: every failure is an *Error carrying the gRPC code and
//     the ledger's google.rpc.ErrorInfo reason, both as the API's
//     ErrorReason enum (Error.ErrorReason) and as the string sent
//     (Error.Reason), with its metadata and field violations. Match it with
//     errors.Is (ErrInsufficientCredits, …) or take it apart with
//     errors.As; IsRefused and IsTransient say whether the call may have
//     posted. Streams' errors too;
//   - for WatchEvents, Follow (follow.go): a stream resumed after every
//     break from the last sequence received, with backoff and jitter.
//
// The policy is a gRPC interceptor on the connection, so the raw generated
// clients returned by Ledger, Settings and Webhooks behave exactly like the
// typed methods of Client.
//
// # Writing safely
//
// Every write (Credit, Debit, holds, SubmitRequest, DecideRequest,
// ReverseTransaction) takes an idempotency key. Derive it from what makes
// the operation unique in the caller's world (the payment provider's id, an
// order's id), never from a random value drawn per attempt: when a call
// fails with an unknown outcome (IsTransient), sending the same request
// with the same key later tells what happened and never posts twice.
//
// # Errors
//
// A refusal (IsRefused) changed nothing. Switch on Error.ErrorReason, or
// use the sentinels:
//
//	var le *ledgerclient.Error
//	switch {
//	case errors.Is(err, ledgerclient.ErrInsufficientCredits):
//		// le.Metadata["balance"], le.Metadata["required"]
//	case errors.As(err, &le) && le.ErrorReason == pb.ErrorReason_ERROR_REASON_TOO_MANY_PENDING_REQUESTS:
//		// …
//	case ledgerclient.IsTransient(err):
//		// retry later with the same idempotency key
//	}
//
// The documented list of reasons is the ErrorReason enum in
// proto/creditledger/v1/errors.proto. A reason this version of the client
// does not know (a newer server) leaves ErrorReason UNSPECIFIED and Reason
// set: decide by Error.Code then.
package ledgerclient

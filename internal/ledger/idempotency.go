package ledger

// Idempotency keys are scoped (spec §11): a caller's key is remembered
// under its scope, so one client can neither squat another's key nor learn
// whether it was used. The scopes:
//
//   - Credit and Debit: the workspace and the account ("a:<account>:<key>");
//   - SubmitRequest: the workspace and the account, apart from the
//     postings ("s:<account>:<key>"), so that a client cannot claim the key
//     its checkout will credit a purchase with;
//   - DecideRequest: the workspace and the request ("d:<request>:<key>");
//   - CancelRequest: the request too, apart from its decisions
//     ("c:<request>:<key>"), so that a client's cancellation and the
//     agency's decision never meet on one key;
//   - CreateHold: the account, like the postings ("a:<account>:<key>");
//   - CaptureHold and VoidHold: the hold ("h:<hold>:<key>");
//   - ReverseTransaction: the reversed entry ("r:<entry>:<key>").
//
// Identifiers never contain ':' (see ident.Valid), so a scoped key names its
// scope unambiguously. Records hold the scoped key; transactions and
// requests keep the caller's key as given.

// PostKey is the stored key of a Credit or Debit on account.
func PostKey(account, key string) string { return "a:" + account + ":" + key }

// SubmitKey is the stored key of a SubmitRequest on account.
func SubmitKey(account, key string) string { return "s:" + account + ":" + key }

// DecideKey is the stored key of a DecideRequest on request.
func DecideKey(request, key string) string { return "d:" + request + ":" + key }

// CancelKey is the stored key of a CancelRequest of request.
func CancelKey(request, key string) string { return "c:" + request + ":" + key }

// HoldKey is the stored key of a CaptureHold or VoidHold on hold.
func HoldKey(hold, key string) string { return "h:" + hold + ":" + key }

// ReverseKey is the stored key of a ReverseTransaction of entry.
func ReverseKey(entry, key string) string { return "r:" + entry + ":" + key }

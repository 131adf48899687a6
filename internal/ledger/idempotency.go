package ledger

// Idempotency keys are scoped (spec §11): a caller's key is remembered
// under its scope, so one client can neither squat another's key nor learn
// whether it was used. The scopes:
//
//   - Credit and Debit: the workspace and the account ("a:<account>:<key>");
//   - SubmitRequest: the workspace and the account, apart from the
//     postings ("s:<account>:<key>"), so that a client cannot claim the key
//     its checkout will credit a purchase with;
//   - DecideRequest: the workspace and the request ("d:<request>:<key>").
//
// Identifiers never contain ':' (see validID), so a scoped key names its
// scope unambiguously. Records hold the scoped key; transactions and
// requests keep the caller's key as given.

// PostKey is the stored key of a Credit or Debit on account.
func PostKey(account, key string) string { return "a:" + account + ":" + key }

// SubmitKey is the stored key of a SubmitRequest on account.
func SubmitKey(account, key string) string { return "s:" + account + ":" + key }

// DecideKey is the stored key of a DecideRequest on request.
func DecideKey(request, key string) string { return "d:" + request + ":" + key }

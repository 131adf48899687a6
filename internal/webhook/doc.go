// Package webhook signs, sends and schedules the ledger's outbound webhook
// deliveries. It is a library: the delivery worker owns the queue, the
// clock and the endpoint records; this package owns what goes over the wire.
//
// Deliveries follow the Standard Webhooks specification: every request
// carries webhook-id, webhook-timestamp and webhook-signature, the signature
// being an HMAC-SHA256 under a per-endpoint secret (whsec_…). Signing and
// verifying are done by the specification's reference library so that our
// bytes match what receivers' libraries expect; this package only wraps it
// with secret validation, key rotation and a tolerance check that takes the
// time as an argument.
//
// A webhook URL is chosen by a customer, so every delivery is a request the
// customer makes from inside the operator's network. The choices below keep
// it from becoming a way in:
//
//   - The destination address is checked when the socket is about to
//     connect (net.Dialer.Control), after DNS resolution, for every address
//     tried. A name that resolves, or later re-resolves (DNS rebinding), to
//     loopback, private, link-local (cloud metadata at 169.254.169.254),
//     shared, multicast or reserved space is refused before a packet is
//     sent. ValidateURL refuses the same literal addresses early, with a
//     clear message, when the endpoint is registered; the dial check is the
//     one that counts.
//   - Redirects are not followed: a 3xx is a failed attempt. Following one
//     would let a public endpoint point the request anywhere after the URL
//     was validated.
//   - No proxy is taken from the environment, so HTTP_PROXY cannot route
//     deliveries through a host the address check never sees.
//   - Every phase has a timeout and only a bounded part of a response is
//     read, so a slow or hostile receiver costs a bounded amount of a
//     worker's time and memory.
//   - Errors shown to the endpoint's owner name only the kind of failure
//     ("timeout", "address not allowed"), never a resolved address or an
//     internal message: those would let a customer map the operator's
//     network by registering URLs and reading delivery logs.
//
// One setting, AllowPrivate (the allowInsecure argument of ValidateURL),
// turns off both the address check and the https requirement. It exists for
// development and tests against receivers on the same machine, and must
// stay off in production.
//
// Retries follow NextDelay (exponential with jitter, capped) until GiveUp
// says RetryWindow has passed since the first attempt, after which the
// worker disables the endpoint.
package webhook

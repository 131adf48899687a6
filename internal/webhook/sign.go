package webhook

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Header names of the Standard Webhooks specification.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every secret, so a leaked one is recognisable by
// secret scanners and cannot be mistaken for another kind of key.
const SecretPrefix = "whsec_"

// Tolerance is how far a signed timestamp may be from the verifier's clock.
// It bounds how long a captured request can be replayed.
const Tolerance = 5 * time.Minute

// secretBytes is the length of the keys NewSecret makes; minKeyBytes and
// maxKeyBytes are the specification's bounds for any key we accept.
const (
	secretBytes = 32
	minKeyBytes = 24
	maxKeyBytes = 64
)

// Errors returned by NewSigner, Verify and VerifyAt; test with errors.Is.
var (
	// ErrInvalidSecret: the secret is not base64 of 24 to 64 bytes.
	ErrInvalidSecret = errors.New("webhook: invalid secret")
	// ErrInvalidSignature: headers are missing or malformed, or no
	// signature matches the body.
	ErrInvalidSignature = errors.New("webhook: invalid signature")
	// ErrTimestampOutOfTolerance: the signed timestamp is more than
	// Tolerance away from now.
	ErrTimestampOutOfTolerance = errors.New("webhook: timestamp outside tolerance")
)

// NewSecret returns a new endpoint secret: SecretPrefix followed by the
// standard base64 of 32 random bytes.
func NewSecret() (string, error) {
	key := make([]byte, secretBytes)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("webhook: new secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// Signer produces webhook-signature header values. It holds one or more
// secrets: during a secret rotation an endpoint is signed with both the new
// and the old secret, so receivers that know either accept the request.
// The zero Signer has no secret and fails to sign.
type Signer struct {
	keys []*standardwebhooks.Webhook
}

// NewSigner returns a Signer for the given secrets (at least one), each
// SecretPrefix followed by base64 of 24 to 64 bytes. The prefix may be
// omitted, as receivers' libraries allow.
func NewSigner(secrets ...string) (Signer, error) {
	if len(secrets) == 0 {
		return Signer{}, fmt.Errorf("%w: none given", ErrInvalidSecret)
	}
	keys := make([]*standardwebhooks.Webhook, 0, len(secrets))
	for i, s := range secrets {
		k, err := parseSecret(s)
		if err != nil {
			// The secret itself never goes into an error: errors get logged.
			return Signer{}, fmt.Errorf("secret %d: %w", i, err)
		}
		keys = append(keys, k)
	}
	return Signer{keys: keys}, nil
}

// Sign returns the webhook-signature header value for a message: one
// "v1,<base64 HMAC-SHA256>" per secret, separated by spaces. ts is sent as
// webhook-timestamp and must be the time of this attempt, not of the event:
// receivers refuse timestamps older than a few minutes.
func (s Signer) Sign(msgID string, ts time.Time, body []byte) (string, error) {
	if len(s.keys) == 0 {
		return "", fmt.Errorf("%w: signer has no secret", ErrInvalidSecret)
	}
	if msgID == "" {
		return "", errors.New("webhook: sign: empty message id")
	}
	sigs := make([]string, 0, len(s.keys))
	for _, k := range s.keys {
		sig, err := k.Sign(msgID, ts, body)
		if err != nil {
			return "", fmt.Errorf("webhook: sign: %w", err)
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}

// Verify checks a received webhook as a receiver would: the signature
// header must hold at least one v1 signature of the body under secret, and
// the timestamp must be within Tolerance of the current time.
func Verify(secret string, header http.Header, body []byte) error {
	return VerifyAt(secret, header, body, time.Now())
}

// VerifyAt is Verify with the current time given, for tests and for
// receivers with their own clock.
func VerifyAt(secret string, header http.Header, body []byte, now time.Time) error {
	k, err := parseSecret(secret)
	if err != nil {
		return err
	}
	// The library's own tolerance check reads the wall clock; ours takes
	// now, so it is done here and the library only checks the signature.
	raw := header.Get(HeaderTimestamp)
	sec, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: malformed %s", ErrInvalidSignature, HeaderTimestamp)
	}
	ts := time.Unix(sec, 0)
	if d := now.Sub(ts); d > Tolerance || d < -Tolerance {
		return fmt.Errorf("%w: %s is %s away from now", ErrTimestampOutOfTolerance, HeaderTimestamp, d.Abs().Truncate(time.Second))
	}
	if err := k.VerifyIgnoringTimestamp(body, header); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSignature, err)
	}
	return nil
}

// parseSecret decodes a secret and checks its length before it reaches the
// library, which would accept an empty key.
func parseSecret(s string) (*standardwebhooks.Webhook, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, SecretPrefix))
	if err != nil {
		return nil, fmt.Errorf("%w: not base64", ErrInvalidSecret)
	}
	if len(key) < minKeyBytes || len(key) > maxKeyBytes {
		return nil, fmt.Errorf("%w: %d bytes, want %d to %d", ErrInvalidSecret, len(key), minKeyBytes, maxKeyBytes)
	}
	k, err := standardwebhooks.NewWebhookRaw(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSecret, err)
	}
	return k, nil
}

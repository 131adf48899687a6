package token

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults of VerifierOptions.
const (
	DefaultIssuer      = "creditledger"
	DefaultAudience    = "creditledger"
	DefaultMaxLifetime = 24 * time.Hour
	DefaultLeeway      = 30 * time.Second
	// MinSecretLength is the shortest development HS256 secret (256 bits).
	MinSecretLength = 32
	// MaxTokenLength bounds the work done on an untrusted header.
	MaxTokenLength = 4096
)

// VerifierOptions configure a Verifier.
type VerifierOptions struct {
	// Keys verify EdDSA and ES256 tokens by kid.
	Keys *KeySet
	// DevSecret, when set, also accepts HS256 tokens signed with it, for
	// development only: whoever knows it can mint every role.
	DevSecret []byte
	// Issuer and Audience are required values of iss and aud (defaults
	// DefaultIssuer, DefaultAudience).
	Issuer   string
	Audience string
	// MaxLifetime bounds exp − iat (default DefaultMaxLifetime).
	MaxLifetime time.Duration
	// Leeway tolerates clock skew on exp, nbf and iat (default DefaultLeeway).
	Leeway time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Verifier checks bearer tokens. Its key set can be replaced while it
// serves (key rotation).
type Verifier struct {
	keys   atomic.Pointer[KeySet]
	secret []byte
	opts   VerifierOptions
	parser *jwt.Parser
}

// NewVerifier returns a Verifier; at least one of Keys and DevSecret is required.
func NewVerifier(o VerifierOptions) (*Verifier, error) {
	if o.Keys == nil && len(o.DevSecret) == 0 {
		return nil, errors.New("token: a key set (or, in development, a secret) is required")
	}
	if len(o.DevSecret) > 0 && len(o.DevSecret) < MinSecretLength {
		return nil, fmt.Errorf("token: the development secret must be at least %d bytes", MinSecretLength)
	}
	if o.Issuer == "" {
		o.Issuer = DefaultIssuer
	}
	if o.Audience == "" {
		o.Audience = DefaultAudience
	}
	if o.MaxLifetime <= 0 {
		o.MaxLifetime = DefaultMaxLifetime
	}
	if o.Leeway <= 0 {
		o.Leeway = DefaultLeeway
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	methods := []string{AlgEdDSA, AlgES256}
	if len(o.DevSecret) > 0 {
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	v := &Verifier{secret: slices.Clone(o.DevSecret), opts: o}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(methods),
		jwt.WithIssuer(o.Issuer),
		jwt.WithAudience(o.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(o.Leeway),
		jwt.WithTimeFunc(o.Now),
		jwt.WithStrictDecoding(),
	)
	if o.Keys != nil {
		v.keys.Store(o.Keys)
	}
	return v, nil
}

// SetKeys replaces the key set: keys added since verify at once, keys
// removed stop verifying.
func (v *Verifier) SetKeys(ks *KeySet) { v.keys.Store(ks) }

// Keys returns the current key set (nil in development mode).
func (v *Verifier) Keys() *KeySet { return v.keys.Load() }

// Verify checks raw's signature and claims and returns them. Nothing in
// the token is trusted before its signature is; the errors say what
// failed, for the server's log, and are not meant for the caller.
func (v *Verifier) Verify(raw string) (Claims, error) {
	if len(raw) > MaxTokenLength {
		return Claims{}, errors.New("token too long")
	}
	var roles []Role
	var c Claims
	_, err := v.parser.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		alg := t.Method.Alg()
		if alg == jwt.SigningMethodHS256.Alg() {
			if len(v.secret) == 0 {
				return nil, errors.New("HS256 is accepted in development only")
			}
			roles = Roles
			return v.secret, nil
		}
		ks := v.keys.Load()
		if ks == nil {
			return nil, fmt.Errorf("no key set for %s tokens", alg)
		}
		k, ok := ks.lookup(kid)
		if !ok {
			return nil, fmt.Errorf("unknown key id %q", kid)
		}
		if k.Alg != alg {
			return nil, fmt.Errorf("key %q is %s, the token says %s", kid, k.Alg, alg)
		}
		roles = k.Roles
		return k.Key, nil
	})
	if err != nil {
		return Claims{}, err
	}
	if c.IssuedAt == nil {
		return Claims{}, errors.New("token has no iat")
	}
	if life := c.ExpiresAt.Sub(c.IssuedAt.Time); life > v.opts.MaxLifetime {
		return Claims{}, fmt.Errorf("token lives %v, more than the %v allowed", life, v.opts.MaxLifetime)
	}
	if err := c.checkGrant(); err != nil {
		return Claims{}, err
	}
	if !slices.Contains(roles, c.Role) {
		return Claims{}, fmt.Errorf("the signing key may not mint %s tokens", c.Role)
	}
	return c, nil
}

// Mint signs c with k. The key must be allowed c's role, and c must be a
// coherent grant with iss, aud, iat and exp set.
func Mint(k SigningKey, c Claims) (string, error) {
	if !slices.Contains(k.Roles, c.Role) {
		return "", fmt.Errorf("key %q may not mint %s tokens (it may mint %v)", k.ID, c.Role, k.Roles)
	}
	var m jwt.SigningMethod
	switch k.Alg {
	case AlgEdDSA:
		m = jwt.SigningMethodEdDSA
	case AlgES256:
		m = jwt.SigningMethodES256
	default:
		return "", fmt.Errorf("key %q: unsupported alg %q", k.ID, k.Alg)
	}
	if err := c.checkMint(); err != nil {
		return "", err
	}
	t := jwt.NewWithClaims(m, c)
	t.Header["kid"] = k.ID
	return t.SignedString(k.Signer)
}

// MintDev signs c with a development HS256 secret.
func MintDev(secret []byte, c Claims) (string, error) {
	if len(secret) < MinSecretLength {
		return "", fmt.Errorf("the development secret must be at least %d bytes", MinSecretLength)
	}
	if err := c.checkMint(); err != nil {
		return "", err
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

func (c *Claims) checkMint() error {
	if c.Issuer == "" || len(c.Audience) == 0 || c.IssuedAt == nil || c.ExpiresAt == nil {
		return errors.New("a token needs iss, aud, iat and exp")
	}
	return c.checkGrant()
}

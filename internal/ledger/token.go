package ledger

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"sort"
)

// fingerprint hashes the meaning of an idempotent request. Fields are
// length-prefixed so that no two different requests share an encoding.
type fingerprint struct{ h hash.Hash }

func newFingerprint(op Operation) *fingerprint {
	f := &fingerprint{h: sha256.New()}
	f.str(string(op))
	return f
}

func (f *fingerprint) str(s string) *fingerprint {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(s)))
	f.h.Write(n[:])
	f.h.Write([]byte(s))
	return f
}

func (f *fingerprint) int(i int64) *fingerprint {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(i))
	f.h.Write(n[:])
	return f
}

func (f *fingerprint) optInt(p *int64) *fingerprint {
	if p == nil {
		return f.int(0)
	}
	return f.int(1).int(*p)
}

func (f *fingerprint) strMap(m map[string]string) *fingerprint {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	f.int(int64(len(keys)))
	for _, k := range keys {
		f.str(k).str(m[k])
	}
	return f
}

func (f *fingerprint) sum() []byte { return f.h.Sum(nil) }

// PageTokens signs and checks opaque page tokens. A token is bound to the
// listing it came from (workspace, account, filters) by a digest of them,
// and authenticated with HMAC-SHA-256 so a forged or altered token is
// refused. Tokens from one server verify on every replica sharing the key.
type PageTokens struct{ key []byte }

// NewPageTokens returns a signer with key; an empty key gets a random one
// (tokens then do not survive a restart or cross replicas).
func NewPageTokens(key []byte) *PageTokens {
	if len(key) == 0 {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			panic("crypto/rand: " + err.Error())
		}
	}
	return &PageTokens{key: append([]byte(nil), key...)}
}

const (
	tokenVersion = 1
	tokenMACLen  = 16
	bindLen      = 16
)

// binding digests what a token is bound to.
func binding(parts ...string) []byte {
	f := newFingerprint("page")
	for _, p := range parts {
		f.str(p)
	}
	return f.sum()[:bindLen]
}

// Encode returns a token carrying cursor for the listing identified by bind.
func (p *PageTokens) Encode(bind []byte, cursor string) string {
	buf := make([]byte, 0, 1+bindLen+len(cursor)+tokenMACLen)
	buf = append(buf, tokenVersion)
	buf = append(buf, bind...)
	buf = append(buf, cursor...)
	buf = append(buf, p.mac(buf)...)
	return base64.RawURLEncoding.EncodeToString(buf)
}

// Decode verifies a token against the listing identified by bind and
// returns its cursor. Any mismatch is INVALID_ARGUMENT on page_token.
func (p *PageTokens) Decode(bind []byte, token string) (string, error) {
	bad := invalid("page_token", "is invalid, or was issued for a different listing or filter")
	if len(token) > 512 {
		return "", bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) < 1+bindLen+tokenMACLen || raw[0] != tokenVersion {
		return "", bad
	}
	body, mac := raw[:len(raw)-tokenMACLen], raw[len(raw)-tokenMACLen:]
	if !hmac.Equal(mac, p.mac(body)) {
		return "", bad
	}
	if !hmac.Equal(body[1:1+bindLen], bind) {
		return "", bad
	}
	return string(body[1+bindLen:]), nil
}

func (p *PageTokens) mac(b []byte) []byte {
	m := hmac.New(sha256.New, p.key)
	m.Write(b)
	return m.Sum(nil)[:tokenMACLen]
}

package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// Algorithms a key may have. HS256 is not among them: shared secrets are
// for development only and never come from a JWKS.
const (
	AlgEdDSA = "EdDSA"
	AlgES256 = "ES256"
)

// maxJWKSBytes bounds a key file: a key set is a few hundred bytes a key.
const maxJWKSBytes = 1 << 20

// jwk is a JSON Web Key (RFC 7517) as CreditLedger writes and reads it.
// Roles is CreditLedger's own member: the roles the key may mint.
type jwk struct {
	Kty   string   `json:"kty"`
	Crv   string   `json:"crv"`
	X     string   `json:"x"`
	Y     string   `json:"y,omitempty"`
	D     string   `json:"d,omitempty"`
	Kid   string   `json:"kid"`
	Alg   string   `json:"alg"`
	Use   string   `json:"use,omitempty"`
	Roles []string `json:"creditledger_roles"`
}

// PublicKey is a verification key of a key set.
type PublicKey struct {
	ID    string
	Alg   string
	Key   crypto.PublicKey // ed25519.PublicKey or *ecdsa.PublicKey
	Roles []Role
}

// KeySet is the set of verification keys, by key id.
type KeySet struct {
	keys map[string]PublicKey
}

// Len is the number of keys.
func (s *KeySet) Len() int { return len(s.keys) }

// IDs returns the key ids, sorted.
func (s *KeySet) IDs() []string {
	ids := make([]string, 0, len(s.keys))
	for id := range s.keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (s *KeySet) lookup(kid string) (PublicKey, bool) {
	k, ok := s.keys[kid]
	return k, ok
}

// LoadJWKS reads a key set from a JWKS file.
func LoadJWKS(path string) (*KeySet, error) {
	data, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	ks, err := ParseJWKS(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ks, nil
}

// ParseJWKS reads a key set: {"keys":[…]}, each key with a unique kid, an
// alg of EdDSA (OKP, Ed25519) or ES256 (EC, P-256), and the roles it may
// mint. A private member ("d") is refused: the server needs no private key,
// and a file that holds one is in the wrong place.
func ParseJWKS(data []byte) (*KeySet, error) {
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not a JWKS document: %w", err)
	}
	if len(doc.Keys) == 0 {
		return nil, errors.New("the key set holds no key")
	}
	ks := &KeySet{keys: make(map[string]PublicKey, len(doc.Keys))}
	for i, k := range doc.Keys {
		if k.D != "" {
			return nil, fmt.Errorf("key %d (%q) holds a private key: publish only the public half", i, k.Kid)
		}
		pub, err := k.public()
		if err != nil {
			return nil, fmt.Errorf("key %d (%q): %w", i, k.Kid, err)
		}
		if _, dup := ks.keys[pub.ID]; dup {
			return nil, fmt.Errorf("key id %q appears twice", pub.ID)
		}
		ks.keys[pub.ID] = pub
	}
	return ks, nil
}

func (k jwk) public() (PublicKey, error) {
	if k.Kid == "" || len(k.Kid) > 128 {
		return PublicKey{}, errors.New("kid must be 1-128 characters")
	}
	if k.Use != "" && k.Use != "sig" {
		return PublicKey{}, fmt.Errorf("use %q: only signature keys are accepted", k.Use)
	}
	roles, err := parseRoles(k.Roles)
	if err != nil {
		return PublicKey{}, err
	}
	p := PublicKey{ID: k.Kid, Alg: k.Alg, Roles: roles}
	switch {
	case k.Kty == "OKP" && k.Crv == "Ed25519" && k.Alg == AlgEdDSA:
		x, err := b64(k.X, ed25519.PublicKeySize)
		if err != nil {
			return PublicKey{}, fmt.Errorf("x: %w", err)
		}
		p.Key = ed25519.PublicKey(x)
	case k.Kty == "EC" && k.Crv == "P-256" && k.Alg == AlgES256:
		x, err := b64(k.X, 32)
		if err != nil {
			return PublicKey{}, fmt.Errorf("x: %w", err)
		}
		y, err := b64(k.Y, 32)
		if err != nil {
			return PublicKey{}, fmt.Errorf("y: %w", err)
		}
		// Uncompressed point encoding; NewPublicKey refuses points off the curve.
		pk, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return PublicKey{}, fmt.Errorf("not a P-256 point: %w", err)
		}
		p.Key = pk
	default:
		return PublicKey{}, fmt.Errorf("unsupported key (kty %q, crv %q, alg %q): want OKP/Ed25519/EdDSA or EC/P-256/ES256", k.Kty, k.Crv, k.Alg)
	}
	return p, nil
}

func parseRoles(names []string) ([]Role, error) {
	if len(names) == 0 {
		return nil, errors.New("creditledger_roles must list the roles the key may mint (client, admin, service)")
	}
	var roles []Role
	for _, n := range names {
		r, err := ParseRole(n)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(roles, r) {
			roles = append(roles, r)
		}
	}
	return roles, nil
}

func b64(s string, size int) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("not unpadded base64url")
	}
	if len(b) != size {
		return nil, fmt.Errorf("%d bytes, want %d", len(b), size)
	}
	return b, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path) //nolint:gosec // G304: the operator names the key file
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxJWKSBytes)
	}
	return data, nil
}

// SigningKey is a private key that mints tokens for the roles it names.
type SigningKey struct {
	ID     string
	Alg    string
	Signer crypto.Signer // ed25519.PrivateKey or *ecdsa.PrivateKey
	Roles  []Role
}

// GenerateKey makes a new signing key.
func GenerateKey(alg, kid string, roles []Role) (SigningKey, error) {
	if kid == "" || len(kid) > 128 {
		return SigningKey{}, errors.New("kid must be 1-128 characters")
	}
	if len(roles) == 0 {
		return SigningKey{}, errors.New("a key must be allowed at least one role")
	}
	k := SigningKey{ID: kid, Alg: alg, Roles: slices.Clone(roles)}
	switch alg {
	case AlgEdDSA:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return SigningKey{}, err
		}
		k.Signer = priv
	case AlgES256:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return SigningKey{}, err
		}
		k.Signer = priv
	default:
		return SigningKey{}, fmt.Errorf("alg %q: want %s or %s", alg, AlgEdDSA, AlgES256)
	}
	return k, nil
}

// LoadSigningKey reads a private JWK (as `ledgerd keygen` writes it).
func LoadSigningKey(path string) (SigningKey, error) {
	data, err := readBounded(path)
	if err != nil {
		return SigningKey{}, err
	}
	k, err := ParseSigningKey(data)
	if err != nil {
		return SigningKey{}, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// ParseSigningKey reads a private JWK.
func ParseSigningKey(data []byte) (SigningKey, error) {
	var k jwk
	if err := json.Unmarshal(data, &k); err != nil {
		return SigningKey{}, fmt.Errorf("not a JWK: %w", err)
	}
	pub, err := k.public()
	if err != nil {
		return SigningKey{}, err
	}
	s := SigningKey{ID: pub.ID, Alg: pub.Alg, Roles: pub.Roles}
	switch pk := pub.Key.(type) {
	case ed25519.PublicKey:
		seed, err := b64(k.D, ed25519.SeedSize)
		if err != nil {
			return SigningKey{}, fmt.Errorf("d: %w", err)
		}
		priv := ed25519.NewKeyFromSeed(seed)
		if !pk.Equal(priv.Public()) {
			return SigningKey{}, errors.New("d does not match x")
		}
		s.Signer = priv
	case *ecdsa.PublicKey:
		d, err := b64(k.D, 32)
		if err != nil {
			return SigningKey{}, fmt.Errorf("d: %w", err)
		}
		priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
		if err != nil {
			return SigningKey{}, fmt.Errorf("d: %w", err)
		}
		if !pk.Equal(priv.Public()) {
			return SigningKey{}, errors.New("d does not match x and y")
		}
		s.Signer = priv
	}
	return s, nil
}

// PrivateJWK returns the key as a private JWK, to be kept secret.
func (k SigningKey) PrivateJWK() ([]byte, error) {
	j, err := k.jwk(true)
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(j, "", "  ")
}

// PublicJWKS returns a key set holding the public halves of keys: the
// file ledgerd verifies with.
func PublicJWKS(keys ...SigningKey) ([]byte, error) {
	doc := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, k := range keys {
		j, err := k.jwk(false)
		if err != nil {
			return nil, err
		}
		doc.Keys = append(doc.Keys, j)
	}
	return json.MarshalIndent(doc, "", "  ")
}

func (k SigningKey) jwk(private bool) (jwk, error) {
	enc := base64.RawURLEncoding.EncodeToString
	j := jwk{Kid: k.ID, Alg: k.Alg, Use: "sig"}
	for _, r := range k.Roles {
		j.Roles = append(j.Roles, string(r))
	}
	switch priv := k.Signer.(type) {
	case ed25519.PrivateKey:
		j.Kty, j.Crv = "OKP", "Ed25519"
		j.X = enc(priv.Public().(ed25519.PublicKey))
		if private {
			j.D = enc(priv.Seed())
		}
	case *ecdsa.PrivateKey:
		j.Kty, j.Crv = "EC", "P-256"
		raw, err := priv.PublicKey.Bytes() // 0x04 || X || Y
		if err != nil {
			return jwk{}, err
		}
		j.X, j.Y = enc(raw[1:33]), enc(raw[33:65])
		if private {
			d, err := priv.Bytes()
			if err != nil {
				return jwk{}, err
			}
			j.D = enc(d)
		}
	default:
		return jwk{}, fmt.Errorf("unsupported signer %T", k.Signer)
	}
	return j, nil
}

// AddToJWKS returns the key set of the JWKS file at path (empty if the
// file does not exist) with k's public half added. A kid already in the
// set is refused.
func AddToJWKS(path string, k SigningKey) ([]byte, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	data, err := readBounded(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		ks, err := ParseJWKS(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if _, dup := ks.lookup(k.ID); dup {
			return nil, fmt.Errorf("%s already holds a key %q", path, k.ID)
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			return nil, err
		}
	}
	j, err := k.jwk(false)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	doc.Keys = append(doc.Keys, raw)
	return json.MarshalIndent(doc, "", "  ")
}

package webhook

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The example of the Standard Webhooks specification.
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specMsgID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specPayload   = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignSpecVector(t *testing.T) {
	t.Parallel()
	s := mustSigner(t, specSecret)
	got, err := s.Sign(specMsgID, time.Unix(specTimestamp, 0), []byte(specPayload))
	if err != nil {
		t.Fatal(err)
	}
	if got != specSignature {
		t.Errorf("Sign = %q, want %q", got, specSignature)
	}
	h := headers(specMsgID, specTimestamp, specSignature)
	if err := VerifyAt(specSecret, h, []byte(specPayload), time.Unix(specTimestamp, 0)); err != nil {
		t.Errorf("VerifyAt(spec example) = %v", err)
	}
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	a, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Errorf("two secrets are equal: %q", a)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, SecretPrefix))
	if !strings.HasPrefix(a, SecretPrefix) || err != nil || len(key) != 32 {
		t.Errorf("NewSecret = %q: want %s + base64 of 32 bytes (decode: %d bytes, %v)", a, SecretPrefix, len(key), err)
	}
	if _, err := NewSigner(a); err != nil {
		t.Errorf("NewSigner(NewSecret()) = %v", err)
	}
}

func TestNewSignerRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		secrets []string
	}{
		{"none", nil},
		{"empty", []string{""}},
		{"prefix only", []string{SecretPrefix}},
		{"not base64", []string{SecretPrefix + "not base64!"}},
		{"too short", []string{SecretPrefix + base64.StdEncoding.EncodeToString(make([]byte, 23))}},
		{"too long", []string{SecretPrefix + base64.StdEncoding.EncodeToString(make([]byte, 65))}},
		{"second bad", []string{specSecret, "whsec_x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewSigner(tc.secrets...); !errors.Is(err, ErrInvalidSecret) {
				t.Errorf("NewSigner = %v, want %v", err, ErrInvalidSecret)
			}
		})
	}
	if _, err := (Signer{}).Sign("msg", time.Now(), nil); !errors.Is(err, ErrInvalidSecret) {
		t.Errorf("zero Signer: Sign = %v, want %v", err, ErrInvalidSecret)
	}
}

func TestSignVerify(t *testing.T) {
	t.Parallel()
	secret, other := mustSecret(t), mustSecret(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"type":"credits.granted","data":{"amount":100}}`)
	sign := func(t testing.TB, secrets ...string) string {
		t.Helper()
		sig, err := mustSigner(t, secrets...).Sign("evt_1", now, body)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}

	for _, tc := range []struct {
		name    string
		secret  string // the receiver's
		header  http.Header
		body    []byte
		now     time.Time
		wantErr error
	}{
		{
			name: "valid", secret: secret, body: body, now: now,
			header: headers("evt_1", now.Unix(), sign(t, secret)),
		},
		{
			name: "secret without prefix", secret: strings.TrimPrefix(secret, SecretPrefix), body: body, now: now,
			header: headers("evt_1", now.Unix(), sign(t, secret)),
		},
		{
			name: "rotation: receiver knows the old secret", secret: other, body: body, now: now,
			header: headers("evt_1", now.Unix(), sign(t, secret, other)),
		},
		{
			name: "unknown version before a valid one", secret: secret, body: body, now: now,
			header: headers("evt_1", now.Unix(), "v2,AAAA "+sign(t, secret)),
		},
		{
			name: "at the edge of tolerance", secret: secret, body: body, now: now.Add(Tolerance),
			header: headers("evt_1", now.Unix(), sign(t, secret)),
		},
		{
			name: "tampered body", secret: secret, body: []byte(`{"type":"credits.granted","data":{"amount":1000}}`), now: now,
			header: headers("evt_1", now.Unix(), sign(t, secret)), wantErr: ErrInvalidSignature,
		},
		{
			name: "other message id", secret: secret, body: body, now: now,
			header: headers("evt_2", now.Unix(), sign(t, secret)), wantErr: ErrInvalidSignature,
		},
		{
			name: "timestamp moved within tolerance", secret: secret, body: body, now: now,
			header: headers("evt_1", now.Unix()-1, sign(t, secret)), wantErr: ErrInvalidSignature,
		},
		{
			name: "wrong secret", secret: other, body: body, now: now,
			header: headers("evt_1", now.Unix(), sign(t, secret)), wantErr: ErrInvalidSignature,
		},
		{
			name: "too old", secret: secret, body: body, now: now.Add(Tolerance + time.Second),
			header: headers("evt_1", now.Unix(), sign(t, secret)), wantErr: ErrTimestampOutOfTolerance,
		},
		{
			name: "too new", secret: secret, body: body, now: now.Add(-Tolerance - time.Second),
			header: headers("evt_1", now.Unix(), sign(t, secret)), wantErr: ErrTimestampOutOfTolerance,
		},
		{
			name: "no signature", secret: secret, body: body, now: now,
			header: headers("evt_1", now.Unix(), ""), wantErr: ErrInvalidSignature,
		},
		{
			name: "no id", secret: secret, body: body, now: now,
			header: headers("", now.Unix(), sign(t, secret)), wantErr: ErrInvalidSignature,
		},
		{
			name: "malformed timestamp", secret: secret, body: body, now: now,
			header: func() http.Header {
				h := headers("evt_1", now.Unix(), sign(t, secret))
				h.Set(HeaderTimestamp, "yesterday")
				return h
			}(),
			wantErr: ErrInvalidSignature,
		},
		{
			name: "bad receiver secret", secret: "whsec_short", body: body, now: now,
			header: headers("evt_1", now.Unix(), sign(t, secret)), wantErr: ErrInvalidSecret,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := VerifyAt(tc.secret, tc.header, tc.body, tc.now)
			if !errors.Is(err, tc.wantErr) || (err != nil) != (tc.wantErr != nil) {
				t.Errorf("VerifyAt = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestVerifyUsesTheClock(t *testing.T) {
	t.Parallel()
	secret := mustSecret(t)
	body := []byte(`{}`)
	for _, tc := range []struct {
		name    string
		ts      time.Time
		wantErr error
	}{
		{"now", time.Now(), nil},
		{"an hour ago", time.Now().Add(-time.Hour), ErrTimestampOutOfTolerance},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sig, err := mustSigner(t, secret).Sign("evt_1", tc.ts, body)
			if err != nil {
				t.Fatal(err)
			}
			if err := Verify(secret, headers("evt_1", tc.ts.Unix(), sig), body); !errors.Is(err, tc.wantErr) {
				t.Errorf("Verify = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func mustSecret(t testing.TB) string {
	t.Helper()
	s, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustSigner(t testing.TB, secrets ...string) Signer {
	t.Helper()
	s, err := NewSigner(secrets...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// headers returns the Standard Webhooks headers, leaving out empty ones.
func headers(id string, unix int64, sig string) http.Header {
	h := http.Header{}
	if id != "" {
		h.Set(HeaderID, id)
	}
	h.Set(HeaderTimestamp, strconv.FormatInt(unix, 10))
	if sig != "" {
		h.Set(HeaderSignature, sig)
	}
	return h
}

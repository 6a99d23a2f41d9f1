package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	secret = []byte("0123456789abcdef0123456789abcdef")
	now    = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

// sign builds a token with any header and claims, HMAC-SHA256-signed with key.
func sign(t *testing.T, key []byte, header, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	unsigned := enc(header) + "." + enc(claims)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(unsigned))
	return unsigned + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func claims(mod func(map[string]any)) map[string]any {
	c := map[string]any{"sub": "alice", "aud": "xrooms:games/lobby", "exp": now.Add(time.Hour).Unix()}
	if mod != nil {
		mod(c)
	}
	return c
}

var hs256 = map[string]any{"alg": "HS256", "typ": "JWT"}

func TestVerify(t *testing.T) {
	v, err := NewVerifier(secret, "games", "lobby", func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	minted, err := Mint(secret, "games", "lobby", "bob", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	algNone, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims(claims(nil))).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	valid := sign(t, secret, hs256, claims(nil))
	service, err := MintService(secret, "games", "lobby", "matchmaker", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		token   string
		user    string
		err     error
		service bool
	}{
		{"minted", minted, "bob", nil, false},
		{"minted for a service", service, "matchmaker", nil, true},
		{"unknown role", sign(t, secret, hs256, claims(func(c map[string]any) { c["role"] = "admin" })), "", ErrClaims, false},
		{"hand signed", valid, "alice", nil, false},
		{"audience list", sign(t, secret, hs256, claims(func(c map[string]any) { c["aud"] = []string{"other", "xrooms:games/lobby"} })), "alice", nil, false},
		{"expired within leeway", sign(t, secret, hs256, claims(func(c map[string]any) { c["exp"] = now.Add(-20 * time.Second).Unix() })), "alice", nil, false},
		{"missing", "", "", ErrNoToken, false},
		{"expired", sign(t, secret, hs256, claims(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() })), "", ErrExpired, false},
		{"not yet valid", sign(t, secret, hs256, claims(func(c map[string]any) { c["nbf"] = now.Add(time.Minute).Unix() })), "", ErrExpired, false},
		{"no exp", sign(t, secret, hs256, claims(func(c map[string]any) { delete(c, "exp") })), "", ErrClaims, false},
		{"no sub", sign(t, secret, hs256, claims(func(c map[string]any) { delete(c, "sub") })), "", ErrClaims, false},
		{"long sub", sign(t, secret, hs256, claims(func(c map[string]any) { c["sub"] = strings.Repeat("a", 257) })), "", ErrClaims, false},
		{"bad signature", sign(t, []byte("another secret, 32 bytes or more"), hs256, claims(nil)), "", ErrSignature, false},
		{"tampered claims", strings.Replace(valid, valid[strings.IndexByte(valid, '.')+1:strings.LastIndexByte(valid, '.')],
			base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"mallory","aud":"xrooms:games/lobby","exp":9999999999}`)), 1), "", ErrSignature, false},
		{"alg none", algNone, "", ErrSignature, false},
		{"alg none signed with the secret", sign(t, secret, map[string]any{"alg": "none"}, claims(nil)), "", ErrSignature, false},
		{"alg HS512 header signed HS256", sign(t, secret, map[string]any{"alg": "HS512"}, claims(nil)), "", ErrSignature, false},
		{"other room", sign(t, secret, hs256, claims(func(c map[string]any) { c["aud"] = "xrooms:games/hall" })), "", ErrOtherRoom, false},
		{"other namespace", sign(t, secret, hs256, claims(func(c map[string]any) { c["aud"] = "xrooms:default/lobby" })), "", ErrOtherRoom, false},
		{"no audience", sign(t, secret, hs256, claims(func(c map[string]any) { delete(c, "aud") })), "", ErrClaims, false},
		{"two parts", "abc.def", "", ErrMalformed, false},
		{"four parts", valid + ".x", "", ErrMalformed, false},
		{"garbage", "not a token at all", "", ErrMalformed, false},
		{"too long", strings.Repeat("a", MaxTokenLen) + "..", "", ErrMalformed, false},
		{"bad base64 signature", valid[:len(valid)-1] + "!", "", ErrSignature, false},
		{"signed garbage", func() string {
			mac := hmac.New(sha256.New, secret)
			mac.Write([]byte("x.y"))
			return "x.y." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
		}(), "", ErrMalformed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.Verify(tt.token)
			if !errors.Is(err, tt.err) || id.User != tt.user || id.Service != tt.service {
				t.Fatalf("Verify = %+v, %v; want %q (service %v), %v", id, err, tt.user, tt.service, tt.err)
			}
		})
	}
}

func TestSecretLength(t *testing.T) {
	if _, err := NewVerifier([]byte("short"), "ns", "room", nil); err == nil {
		t.Fatal("a 5-byte secret was accepted")
	}
	if _, err := Mint([]byte("short"), "ns", "room", "alice", time.Hour, now); err == nil {
		t.Fatal("minted with a 5-byte secret")
	}
}

// A forged token is refused without allocating: refusing must stay cheap under a flood of
// reconnecting clients.
func TestForgedTokenAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops sync.Pool entries at random")
	}
	v, err := NewVerifier(secret, "games", "lobby", nil)
	if err != nil {
		t.Fatal(err)
	}
	forged := sign(t, []byte("another secret, 32 bytes or more"), hs256, claims(nil))
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := v.Verify(forged); !errors.Is(err, ErrSignature) {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("refusing a forged token allocated %v times", allocs)
	}
}

func BenchmarkVerify(b *testing.B) {
	v, _ := NewVerifier(secret, "games", "lobby", nil)
	good, _ := Mint(secret, "games", "lobby", "alice", time.Hour, time.Now())
	forged := good[:len(good)-2] + "AA"
	b.Run("valid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v.Verify(good)
		}
	})
	b.Run("forged", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v.Verify(forged)
		}
	})
}

// Package auth issues and checks the signed join tokens of rooms that require them.
//
// A join token is a JWT signed with HS256 under the room's secret. Its claims:
//
//	sub  the user id the member acts as (1 to 256 bytes)
//	aud  "xrooms:<namespace>/<room>": the one room it admits
//	exp  when it expires (required)
//	role "service" for a backend, which may also post room events over HTTP (optional)
//
// nbf and iat are honoured when present. Every time check allows Leeway of clock skew.
package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// MinSecretLen is the shortest secret accepted: HS256 wants at least 256 bits of key.
	MinSecretLen = 32
	// MaxTokenLen bounds a token; longer ones are refused before any work.
	MaxTokenLen = 4096
	// MaxUserIDLen bounds the sub claim, as the server bounds user ids.
	MaxUserIDLen = 256
	// Leeway is the clock skew allowed between the minting backend and the room server.
	Leeway = 30 * time.Second
)

// Reasons a token is refused. They name no part of the token, so they are safe to log and
// to tell the client.
var (
	ErrNoToken   = errors.New("a join token is required")
	ErrMalformed = errors.New("the join token is malformed")
	ErrSignature = errors.New("the join token's signature or algorithm is invalid")
	ErrExpired   = errors.New("the join token has expired or is not valid yet")
	ErrOtherRoom = errors.New("the join token is for another room")
	ErrClaims    = errors.New("the join token's claims are invalid")
)

// strictBase64 refuses a signature with stray bits, so one signature has one spelling.
var strictBase64 = base64.RawURLEncoding.Strict()

// Audience is the aud claim that binds a token to one room.
func Audience(namespace, room string) string {
	return "xrooms:" + namespace + "/" + room
}

// CheckSecret reports whether a secret is long enough to sign tokens.
func CheckSecret(secret []byte) error {
	if len(secret) < MinSecretLen {
		return fmt.Errorf("the auth secret must be at least %d bytes", MinSecretLen)
	}
	return nil
}

// RoleService is the role claim of a backend's token.
const RoleService = "service"

// Identity is who a valid token admits.
type Identity struct {
	// User is the sub claim: the user id a member acts as.
	User string
	// Service is true for a token with role "service": a backend, which may post room events.
	Service bool
}

// tokenClaims are a token's claims: the registered ones and role.
type tokenClaims struct {
	jwt.RegisteredClaims
	Role string `json:"role,omitempty"`
}

// Mint signs a token admitting user to namespace/room until now+ttl.
func Mint(secret []byte, namespace, room, user string, ttl time.Duration, now time.Time) (string, error) {
	return mint(secret, namespace, room, user, "", ttl, now)
}

// MintService signs a backend's token for namespace/room, named name, until now+ttl.
func MintService(secret []byte, namespace, room, name string, ttl time.Duration, now time.Time) (string, error) {
	return mint(secret, namespace, room, name, RoleService, ttl, now)
}

func mint(secret []byte, namespace, room, user, role string, ttl time.Duration, now time.Time) (string, error) {
	if err := CheckSecret(secret); err != nil {
		return "", err
	}
	switch {
	case user == "" || len(user) > MaxUserIDLen:
		return "", fmt.Errorf("the user id must be 1 to %d bytes", MaxUserIDLen)
	case ttl <= 0:
		return "", errors.New("the token's lifetime must be positive")
	}
	c := tokenClaims{RegisteredClaims: jwt.RegisteredClaims{
		Subject:   user,
		Audience:  jwt.ClaimStrings{Audience(namespace, room)},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}, Role: role}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

// Verifier checks the join tokens of one room. It is safe for concurrent use.
type Verifier struct {
	secret []byte
	parser *jwt.Parser
	macs   sync.Pool // of *scratch
}

// scratch is one signature check's reusable state, so refusing a forged token allocates
// nothing.
type scratch struct {
	mac hash.Hash
	buf []byte
	sig [sha256.Size]byte
	sum [sha256.Size]byte
}

// NewVerifier returns the verifier of namespace/room's tokens. now is the clock (nil: the
// real one).
func NewVerifier(secret []byte, namespace, room string, now func() time.Time) (*Verifier, error) {
	if err := CheckSecret(secret); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	v := &Verifier{
		secret: append([]byte(nil), secret...),
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithAudience(Audience(namespace, room)),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(Leeway),
			jwt.WithTimeFunc(now),
		),
	}
	v.macs.New = func() any {
		return &scratch{mac: hmac.New(sha256.New, v.secret), buf: make([]byte, 0, MaxTokenLen)}
	}
	return v, nil
}

// Verify checks token and returns who it admits. A token not signed with the secret is
// refused by a constant-time HMAC check before any of it is decoded beyond its signature.
func (v *Verifier) Verify(token string) (Identity, error) {
	if token == "" {
		return Identity{}, ErrNoToken
	}
	if len(token) > MaxTokenLen || strings.Count(token, ".") != 2 {
		return Identity{}, ErrMalformed
	}
	if !v.signedBySecret(token) {
		return Identity{}, ErrSignature
	}
	// Signed with the secret: now decode it, and check the algorithm and the claims.
	var c tokenClaims
	if _, err := v.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return v.secret, nil }); err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
			return Identity{}, ErrExpired
		case errors.Is(err, jwt.ErrTokenInvalidAudience):
			return Identity{}, ErrOtherRoom
		case errors.Is(err, jwt.ErrTokenMalformed):
			return Identity{}, ErrMalformed
		case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
			return Identity{}, ErrSignature // e.g. alg "none" or HS512 in a header signed with the secret
		}
		return Identity{}, ErrClaims
	}
	if c.Subject == "" || len(c.Subject) > MaxUserIDLen || (c.Role != "" && c.Role != RoleService) {
		return Identity{}, ErrClaims
	}
	return Identity{User: c.Subject, Service: c.Role == RoleService}, nil
}

// signedBySecret checks the HS256 signature of a token of three dot-separated parts.
func (v *Verifier) signedBySecret(token string) bool {
	dot := strings.LastIndexByte(token, '.')
	sig := token[dot+1:]
	if base64.RawURLEncoding.DecodedLen(len(sig)) != sha256.Size {
		return false
	}
	s := v.macs.Get().(*scratch)
	defer v.macs.Put(s)
	s.buf = append(s.buf[:0], token...)
	if n, err := strictBase64.Decode(s.sig[:], s.buf[dot+1:]); err != nil || n != sha256.Size {
		return false
	}
	s.mac.Reset()
	s.mac.Write(s.buf[:dot])
	return hmac.Equal(s.mac.Sum(s.sum[:0]), s.sig[:])
}

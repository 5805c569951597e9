// Package authn hashes and verifies MQTT client passwords the way EMQX's
// built-in database does (sha256/sha512 with a salt prefix or suffix,
// pbkdf2, bcrypt), so credentials exported from EMQX keep working.
package authn

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"hash"
	"slices"
	"time"

	"github.com/roostmq/roost/internal/store"
	"golang.org/x/crypto/bcrypt"
)

// Algorithms and salt positions accepted in user records and config.
var (
	Algorithms    = []string{"plain", "sha256", "sha512", "pbkdf2", "bcrypt"}
	SaltPositions = []string{"prefix", "suffix", "disable"}
)

// HashParams choose how a new password is hashed.
type HashParams struct {
	Algorithm    string // plain | sha256 | sha512 | pbkdf2 | bcrypt
	SaltPosition string // prefix | suffix | disable (plain, sha256, sha512)
	MacFun       string // pbkdf2: sha256 | sha512 (default sha256)
	Iterations   int    // pbkdf2 (default 4096)
	DKLength     int    // pbkdf2 output bytes (default: the mac's size)
	BcryptCost   int    // bcrypt (default 10)
}

// NewCredential builds a users-table record for kind/id with a fresh salt.
func NewCredential(kind, id, password string, p HashParams, superuser bool) (store.User, error) {
	u := store.User{V: store.RecordVersion, Kind: kind, ID: id, Algorithm: p.Algorithm,
		Superuser: superuser, CreatedAt: time.Now().UTC()}
	switch p.Algorithm {
	case "plain", "sha256", "sha512":
		u.SaltPosition = p.SaltPosition
		if u.SaltPosition == "" {
			u.SaltPosition = "prefix"
		}
		if !slices.Contains(SaltPositions, u.SaltPosition) {
			return u, fmt.Errorf("unknown salt position %q (want one of %v)", u.SaltPosition, SaltPositions)
		}
		if u.SaltPosition != "disable" {
			u.Salt = randomSalt()
		}
	case "pbkdf2":
		u.Salt = randomSalt()
		u.MacFun, u.Iterations, u.DKLength = p.MacFun, p.Iterations, p.DKLength
		if u.MacFun == "" {
			u.MacFun = "sha256"
		}
		if u.Iterations == 0 {
			u.Iterations = 4096
		}
	case "bcrypt":
		cost := p.BcryptCost
		if cost == 0 {
			cost = bcrypt.DefaultCost
		}
		h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
		if err != nil {
			return u, fmt.Errorf("bcrypt: %w", err)
		}
		u.PasswordHash = string(h)
		return u, nil
	default:
		return u, fmt.Errorf("unknown password hash algorithm %q (want one of %v)", p.Algorithm, Algorithms)
	}
	h, err := Hash(&u, password)
	if err != nil {
		return u, err
	}
	u.PasswordHash = h
	return u, nil
}

// Hash computes the stored form of password under u's algorithm and salt
// (not for bcrypt, whose hash carries its own salt).
func Hash(u *store.User, password string) (string, error) {
	salted := func() ([]byte, error) {
		switch u.SaltPosition {
		case "suffix":
			return []byte(password + u.Salt), nil
		case "prefix":
			return []byte(u.Salt + password), nil
		case "disable":
			return []byte(password), nil
		case "":
			if u.Salt != "" {
				return []byte(u.Salt + password), nil // EMQX's default position
			}
			return []byte(password), nil
		}
		return nil, fmt.Errorf("unknown salt position %q (want one of %v)", u.SaltPosition, SaltPositions)
	}
	switch u.Algorithm {
	case "plain", "sha256", "sha512":
		b, err := salted()
		if err != nil {
			return "", err
		}
		switch u.Algorithm {
		case "sha256":
			s := sha256.Sum256(b)
			return hex.EncodeToString(s[:]), nil
		case "sha512":
			s := sha512.Sum512(b)
			return hex.EncodeToString(s[:]), nil
		}
		return string(b), nil
	case "pbkdf2":
		var mac func() hash.Hash
		switch u.MacFun {
		case "sha256", "":
			mac = sha256.New
		case "sha512":
			mac = sha512.New
		default:
			return "", fmt.Errorf("unknown pbkdf2 mac_fun %q (want sha256 or sha512)", u.MacFun)
		}
		if u.Iterations <= 0 {
			return "", fmt.Errorf("pbkdf2: iterations must be positive, got %d", u.Iterations)
		}
		dkLen := u.DKLength
		if dkLen == 0 {
			dkLen = mac().Size() // EMQX: dk_length unset means the mac's output size
		}
		dk, err := pbkdf2.Key(mac, password, []byte(u.Salt), u.Iterations, dkLen)
		if err != nil {
			return "", fmt.Errorf("pbkdf2: %w", err)
		}
		return hex.EncodeToString(dk), nil
	}
	return "", fmt.Errorf("unknown password hash algorithm %q", u.Algorithm)
}

// Verify reports whether password matches u's stored hash, in constant
// time for the hash comparison.
func Verify(u *store.User, password string) bool {
	if u.Algorithm == "bcrypt" {
		return bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) == nil
	}
	h, err := Hash(u, password)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(h), []byte(u.PasswordHash)) == 1
}

func randomSalt() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

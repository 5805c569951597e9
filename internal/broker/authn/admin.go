package authn

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Admin (dashboard and REST API) password hashes are bcrypt, or — for a
// dashboard user imported from EMQX 4 who has not logged in yet — the
// salted MD5 EMQX 4 kept (emqx_dashboard_admin: 4 random salt bytes, then
// the raw 16-byte md5(salt || password)), stored as
// "$emqx4-md5$" + base64 of those 20 bytes, the export's own encoding.
// The first successful login replaces it with bcrypt.
const emqx4AdminPrefix = "$emqx4-md5$"

// DummyAdminHash is a cost-10 bcrypt hash of a password nobody uses: a
// login as an unknown admin is checked against it, so that it takes as
// long as one as a known admin.
const DummyAdminHash = "$2a$10$Ev8cmx7y5UUNWt.QRPJeIetZwH/n6C5tJKPgpEM4RqOnVeHA6o/tu"

// EMQX4AdminHash turns the password field of a dashboard user of an
// EMQX 4 export (base64 of salt and digest) into an admin password hash.
func EMQX4AdminHash(exported string) (string, error) {
	raw, err := decodeEMQX4Admin(exported)
	if err != nil {
		return "", err
	}
	return emqx4AdminPrefix + base64.StdEncoding.EncodeToString(raw), nil
}

func decodeEMQX4Admin(b64 string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("not base64 (the EMQX 4 export encodes dashboard passwords in base64): %v", err)
	}
	if len(raw) != 4+md5.Size {
		return nil, fmt.Errorf("decodes to %d bytes; an EMQX 4 dashboard password is %d: 4 salt bytes and an md5 digest", len(raw), 4+md5.Size)
	}
	return raw, nil
}

// CheckAdminHash says what is wrong with a stored admin password hash,
// or returns nil: a bcrypt hash, or an imported EMQX 4 one.
func CheckAdminHash(h string) error {
	if rest, ok := strings.CutPrefix(h, emqx4AdminPrefix); ok {
		if _, err := decodeEMQX4Admin(rest); err != nil {
			return fmt.Errorf("an EMQX 4 dashboard hash (%s…) that %v", emqx4AdminPrefix, err)
		}
		return nil
	}
	if _, err := bcrypt.Cost([]byte(h)); err != nil {
		return fmt.Errorf("not a bcrypt hash (nor an EMQX 4 dashboard hash %s…): %v", emqx4AdminPrefix, err)
	}
	return nil
}

// LegacyAdminHash reports whether h is an imported EMQX 4 hash, to be
// replaced by bcrypt at the admin's next successful login.
func LegacyAdminHash(h string) bool { return strings.HasPrefix(h, emqx4AdminPrefix) }

// VerifyAdmin reports whether password matches the admin password hash
// h. An EMQX 4 digest is compared in constant time, and a bcrypt
// computation is made for it as well, so a login takes as long whatever
// kind of hash the admin has (or whether the admin exists: see
// DummyAdminHash).
func VerifyAdmin(h, password string) bool {
	rest, legacy := strings.CutPrefix(h, emqx4AdminPrefix)
	if !legacy {
		return bcrypt.CompareHashAndPassword([]byte(h), []byte(password)) == nil
	}
	ok := verifyEMQX4Admin(rest, password)
	_ = bcrypt.CompareHashAndPassword([]byte(DummyAdminHash), []byte(password))
	return ok
}

// verifyEMQX4Admin compares md5(salt || password) with the digest of an
// EMQX 4 dashboard hash (base64 of salt and digest), in constant time.
func verifyEMQX4Admin(b64, password string) bool {
	raw, err := decodeEMQX4Admin(b64)
	if err != nil {
		return false
	}
	sum := md5.Sum(append(raw[:4:4], password...))
	return subtle.ConstantTimeCompare(sum[:], raw[4:]) == 1
}

// LegacyHashPrint identifies the imported hash an admin's bcrypt hash
// replaced (Admin.UpgradedFrom), so that importing the same file again
// leaves the upgraded admin as it is. It is 32 bits of sha256(h): enough
// to tell the hash of a file from another (a false match has odds of
// 2^-32), too few to test password guesses against — with EMQX's 2^32
// possible salts, about every guess matches some salt.
func LegacyHashPrint(h string) string {
	s := sha256.Sum256([]byte(h))
	return hex.EncodeToString(s[:4])
}

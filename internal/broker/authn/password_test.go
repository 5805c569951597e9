package authn

import (
	"slices"
	"testing"

	"github.com/roostmq/roost/internal/store"
)

func TestRoundTrip(t *testing.T) {
	params := []HashParams{
		{Algorithm: "plain"},
		{Algorithm: "plain", SaltPosition: "disable"},
		{Algorithm: "sha256"},
		{Algorithm: "sha256", SaltPosition: "suffix"},
		{Algorithm: "sha256", SaltPosition: "disable"},
		{Algorithm: "sha512"},
		{Algorithm: "sha512", SaltPosition: "suffix"},
		{Algorithm: "pbkdf2"},
		{Algorithm: "pbkdf2", MacFun: "sha512", Iterations: 10, DKLength: 20},
		{Algorithm: "bcrypt", BcryptCost: 4},
	}
	for _, p := range params {
		u, err := NewCredential(store.KindUsername, "u", "s3cret", p, true)
		if err != nil {
			t.Fatalf("%+v: %v", p, err)
		}
		if !Verify(&u, "s3cret") {
			t.Errorf("%+v: right password refused", p)
		}
		if Verify(&u, "s3cret!") || Verify(&u, "") {
			t.Errorf("%+v: wrong password accepted", p)
		}
		if !u.Superuser || u.ID != "u" || u.Kind != store.KindUsername {
			t.Errorf("%+v: record %+v", p, u)
		}
	}
}

func TestEMQXCompatibleHashes(t *testing.T) {
	cases := []struct {
		name string
		u    store.User
		pw   string
	}{
		// sha256("salt" + "password"), from coreutils sha256sum
		{"sha256 prefix", store.User{Algorithm: "sha256", Salt: "salt", SaltPosition: "prefix",
			PasswordHash: "13601bda4ea78e55a07b98866d2be6be0744e3866f13c00c811cab608a28f322"}, "password"},
		// sha256("password" + "salt")
		{"sha256 suffix", store.User{Algorithm: "sha256", Salt: "salt", SaltPosition: "suffix",
			PasswordHash: "7a37b85c8918eac19a9089c0fa5a2ab4dce3f90528dcdeec108b23ddf3607b99"}, "password"},
		// sha256("password")
		{"sha256 disable", store.User{Algorithm: "sha256", SaltPosition: "disable",
			PasswordHash: "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"}, "password"},
		// PBKDF2-HMAC-SHA256 test vector (published PBKDF2-HMAC-SHA256/512 vectors); dk_length
		// unset means the mac's size (32 bytes).
		{"pbkdf2 sha256 default length", store.User{Algorithm: "pbkdf2", MacFun: "sha256", Salt: "salt", Iterations: 1,
			PasswordHash: "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"}, "password"},
		{"pbkdf2 sha256 4096", store.User{Algorithm: "pbkdf2", MacFun: "sha256", Salt: "salt", Iterations: 4096,
			PasswordHash: "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"}, "password"},
		{"pbkdf2 sha512 default length", store.User{Algorithm: "pbkdf2", MacFun: "sha512", Salt: "salt", Iterations: 1,
			PasswordHash: "867f70cf1ade02cff3752599a3a53dc4af34c7a669815ae5d513554e1c8cf252c02d470a285a0501bad999bfe943c08f050235d7d68b1da55e63f73b60a57fce"}, "password"},
		{"pbkdf2 sha256 explicit length", store.User{Algorithm: "pbkdf2", MacFun: "sha256", Salt: "salt", Iterations: 1, DKLength: 16,
			PasswordHash: "120fb6cffcf8b32c43e7225256c4f837"}, "password"},
	}
	for _, c := range cases {
		if !Verify(&c.u, c.pw) {
			h, err := Hash(&c.u, c.pw)
			t.Errorf("%s: not verified (computed %s, err %v)", c.name, h, err)
		}
	}
}

func TestBadParams(t *testing.T) {
	for _, p := range []HashParams{
		{Algorithm: "md5"},
		{Algorithm: "sha256", SaltPosition: "middle"},
		{Algorithm: "pbkdf2", MacFun: "md5"},
		{Algorithm: "bcrypt", BcryptCost: 99},
	} {
		if _, err := NewCredential(store.KindUsername, "u", "pw", p, false); err == nil {
			t.Errorf("%+v: want an error", p)
		}
	}
	u := store.User{Algorithm: "pbkdf2", Salt: "s", PasswordHash: "00"}
	if Verify(&u, "pw") {
		t.Error("pbkdf2 record without iterations verified")
	}
	if !slices.Contains(Algorithms, "bcrypt") || !slices.Contains(SaltPositions, "suffix") {
		t.Error("Algorithms / SaltPositions incomplete")
	}
}

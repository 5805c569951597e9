package authn

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// Dashboard users of EMQX 4 exports (the export files of EMQX's own
// test suites): admin / "public", stored by emqx_dashboard_admin as 4
// salt bytes then md5(salt || password), base64 in the export.
var emqx4Admins = []string{"8Vd7+gVg2J3nE1Xjyxqd59sA5mo=", "C5J9Qhy+/NYRnAnrK0E6Z5Aqp3I=", "AdzLv1Gqo3caj/jqu5EbINEahTo=", "02BzoSYaTxkscy2MDtU92EbX7b4="}

func TestEMQX4AdminHash(t *testing.T) {
	for _, exported := range emqx4Admins {
		h, err := EMQX4AdminHash(exported)
		if err != nil {
			t.Fatalf("%s: %v", exported, err)
		}
		if h != "$emqx4-md5$"+exported || !LegacyAdminHash(h) || CheckAdminHash(h) != nil {
			t.Errorf("%s: hash %q legacy %v check %v", exported, h, LegacyAdminHash(h), CheckAdminHash(h))
		}
		// verifyEMQX4Admin is VerifyAdmin without the bcrypt computation
		// that evens out its time (a second each under the race detector).
		if !verifyEMQX4Admin(exported, "public") {
			t.Errorf("%s: the EMQX password does not verify", exported)
		}
		for _, wrong := range []string{"", "Public", "public ", "publi", "xpublic"} {
			if verifyEMQX4Admin(exported, wrong) {
				t.Errorf("%s: %q verifies", exported, wrong)
			}
		}
		if p := LegacyHashPrint(h); len(p) != 8 || p == LegacyHashPrint(h+"x") {
			t.Errorf("print %q", p)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"not base64!", "not base64"},
		{"AAAA", "decodes to 3 bytes; an EMQX 4 dashboard password is 20"},
		{"8Vd7+gVg2J3nE1Xjyxqd59sA5mo+AA==", "decodes to 22 bytes"},
	} {
		if _, err := EMQX4AdminHash(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("EMQX4AdminHash(%q): %v, want %q", c.in, err, c.want)
		}
		if err := CheckAdminHash("$emqx4-md5$" + c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckAdminHash of %q: %v, want %q", c.in, err, c.want)
		}
		if verifyEMQX4Admin(c.in, "public") {
			t.Errorf("a malformed hash %q verifies", c.in)
		}
	}
}

func TestVerifyAdmin(t *testing.T) {
	h, _ := EMQX4AdminHash(emqx4Admins[0])
	if !VerifyAdmin(h, "public") || VerifyAdmin(h, "public!") {
		t.Error("VerifyAdmin of an EMQX 4 hash")
	}
}

func TestVerifyAdminBcrypt(t *testing.T) {
	h, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if !VerifyAdmin(string(h), "s3cret") || VerifyAdmin(string(h), "s3cret!") || LegacyAdminHash(string(h)) {
		t.Error("bcrypt admin hash")
	}
	if CheckAdminHash(string(h)) != nil || CheckAdminHash(DummyAdminHash) != nil {
		t.Error("bcrypt hashes refused")
	}
	if err := CheckAdminHash("md5:abc"); err == nil || !strings.Contains(err.Error(), "not a bcrypt hash") {
		t.Errorf("CheckAdminHash(md5:abc): %v", err)
	}
}

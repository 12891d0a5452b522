package main

import (
	"testing"

	querypb "github.com/pecarchive/pecarchive/gen/pecarchive/query/v1"
)

// The readable answer says a signature fails exactly when the verdict rule does not count it.
func TestSignatureWords(t *testing.T) {
	for _, tc := range []struct {
		rc   *querypb.Receipt
		want string
	}{
		{&querypb.Receipt{Valid: true, Trusted: true}, "signature valid and trusted"},
		{&querypb.Receipt{Valid: true, Trusted: true, Reasons: []string{"weak-digest-sha1"}}, "signature valid and trusted (warnings: weak-digest-sha1)"},
		{&querypb.Receipt{Valid: true, Trusted: true, Reasons: []string{"expired", "weak-digest-sha1"}}, "SIGNATURE FAILS: expired, weak-digest-sha1"},
		{&querypb.Receipt{Valid: true, Trusted: false, Reasons: []string{"untrusted"}}, "SIGNATURE FAILS: untrusted"},
		{&querypb.Receipt{Valid: false, Reasons: []string{"weak-digest-sha1", "bad-signature"}}, "SIGNATURE FAILS: bad-signature, weak-digest-sha1"},
	} {
		if got := signatureWords(tc.rc); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.rc, got, tc.want)
		}
	}
}

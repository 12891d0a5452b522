package evidence_test

import (
	"testing"
)

func TestRoundTrip(t *testing.T) {
	f := getFixture(t)
	res := verifyBytes(t, f.bundle, f.arch.VKey)
	for _, fl := range res.Failures {
		t.Errorf("failure: %s", fl)
	}
	for _, w := range res.Warnings {
		t.Logf("warning: %s", w)
	}
	if !res.OK || res.KeySource != "given" {
		t.Fatalf("OK=%v key=%s", res.OK, res.KeySource)
	}
	t.Logf("%d messages, %d deliveries, %d bytes", res.Messages, res.Deliveries, len(f.bundle))
	for _, r := range f.delivery.Recipients {
		t.Logf("%s %s", r.Address, r.Verdict)
	}
}

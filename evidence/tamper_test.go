package evidence_test

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/transparency-dev/formats/log"

	"github.com/pecarchive/pecarchive/evidence"
	"github.com/pecarchive/pecarchive/evidence/evidencetest"
	"github.com/pecarchive/pecarchive/tlog"
)

// Each part of a bundle altered, first naively (the manifests' hashes left as they were) and then
// resealed as a forger would (both manifests and the report made to agree with the altered
// files): each is detected and the failure names the part (the cases are evidencetest.Tamper's,
// which also runs on bundles exported from a real archive).
func TestTamper(t *testing.T) {
	f := getFixture(t)
	evidencetest.Tamper(t, f.bundle, f.arch.VKey)
}

// A forger who replaces the log key and re-signs the checkpoint with their own key is caught
// when the verifier is given the real key; without a key the bundle agrees with itself, and the
// result says loudly that only the bundled key was used.
func TestTamperLogKeyResigned(t *testing.T) {
	f := getFixture(t)
	forger, err := evidencetest.New(anchorsOf(f.provider))
	if err != nil {
		t.Fatal(err)
	}
	es := unzip(t, f.bundle)
	cp, err := tlog.ParseCheckpoint(es[find(es, evidence.NameCheckpoint)].Data)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tlog.NewSigner(forger.SKey) // same origin, another key
	if err != nil {
		t.Fatal(err)
	}
	signed, err := tlog.SignCheckpoint(s, cp)
	if err != nil {
		t.Fatal(err)
	}
	es[find(es, evidence.NameCheckpoint)].Data = signed
	es[find(es, evidence.NameLogKey)].Data = []byte(forger.VKey + "\n")
	// The earlier checkpoints stay signed by the real key: the forger drops them.
	mm := manifestOf(t, es)
	for _, e := range mm.Log.Earlier {
		i := find(es, e.File)
		es = append(es[:i], es[i+1:]...)
	}
	mm.Log.Earlier = []evidence.EarlierCheckpoint{}
	setManifest(t, es, mm)
	data := rezip(t, reseal(t, es))

	res := verifyBytes(t, data, f.arch.VKey)
	if res.OK || !hasFailure(res, evidence.FailSignature, evidence.NameCheckpoint, "") || !hasFailure(res, evidence.FailClaim, evidence.NameLogKey, "differs") {
		t.Fatalf("with the real key:\n%s", failures(res))
	}
	res = verifyBytes(t, data, "")
	if !res.OK || res.KeySource != evidence.KeyBundled || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "--log-key") {
		t.Fatalf("without a key: ok %v, source %q, warnings %q\n%s", res.OK, res.KeySource, res.Warnings, failures(res))
	}
}

// A hostile manifest's strings reach the failures; they come out printable, one line each.
func TestFailuresArePrintable(t *testing.T) {
	f := getFixture(t)
	es := unzip(t, f.bundle)
	mm := manifestOf(t, es)
	mm.Deliveries[0].MsgID = "x\x1b[2J\nfile ok: \u202eevil\xff"
	mm.Deliveries[0].Recipients[0].Verdict = "\x1b]0;pwned\x07"
	setManifest(t, es, mm)
	res := verifyBytes(t, rezip(t, reseal(t, es)), f.arch.VKey)
	if res.OK {
		t.Fatal("verified")
	}
	for _, fl := range res.Failures {
		s := fl.String()
		if strings.ContainsAny(s, "\x1b\n\r\x07\u202e") || !utf8.ValidString(s) {
			t.Errorf("failure not printable: %q", s)
		}
	}
}

// A checkpoint held outside the bundle is checked as the archive's audit checks one
// (tlog.CheckAgainst): one the bundle cites, or the bundle's own, holds; a fork, a newer one, one
// the bundle has no proof from, and one signed by another key are named. A rotated log's keys,
// given together, verify.
func TestGivenCheckpoints(t *testing.T) {
	f := getFixture(t)
	es := unzip(t, f.bundle)
	own := es[find(es, evidence.NameCheckpoint)].Data
	cp, err := tlog.ParseCheckpoint(own)
	if err != nil {
		t.Fatal(err)
	}
	earlier, err := tlog.ParseCheckpoint(f.earlier)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := tlog.NewSigner(f.arch.SKey)
	sign := func(size uint64, root []byte) []byte {
		b, err := tlog.SignCheckpoint(signer, log.Checkpoint{Origin: cp.Origin, Size: size, Hash: root})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	other, err := evidencetest.New(anchorsOf(f.provider))
	if err != nil {
		t.Fatal(err)
	}
	verify := func(key string, held ...[]byte) *evidence.Result {
		return evidence.VerifyReaderAt(t.Context(), bytes.NewReader(f.bundle), int64(len(f.bundle)), &evidence.VerifyOptions{LogKey: key, Checkpoints: held})
	}
	if res := verify(f.arch.VKey, f.earlier, own); !res.OK || res.GivenCheckpoints != 2 {
		t.Fatalf("the cited and the bundle's own: ok %v, %d checked\n%s", res.OK, res.GivenCheckpoints, failures(res))
	}
	if res := verify(other.VKey + "\n" + f.arch.VKey + "\n"); !res.OK {
		t.Fatalf("a rotated log's keys:\n%s", failures(res))
	}
	forkRoot := sha256.Sum256([]byte("another tree"))
	for name, c := range map[string]struct {
		held          []byte
		kind, details string
	}{
		"a fork":                 {sign(earlier.Size, forkRoot[:]), evidence.FailProof, "does not extend"},
		"a newer checkpoint":     {sign(cp.Size+10, forkRoot[:]), evidence.FailProof, "older than it"},
		"no proof in the bundle": {sign(earlier.Size-1, forkRoot[:]), evidence.FailProof, "no consistency proof"},
		"another key":            {other.Checkpoint(), evidence.FailSignature, "invalid checkpoint"},
	} {
		res := verify(f.arch.VKey, c.held)
		if res.OK || !hasFailure(res, c.kind, "checkpoint given #1", c.details) {
			t.Errorf("%s:\n%s", name, failures(res))
		}
	}
}

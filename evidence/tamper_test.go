package evidence_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pecarchive/pecarchive/evidence"
	"github.com/pecarchive/pecarchive/evidence/evidencetest"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/tlog"
)

// Each part of a bundle altered, first naively (the manifests' hashes left as they were) and then
// resealed as a forger would (both manifests made to agree with the altered files): each is
// detected and the failure names the part.
func TestTamper(t *testing.T) {
	f := getFixture(t)
	m := f.manifest
	var delivered, notDelivered int
	for i, r := range m.Deliveries[0].Recipients {
		switch r.Verdict {
		case evidence.VerdictDelivered:
			delivered = i
		case evidence.VerdictNotDelivered:
			notDelivered = i
		}
	}
	// The tampered delivery receipt and its recipient.
	var forgedIdx int
	var forged string
	for i, r := range m.Deliveries[0].Recipients {
		if r.Address != tamperedTo {
			continue
		}
		forgedIdx = i
		for _, s := range r.Receipts {
			for _, msg := range m.Messages {
				if msg.SHA256 == s && msg.Record.Kind == "avvenuta-consegna" {
					forged = s
				}
			}
		}
	}
	if forged == "" {
		t.Fatal("no tampered delivery receipt in the fixture")
	}
	firstEML := m.Messages[1].File // a receipt
	chainFile := m.Chains[0].File
	anchorFile := m.AnchorSets[0].File
	other, err := pectest.NewCA(99, nil)
	if err != nil {
		t.Fatal(err)
	}
	otherAnchors := string(other.RootPEM()) + string(other.IntermediatePEM())

	type want struct{ kind, subject, detail string }
	cases := []struct {
		name   string
		alter  func(t *testing.T, es []entry) []entry
		naive  want // the failure when the manifests are left as they were
		sealed want // the failure when they are resealed
	}{
		{"a byte of an .eml", func(t *testing.T, es []entry) []entry {
			e := &es[find(es, firstEML)]
			e.data = bytes.Clone(e.data)
			i := bytes.Index(e.data, []byte("Subject: ")) + 9
			e.data[i] ^= 0x20
			return es
		}, want{evidence.FailFile, firstEML, "SHA-256"}, want{evidence.FailFile, firstEML, "its bytes have SHA-256"}},
		{"a manifest claim", func(t *testing.T, es []entry) []entry {
			mm := manifestOf(t, es)
			mm.Messages[1].Record.Subject = "Un altro oggetto"
			setManifest(t, es, mm)
			return es
		}, want{evidence.FailFile, evidence.NameManifest, "SHA-256"}, want{evidence.FailClaim, "message " + m.Messages[1].SHA256, "subject"}},
		{"a verdict", func(t *testing.T, es []entry) []entry {
			mm := manifestOf(t, es)
			r := &mm.Deliveries[0].Recipients[notDelivered]
			r.Verdict = evidence.VerdictDelivered
			setManifest(t, es, mm)
			return es
		}, want{evidence.FailFile, evidence.NameManifest, "SHA-256"}, want{evidence.FailClaim, "recipient " + m.Deliveries[0].Recipients[notDelivered].Address, "DELIVERED rests on receipt"}},
		{"a deciding receipt swapped", func(t *testing.T, es []entry) []entry {
			mm := manifestOf(t, es)
			d := &mm.Deliveries[0]
			d.Recipients[notDelivered].Verdict = evidence.VerdictDelivered
			d.Recipients[notDelivered].Deciding = d.Recipients[delivered].Deciding
			setManifest(t, es, mm)
			return es
		}, want{evidence.FailFile, evidence.NameManifest, "SHA-256"}, want{evidence.FailClaim, "recipient " + m.Deliveries[0].Recipients[notDelivered].Address, "not a delivery receipt for this recipient"}},
		{"a forged receipt made deciding", func(t *testing.T, es []entry) []entry {
			mm := manifestOf(t, es)
			r := &mm.Deliveries[0].Recipients[forgedIdx]
			r.Verdict, r.Deciding = evidence.VerdictDelivered, forged
			setManifest(t, es, mm)
			return es
		}, want{evidence.FailFile, evidence.NameManifest, "SHA-256"}, want{evidence.FailClaim, "recipient " + tamperedTo, "not valid and trusted"}},
		{"a forged receipt's record made trusted", func(t *testing.T, es []entry) []entry {
			mm := manifestOf(t, es)
			for i := range mm.Messages {
				if mm.Messages[i].SHA256 == forged {
					sig := &mm.Messages[i].Record.Signature
					sig.Valid, sig.Trusted, sig.Reasons = true, true, []string{"weak-digest-sha1"}
				}
			}
			r := &mm.Deliveries[0].Recipients[forgedIdx]
			r.Verdict, r.Deciding = evidence.VerdictDelivered, forged
			setManifest(t, es, mm)
			return es
		}, want{evidence.FailFile, evidence.NameManifest, "SHA-256"}, want{evidence.FailSignature, "signature of " + forged, "does not verify"}},
		{"a proof hash", func(t *testing.T, es []entry) []entry {
			mm := manifestOf(t, es)
			p := mm.Messages[2].InclusionProof
			h, _ := base64.StdEncoding.DecodeString(p[0])
			h[0] ^= 1
			p[0] = base64.StdEncoding.EncodeToString(h)
			setManifest(t, es, mm)
			return es
		}, want{evidence.FailFile, evidence.NameManifest, "SHA-256"}, want{evidence.FailProof, "inclusion of " + m.Messages[2].SHA256, "computed root"}},
		{"a leaf index", func(t *testing.T, es []entry) []entry {
			mm := manifestOf(t, es)
			mm.Messages[2].Leaf.Index++
			setManifest(t, es, mm)
			return es
		}, want{evidence.FailFile, evidence.NameManifest, "SHA-256"}, want{evidence.FailProof, "inclusion of " + m.Messages[2].SHA256, ""}},
		{"the tree size", func(t *testing.T, es []entry) []entry {
			mm := manifestOf(t, es)
			mm.Log.Checkpoint.Size++
			setManifest(t, es, mm)
			return es
		}, want{evidence.FailFile, evidence.NameManifest, "SHA-256"}, want{evidence.FailClaim, "log.checkpoint", "size"}},
		{"the checkpoint text", func(t *testing.T, es []entry) []entry {
			e := &es[find(es, evidence.NameCheckpoint)]
			lines := strings.SplitN(string(e.data), "\n", 3)
			lines[1] = lines[1] + "0"
			e.data = []byte(strings.Join(lines, "\n"))
			return es
		}, want{evidence.FailFile, evidence.NameCheckpoint, "SHA-256"}, want{evidence.FailSignature, evidence.NameCheckpoint, "invalid checkpoint"}},
		{"the checkpoint's signature", func(t *testing.T, es []entry) []entry {
			e := &es[find(es, evidence.NameCheckpoint)]
			s := string(e.data)
			i := strings.LastIndex(s, " ") + 1
			sig, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(s[i:]))
			sig[len(sig)-1] ^= 1
			e.data = []byte(s[:i] + base64.StdEncoding.EncodeToString(sig) + "\n")
			return es
		}, want{evidence.FailFile, evidence.NameCheckpoint, "SHA-256"}, want{evidence.FailSignature, evidence.NameCheckpoint, "invalid checkpoint"}},
		{"an earlier checkpoint", func(t *testing.T, es []entry) []entry {
			mm := manifestOf(t, es)
			e := &es[find(es, mm.Log.Earlier[0].File)]
			e.data = bytes.Replace(e.data, []byte("\n"), []byte("\n\n"), 1)
			return es
		}, want{evidence.FailFile, "checkpoints/", "SHA-256"}, want{evidence.FailSignature, "checkpoints/", "invalid checkpoint"}},
		{"a consistency proof", func(t *testing.T, es []entry) []entry {
			mm := manifestOf(t, es)
			p := mm.Log.Earlier[0].ConsistencyProof
			p[len(p)-1] = base64.StdEncoding.EncodeToString(make([]byte, 32))
			setManifest(t, es, mm)
			return es
		}, want{evidence.FailFile, evidence.NameManifest, "SHA-256"}, want{evidence.FailProof, "consistency checkpoints/", ""}},
		{"a certificate", func(t *testing.T, es []entry) []entry {
			e := &es[find(es, chainFile)]
			e.data = []byte(strings.Replace(string(e.data), "A", "B", 1))
			return es
		}, want{evidence.FailFile, chainFile, "SHA-256"}, want{evidence.FailFile, chainFile, ""}},
		{"the anchor snapshot", func(t *testing.T, es []entry) []entry {
			es[find(es, anchorFile)].data = []byte(otherAnchors)
			return es
		}, want{evidence.FailFile, anchorFile, "SHA-256"}, want{evidence.FailFile, anchorFile, "identifier"}},
		{"the anchor snapshot and its claim", func(t *testing.T, es []entry) []entry {
			// A forger puts other anchors in and renames the set everywhere: the signatures no
			// longer verify as trusted against them.
			mm := manifestOf(t, es)
			old := mm.AnchorSets[0].SHA256
			sum := evidence.AnchorsID([][]byte{other.Root.Raw, other.Intermediate.Raw})
			id := hex.EncodeToString(sum[:])
			mm.AnchorSets[0].SHA256, mm.AnchorSets[0].File = id, evidence.AnchorsName(sum)
			for i := range mm.Messages {
				if mm.Messages[i].Record.AnchorsSHA256 == old {
					mm.Messages[i].Record.AnchorsSHA256 = id
				}
			}
			setManifest(t, es, mm)
			i := find(es, anchorFile)
			es[i] = entry{evidence.AnchorsName(sum), []byte(otherAnchors)}
			return es
		}, want{evidence.FailFile, evidence.NameManifest, "SHA-256"}, want{evidence.FailSignature, "signature of " + m.Messages[1].SHA256, "not trusted"}},
		{"the log key", func(t *testing.T, es []entry) []entry {
			es[find(es, evidence.NameLogKey)].data = []byte("pecarchive.test/log+00000000+AQ" + strings.Repeat("A", 42) + "=\n")
			return es
		}, want{evidence.FailFile, evidence.NameLogKey, "SHA-256"}, want{evidence.FailClaim, evidence.NameLogKey, "differs from the key given"}},
		{"a file dropped", func(t *testing.T, es []entry) []entry {
			i := find(es, firstEML)
			return append(es[:i], es[i+1:]...)
		}, want{evidence.FailFile, firstEML, "missing"}, want{evidence.FailFile, firstEML, "missing"}},
		{"a file added", func(t *testing.T, es []entry) []entry {
			return append(es[:len(es)-1:len(es)-1], entry{"messages/extra.eml", []byte("Subject: planted\r\n\r\nhello\r\n")}, es[len(es)-1])
		}, want{evidence.FailFile, "messages/extra.eml", "not listed"}, want{evidence.FailFile, "messages/extra.eml", "should not hold"}},
		{"the report", func(t *testing.T, es []entry) []entry {
			e := &es[find(es, evidence.NameReport)]
			e.data = bytes.Replace(e.data, []byte("NON CONSEGNATO"), []byte("CONSEGNATO"), 1)
			return es
		}, want{evidence.FailFile, evidence.NameReport, "SHA-256"}, want{evidence.FailFile, evidence.NameReport, "not the statement"}},
		{"an explanation", func(t *testing.T, es []entry) []entry {
			mm := manifestOf(t, es)
			mm.Deliveries[0].Recipients[notDelivered].ExplanationIT = "Consegnato."
			setManifest(t, es, mm)
			return es
		}, want{evidence.FailFile, evidence.NameManifest, "SHA-256"}, want{evidence.FailClaim, "recipient " + m.Deliveries[0].Recipients[notDelivered].Address, "explanation_it"}},
		{"a verdict weakened", func(t *testing.T, es []entry) []entry {
			mm := manifestOf(t, es)
			mm.Deliveries[0].Recipients[notDelivered].Verdict = evidence.VerdictWarned
			setManifest(t, es, mm)
			return es
		}, want{evidence.FailFile, evidence.NameManifest, "SHA-256"}, want{evidence.FailClaim, "recipient " + m.Deliveries[0].Recipients[notDelivered].Address, "its receipts give NOT_DELIVERED"}},
		{"a receipt hidden from a recipient", func(t *testing.T, es []entry) []entry {
			mm := manifestOf(t, es)
			r := &mm.Deliveries[0].Recipients[delivered]
			r.Receipts = r.Receipts[1:]
			setManifest(t, es, mm)
			return es
		}, want{evidence.FailFile, evidence.NameManifest, "SHA-256"}, want{evidence.FailClaim, "recipient " + m.Deliveries[0].Recipients[delivered].Address, "receipts"}},
		{"a receipt removed from the bundle", func(t *testing.T, es []entry) []entry {
			// The forger drops the non-delivery notice and every mention of it.
			mm := manifestOf(t, es)
			r := &mm.Deliveries[0].Recipients[notDelivered]
			gone := r.Deciding
			r.Receipts = slices.DeleteFunc(r.Receipts, func(s string) bool { return s == gone })
			r.Verdict, r.Deciding = evidence.VerdictAcceptedOnly, ""
			mm.Messages = slices.DeleteFunc(mm.Messages, func(m evidence.Message) bool { return m.SHA256 == gone })
			setManifest(t, es, mm)
			i := find(es, "messages/"+gone+".eml")
			return append(es[:i], es[i+1:]...)
		}, want{evidence.FailFile, evidence.NameManifest, "SHA-256"}, want{evidence.FailClaim, "recipient " + m.Deliveries[0].Recipients[notDelivered].Address, ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			es := c.alter(t, unzip(t, f.bundle))
			res := verifyBytes(t, rezip(t, es), f.arch.VKey)
			if res.OK || !hasFailure(res, c.naive.kind, c.naive.subject, c.naive.detail) {
				t.Errorf("naive: want a %s failure of %q (%q), got:\n%s", c.naive.kind, c.naive.subject, c.naive.detail, failures(res))
			}
			if c.sealed.kind == "" {
				return
			}
			es = resealReport(t, c.alter(t, unzip(t, f.bundle)), c.name != "the report")
			res = verifyBytes(t, rezip(t, es), f.arch.VKey)
			if res.OK || !hasFailure(res, c.sealed.kind, c.sealed.subject, c.sealed.detail) {
				t.Errorf("resealed: want a %s failure of %q (%q), got:\n%s", c.sealed.kind, c.sealed.subject, c.sealed.detail, failures(res))
			}
		})
	}
}

func failures(res *evidence.Result) string {
	var b strings.Builder
	for _, f := range res.Failures {
		b.WriteString("  " + f.String() + "\n")
	}
	return b.String()
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
	cp, err := tlog.ParseCheckpoint(es[find(es, evidence.NameCheckpoint)].data)
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
	es[find(es, evidence.NameCheckpoint)].data = signed
	es[find(es, evidence.NameLogKey)].data = []byte(forger.VKey + "\n")
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

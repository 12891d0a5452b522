package evidencetest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/evidence"
	"github.com/pecarchive/pecarchive/pec/pectest"
)

// want is the failure a tampered bundle must report.
type want struct{ kind, subject, detail string }

// TamperCase alters one part of a bundle.
type TamperCase struct {
	Name  string
	Alter func(t *testing.T, es []Entry) []Entry
	// Naive is the failure when the bundle is left as altered; Sealed when it is then resealed
	// as a forger would ([Reseal]); a zero Sealed skips that half.
	Naive, Sealed want
	// NoRender reseals without rendering the report again (the case alters the report).
	NoRender bool
}

// parts are the parts of a bundle the cases alter, found in its manifest.
type parts struct {
	m                       *evidence.Manifest
	delivery                int    // a delivery with a DELIVERED and a decided non-delivered recipient
	delivered, notDelivered int    // recipients of it
	receiptFile, receiptSum string // a receipt
	proofSum                string // a message with a non-empty inclusion proof
	badIn, badRecipient     int    // a delivery and recipient with an untrusted delivery receipt
	bad                     string // that receipt
}

func findParts(t *testing.T, m *evidence.Manifest) *parts {
	p := &parts{m: m, delivery: -1, badIn: -1}
	kind := map[string]string{}
	trusted := map[string]bool{}
	for _, msg := range m.Messages {
		kind[msg.SHA256], trusted[msg.SHA256] = msg.Record.Kind, msg.Record.Signature.Trusted
		if p.receiptFile == "" && strings.Contains(" accettazione avvenuta-consegna errore-consegna ", " "+msg.Record.Kind+" ") {
			p.receiptFile, p.receiptSum = msg.File, msg.SHA256
		}
		if p.proofSum == "" && len(msg.InclusionProof) > 0 {
			p.proofSum = msg.SHA256
		}
	}
	for i, d := range m.Deliveries {
		del, not := -1, -1
		for j, r := range d.Recipients {
			switch {
			case r.Verdict == evidence.VerdictDelivered && del < 0:
				del = j
			case r.Verdict != evidence.VerdictDelivered && r.Deciding != "" && not < 0:
				not = j
			}
			for _, s := range r.Receipts {
				if p.badIn < 0 && kind[s] == "avvenuta-consegna" && !trusted[s] && r.Verdict != evidence.VerdictDelivered {
					p.badIn, p.badRecipient, p.bad = i, j, s
				}
			}
		}
		if p.delivery < 0 && del >= 0 && not >= 0 {
			p.delivery, p.delivered, p.notDelivered = i, del, not
		}
	}
	if p.delivery < 0 || p.receiptFile == "" || p.proofSum == "" || len(m.Chains) == 0 || len(m.AnchorSets) == 0 {
		t.Fatalf("evidencetest: the bundle lacks the parts the tamper cases alter (a delivered and a decided undelivered recipient, a receipt, a proof, a chain, an anchor set)")
	}
	return p
}

// Tamper alters each part of bundle in turn (a byte of an .eml, a record, a verdict, a deciding
// receipt, an explanation, a proof hash, a leaf index, the tree size, the checkpoint text and its
// signature, an earlier checkpoint and its consistency proof, a certificate, the anchor
// snapshot, the log key, the report, a file dropped, renamed or added, and what the bundle holds
// about a receipt that fails verification), first naively and then resealed as a forger would,
// and checks that each is detected and that the failure names the part. vkey is the log's
// public key.
func Tamper(t *testing.T, bundle []byte, vkey string) {
	orig := Unzip(t, bundle)
	p := findParts(t, ManifestOf(t, orig))
	m := p.m
	d := m.Deliveries[p.delivery]
	rsub := func(j int) string { return " recipient " + d.Recipients[j].Address }
	other, err := pectest.NewCA(99, nil)
	if err != nil {
		t.Fatal(err)
	}
	otherAnchors := append(other.RootPEM(), other.IntermediatePEM()...)
	manifestSHA := want{evidence.FailFile, evidence.NameManifest, "SHA-256"}
	edit := func(f func(mm *evidence.Manifest)) func(t *testing.T, es []Entry) []Entry {
		return func(t *testing.T, es []Entry) []Entry {
			mm := ManifestOf(t, es)
			f(mm)
			SetManifest(t, es, mm)
			return es
		}
	}
	msgIndex := func(mm *evidence.Manifest, sum string) int {
		return slices.IndexFunc(mm.Messages, func(x evidence.Message) bool { return x.SHA256 == sum })
	}
	cases := []TamperCase{
		{Name: "a byte of an .eml", Alter: func(t *testing.T, es []Entry) []Entry {
			e := &es[Find(es, p.receiptFile)]
			e.Data = bytes.Clone(e.Data)
			e.Data[bytes.Index(e.Data, []byte("Subject: "))+9] ^= 0x20
			return es
		}, Naive: want{evidence.FailFile, p.receiptFile, "SHA-256"}, Sealed: want{evidence.FailFile, p.receiptFile, "its bytes have SHA-256"}},
		{Name: "a record", Alter: edit(func(mm *evidence.Manifest) {
			mm.Messages[msgIndex(mm, p.receiptSum)].Record.Subject = "Un altro oggetto"
		}), Naive: manifestSHA, Sealed: want{evidence.FailClaim, "message " + p.receiptSum, "subject"}},
		{Name: "a record consistent with the bytes", Alter: edit(func(mm *evidence.Manifest) {
			// A field the bytes do not show, which only the leaf's digest covers.
			mm.Messages[msgIndex(mm, p.receiptSum)].Record.Signature.Details = []string{"verified by hand"}
		}), Naive: manifestSHA, Sealed: want{evidence.FailClaim, "message " + p.receiptSum, "differs from what its leaf commits to"}},
		{Name: "a received time", Alter: edit(func(mm *evidence.Manifest) {
			r := &mm.Messages[msgIndex(mm, p.receiptSum)].Record
			t, _ := time.Parse(time.RFC3339Nano, r.ReceivedAt)
			r.ReceivedAt = evidence.FormatTime(t.Add(time.Microsecond))
		}), Naive: manifestSHA, Sealed: want{evidence.FailClaim, "message " + p.receiptSum, "differs from what its leaf commits to"}},
		{Name: "the first source", Alter: edit(func(mm *evidence.Manifest) {
			mm.Messages[msgIndex(mm, p.receiptSum)].FirstSource.Folder = "Posta inviata"
		}), Naive: manifestSHA, Sealed: want{evidence.FailClaim, "message " + p.receiptSum, "first source"}},
		{Name: "a leaf's digest", Alter: edit(func(mm *evidence.Manifest) {
			l := &mm.Messages[msgIndex(mm, p.receiptSum)].Leaf
			last := "0"
			if strings.HasSuffix(l.Extra, "0") {
				last = "1"
			}
			l.Extra = l.Extra[:len(l.Extra)-1] + last
		}), Naive: manifestSHA, Sealed: want{evidence.FailProof, "inclusion of " + p.receiptSum, "computed root"}},
		{Name: "a verdict", Alter: edit(func(mm *evidence.Manifest) {
			mm.Deliveries[p.delivery].Recipients[p.notDelivered].Verdict = evidence.VerdictDelivered
		}), Naive: manifestSHA, Sealed: want{evidence.FailClaim, rsub(p.notDelivered), "DELIVERED rests on receipt"}},
		{Name: "a verdict weakened", Alter: edit(func(mm *evidence.Manifest) {
			r := &mm.Deliveries[p.delivery].Recipients[p.delivered]
			r.Verdict = evidence.VerdictWarned
		}), Naive: manifestSHA, Sealed: want{evidence.FailClaim, rsub(p.delivered), "its receipts give DELIVERED"}},
		{Name: "a deciding receipt swapped", Alter: edit(func(mm *evidence.Manifest) {
			r := &mm.Deliveries[p.delivery].Recipients[p.notDelivered]
			r.Verdict, r.Deciding = evidence.VerdictDelivered, mm.Deliveries[p.delivery].Recipients[p.delivered].Deciding
		}), Naive: manifestSHA, Sealed: want{evidence.FailClaim, rsub(p.notDelivered), "not a delivery receipt for this recipient"}},
		{Name: "an explanation", Alter: edit(func(mm *evidence.Manifest) {
			mm.Deliveries[p.delivery].Recipients[p.notDelivered].ExplanationIT = "Consegnato."
		}), Naive: manifestSHA, Sealed: want{evidence.FailClaim, rsub(p.notDelivered), "explanation_it"}},
		{Name: "a receipt hidden from a recipient", Alter: edit(func(mm *evidence.Manifest) {
			r := &mm.Deliveries[p.delivery].Recipients[p.delivered]
			r.Receipts = r.Receipts[1:]
		}), Naive: manifestSHA, Sealed: want{evidence.FailClaim, rsub(p.delivered), "receipts"}},
		{Name: "a proof hash", Alter: edit(func(mm *evidence.Manifest) {
			pr := mm.Messages[msgIndex(mm, p.proofSum)].InclusionProof
			h, _ := base64.StdEncoding.DecodeString(pr[0])
			h[0] ^= 1
			pr[0] = base64.StdEncoding.EncodeToString(h)
		}), Naive: manifestSHA, Sealed: want{evidence.FailProof, "inclusion of " + p.proofSum, "computed root"}},
		{Name: "a leaf index", Alter: edit(func(mm *evidence.Manifest) {
			mm.Messages[msgIndex(mm, p.proofSum)].Leaf.Index++
		}), Naive: manifestSHA, Sealed: want{evidence.FailProof, "inclusion of " + p.proofSum, ""}},
		{Name: "the tree size", Alter: edit(func(mm *evidence.Manifest) { mm.Log.Checkpoint.Size++ }),
			Naive: manifestSHA, Sealed: want{evidence.FailClaim, "log.checkpoint", "size"}},
		{Name: "the checkpoint text", Alter: func(t *testing.T, es []Entry) []Entry {
			e := &es[Find(es, evidence.NameCheckpoint)]
			lines := strings.SplitN(string(e.Data), "\n", 3)
			lines[1] += "0"
			e.Data = []byte(strings.Join(lines, "\n"))
			return es
		}, Naive: want{evidence.FailFile, evidence.NameCheckpoint, "SHA-256"}, Sealed: want{evidence.FailSignature, evidence.NameCheckpoint, "invalid checkpoint"}},
		{Name: "the checkpoint's signature", Alter: func(t *testing.T, es []Entry) []Entry {
			e := &es[Find(es, evidence.NameCheckpoint)]
			s := string(e.Data)
			i := strings.LastIndex(s, " ") + 1
			sig, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(s[i:]))
			sig[len(sig)-1] ^= 1
			e.Data = []byte(s[:i] + base64.StdEncoding.EncodeToString(sig) + "\n")
			return es
		}, Naive: want{evidence.FailFile, evidence.NameCheckpoint, "SHA-256"}, Sealed: want{evidence.FailSignature, evidence.NameCheckpoint, "invalid checkpoint"}},
		{Name: "a certificate", Alter: func(t *testing.T, es []Entry) []Entry {
			e := &es[Find(es, m.Chains[0].File)]
			e.Data = []byte(strings.Replace(string(e.Data), "A", "B", 1))
			return es
		}, Naive: want{evidence.FailFile, m.Chains[0].File, "SHA-256"}, Sealed: want{evidence.FailFile, m.Chains[0].File, ""}},
		{Name: "the anchor snapshot", Alter: func(t *testing.T, es []Entry) []Entry {
			es[Find(es, m.AnchorSets[0].File)].Data = otherAnchors
			return es
		}, Naive: want{evidence.FailFile, m.AnchorSets[0].File, "SHA-256"}, Sealed: want{evidence.FailFile, m.AnchorSets[0].File, "identifier"}},
		{Name: "the anchor snapshot and its claims", Alter: func(t *testing.T, es []Entry) []Entry {
			// Other anchors in, renamed everywhere: the signatures no longer verify as trusted.
			mm := ManifestOf(t, es)
			old := mm.AnchorSets[0].SHA256
			sum := evidence.AnchorsID([][]byte{other.Root.Raw, other.Intermediate.Raw})
			id := hex.EncodeToString(sum[:])
			mm.AnchorSets[0].SHA256, mm.AnchorSets[0].File = id, evidence.AnchorsName(sum)
			for i := range mm.Messages {
				if mm.Messages[i].Record.AnchorsSHA256 == old {
					mm.Messages[i].Record.AnchorsSHA256 = id
				}
			}
			SetManifest(t, es, mm)
			es[Find(es, m.AnchorSets[0].File)] = Entry{evidence.AnchorsName(sum), otherAnchors}
			return es
		}, Naive: manifestSHA, Sealed: want{evidence.FailSignature, "signature of ", "not trusted"}},
		{Name: "the log key", Alter: func(t *testing.T, es []Entry) []Entry {
			es[Find(es, evidence.NameLogKey)].Data = []byte(m.Log.Origin + "+00000000+AQ" + strings.Repeat("A", 42) + "=\n")
			return es
		}, Naive: want{evidence.FailFile, evidence.NameLogKey, "SHA-256"}, Sealed: want{evidence.FailClaim, evidence.NameLogKey, "differs from the keys given"}},
		{Name: "the report", Alter: func(t *testing.T, es []Entry) []Entry {
			e := &es[Find(es, evidence.NameReport)]
			e.Data = bytes.Replace(e.Data, []byte("NON CONSEGNATO"), []byte("CONSEGNATO"), 1)
			e.Data = bytes.Replace(e.Data, []byte("SOLO ACCETTATO"), []byte("CONSEGNATO"), 1)
			return es
		}, NoRender: true, Naive: want{evidence.FailFile, evidence.NameReport, "SHA-256"}, Sealed: want{evidence.FailFile, evidence.NameReport, "not the statement"}},
		{Name: "a file dropped", Alter: func(t *testing.T, es []Entry) []Entry {
			i := Find(es, p.receiptFile)
			return append(es[:i:i], es[i+1:]...)
		}, Naive: want{evidence.FailFile, p.receiptFile, "missing"}, Sealed: want{evidence.FailFile, p.receiptFile, "missing"}},
		{Name: "a file renamed", Alter: func(t *testing.T, es []Entry) []Entry {
			es[Find(es, p.receiptFile)].Name = "messages/" + strings.Repeat("0", 64) + ".eml"
			return es
		}, Naive: want{evidence.FailFile, p.receiptFile, "missing"}, Sealed: want{evidence.FailFile, p.receiptFile, "missing"}},
		{Name: "a file added", Alter: func(t *testing.T, es []Entry) []Entry {
			n := len(es)
			return append(es[:n-1:n-1], Entry{"messages/extra.eml", []byte("Subject: planted\r\n\r\nhello\r\n")}, es[n-1])
		}, Naive: want{evidence.FailFile, "messages/extra.eml", "not listed"}, Sealed: want{evidence.FailFile, "messages/extra.eml", "should not hold"}},
	}
	cases = append(cases, TamperCase{Name: "a deciding receipt removed from the bundle", Alter: func(t *testing.T, es []Entry) []Entry {
		// Dropped with every mention of it, the verdict and the report made to match.
		mm := ManifestOf(t, es)
		r := &mm.Deliveries[p.delivery].Recipients[p.notDelivered]
		gone := r.Deciding
		r.Receipts = slices.DeleteFunc(r.Receipts, func(s string) bool { return s == gone })
		r.Verdict, r.Deciding = evidence.VerdictAcceptedOnly, ""
		mm.Messages = slices.DeleteFunc(mm.Messages, func(x evidence.Message) bool { return x.SHA256 == gone })
		SetManifest(t, es, mm)
		i := Find(es, "messages/"+gone+".eml")
		return append(es[:i:i], es[i+1:]...)
	}, Naive: manifestSHA, Sealed: want{evidence.FailClaim, rsub(p.notDelivered), ""}})
	if len(m.Log.Earlier) > 0 {
		e := m.Log.Earlier[0]
		cases = append(cases,
			TamperCase{Name: "an earlier checkpoint", Alter: func(t *testing.T, es []Entry) []Entry {
				x := &es[Find(es, e.File)]
				x.Data = bytes.Replace(x.Data, []byte("\n"), []byte("\n\n"), 1)
				return es
			}, Naive: want{evidence.FailFile, e.File, "SHA-256"}, Sealed: want{evidence.FailSignature, e.File, "invalid checkpoint"}},
			TamperCase{Name: "a consistency proof", Alter: edit(func(mm *evidence.Manifest) {
				pr := mm.Log.Earlier[0].ConsistencyProof
				pr[len(pr)-1] = base64.StdEncoding.EncodeToString(make([]byte, 32))
			}), Naive: manifestSHA, Sealed: want{evidence.FailProof, "consistency " + e.File, ""}},
		)
	}
	if p.badIn >= 0 {
		bd := m.Deliveries[p.badIn]
		bsub := " recipient " + bd.Recipients[p.badRecipient].Address
		cases = append(cases,
			TamperCase{Name: "a receipt failing verification made deciding", Alter: edit(func(mm *evidence.Manifest) {
				r := &mm.Deliveries[p.badIn].Recipients[p.badRecipient]
				r.Verdict, r.Deciding = evidence.VerdictDelivered, p.bad
			}), Naive: manifestSHA, Sealed: want{evidence.FailClaim, bsub, "not valid and trusted"}},
			TamperCase{Name: "a receipt failing verification recorded as trusted", Alter: edit(func(mm *evidence.Manifest) {
				sig := &mm.Messages[msgIndex(mm, p.bad)].Record.Signature
				sig.Valid, sig.Trusted, sig.Reasons = true, true, []string{"weak-digest-sha1"}
				r := &mm.Deliveries[p.badIn].Recipients[p.badRecipient]
				r.Verdict, r.Deciding = evidence.VerdictDelivered, p.bad
			}), Naive: manifestSHA, Sealed: want{evidence.FailSignature, "signature of " + p.bad, ""}},
		)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			check := func(what string, data []byte, w want) {
				res := evidence.VerifyReaderAt(context.Background(), bytes.NewReader(data), int64(len(data)), &evidence.VerifyOptions{LogKey: vkey})
				if res.OK || !HasFailure(res, w.kind, w.subject, w.detail) {
					t.Errorf("%s: want a %s failure of %q (%q), got:\n%s", what, w.kind, w.subject, w.detail, Failures(res))
				}
			}
			check("left as altered", Rezip(t, c.Alter(t, cloneEntries(orig))), c.Naive)
			if c.Sealed.kind != "" {
				check("resealed", Rezip(t, Reseal(t, c.Alter(t, cloneEntries(orig)), !c.NoRender)), c.Sealed)
			}
		})
	}
}

func cloneEntries(es []Entry) []Entry {
	out := make([]Entry, len(es))
	for i, e := range es {
		out[i] = Entry{e.Name, bytes.Clone(e.Data)}
	}
	return out
}

package catalog_test

import (
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pecarchive/pecarchive/internal/samples"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
)

// FuzzNormalize: whatever a parser extracts, Normalize makes it storable (valid UTF-8, no NUL,
// bounded), is idempotent (what it makes is canonical), and the evidence digest does not depend
// on normalisation.
func FuzzNormalize(f *testing.F) {
	f.Add("<id@x>", "Sender@EXAMPLE.it", "CONSEGNA: caf\xe9\x00", "a@b", "opec.1@pec.it")
	f.Add(strings.Repeat("é", 3000), "", strings.Repeat("\x00", 10), strings.Repeat("x", 5000), " <a> ")
	if d := samples.Dir(); d != "" {
		for _, p := range samples.Glob(f, "daticert/*.xml") {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(string(b), string(b), string(b), string(b), string(b))
		}
	}
	f.Fuzz(func(t *testing.T, id, sender, subject, rcpt, pecID string) {
		m := catalog.Message{Kind: pec.KindAvvenutaConsegna, MessageID: id, Sender: sender, Subject: subject,
			Recipients: []string{rcpt, rcpt}, RecipientTypes: []string{subject}, PECID: pecID, XRiferimento: id,
			ErroreEsteso: subject, Verdict: catalog.Verdict{Reasons: []string{subject}, Signer: sender}, Problems: []string{subject}}
		d := m.EvidenceDigest()
		m.Normalize()
		for _, s := range []string{m.MessageID, m.Sender, m.Subject, m.Recipients[0], m.PECID, m.RefMsgID, m.ErroreEsteso,
			m.Verdict.Reasons[0], m.Verdict.Signer, m.Problems[0], m.RecipientTypes[0]} {
			if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 || len(s) > catalog.MaxText {
				t.Fatalf("not storable: %q", s)
			}
		}
		if len(m.RecipientTypes) != len(m.Recipients) {
			t.Fatal("recipient types not aligned")
		}
		n := m
		n.Normalize()
		if n.EvidenceDigest() != d || m.EvidenceDigest() != d {
			t.Fatal("digest depends on normalisation")
		}
		if n.Subject != m.Subject || n.MessageID != m.MessageID || n.Sender != m.Sender || n.RefMsgID != m.RefMsgID {
			t.Fatal("Normalize is not idempotent")
		}
		if nc := m.NonCanonical(); nc != nil {
			t.Fatalf("a normalised row is not canonical: %v", nc)
		}
		if _, err := catalog.ParseLeafExtra(m.LeafExtra()); err != nil {
			t.Fatal(err)
		}
		first := catalog.Source{Mailbox: sender, Folder: subject, Path: id, FirstSeen: time.Unix(1e9, 123456789)}
		d2 := m.EvidenceDigestV2()
		if n.EvidenceDigestV2() != d2 {
			t.Fatal("the v2 digest depends on normalisation")
		}
		ld, err := catalog.ParseLeafDigest(m.LeafExtraV2(&first))
		if err != nil || ld.Version != catalog.DigestV2 || ld.Row != d2 || ld.Source != catalog.SourceDigest(m.SHA256, &first) {
			t.Fatalf("catalog/v2 extra does not parse back: %+v, %v", ld, err)
		}
	})
}

// FuzzParseLeafDigest: any leaf Extra (read from the log, so from anyone who could write it)
// parses or is refused without panicking, and what parses is canonical.
func FuzzParseLeafDigest(f *testing.F) {
	m := catalog.Message{Kind: pec.KindNotPEC, Size: 1}
	src := catalog.Source{Path: "x"}
	for _, s := range []string{m.LeafExtra(), m.LeafExtraV2(&src), catalog.SourceLeafExtra(m.SHA256, &src), "", "catalog/v2 x y", "catalog/v1 " + strings.Repeat("A", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, extra string) {
		d, err := catalog.ParseLeafDigest(extra)
		if err != nil {
			return
		}
		var want string
		switch d.Version {
		case catalog.DigestV1:
			want = d.Version + " " + hex.EncodeToString(d.Row[:])
		case catalog.DigestV2:
			want = d.Version + " " + hex.EncodeToString(d.Row[:]) + " " + hex.EncodeToString(d.Source[:])
		case catalog.SourceDigestVersion:
			want = d.Version + " " + hex.EncodeToString(d.Source[:])
		default:
			t.Fatalf("version %q", d.Version)
		}
		if want != extra {
			t.Fatalf("%q parsed, but is not canonical (%q)", extra, want)
		}
	})
}

// TestNonCanonical: a row normalises to the same digest whether or not its values are stored as
// the archive writes them; NonCanonical names each field that is not.
func TestNonCanonical(t *testing.T) {
	m := catalog.Message{Kind: pec.KindAccettazione, MessageID: "id@x", OrigMsgID: "orig@x", PECID: "opec.1@pec.it", Sender: "a@pec.it",
		Recipients: []string{"b@pec.it", "c@pec.it"}, RecipientTypes: []string{"certificato", ""}}
	m.Normalize()
	if nc := m.NonCanonical(); nc != nil {
		t.Fatalf("a normalised row: %v", nc)
	}
	d := m.EvidenceDigestV2()
	e := m
	e.MessageID, e.Sender, e.RecipientTypes, e.RefMsgID = "<id@x>", "A@PEC.IT", []string{"certificato"}, ""
	if e.EvidenceDigestV2() != d {
		t.Fatal("the edit changed the digest; the test means one that does not")
	}
	got := strings.Join(e.NonCanonical(), "; ")
	for _, f := range []string{`message_id "<id@x>"`, `sender "A@PEC.IT"`, `recipient_types ["certificato"]`, `ref_msgid ""`} {
		if !strings.Contains(got, f) {
			t.Errorf("NonCanonical = %s; want it to name %s", got, f)
		}
	}
}

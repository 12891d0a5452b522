package record_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/pec/smime"
	"github.com/pecarchive/pecarchive/record"
	"github.com/pecarchive/pecarchive/tlog"
)

// The identifiers of certificate sets are pec/smime's.
func TestAnchorSetIsTrustStoreID(t *testing.T) {
	ca, err := pectest.NewCA(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, id := record.AnchorSet([][]byte{ca.Root.Raw, ca.Intermediate.Raw, ca.Root.Raw})
	if got := hex.EncodeToString(id[:]); got != smime.NewTrustStore(ca.Intermediate, ca.Root).ID() {
		t.Fatalf("anchor set %s is not the trust store's ID", got)
	}
	if record.ChainID([][]byte{[]byte("a"), []byte("b")}) != sha256.Sum256([]byte("ab")) {
		t.Fatal("ChainID is not the SHA-256 of the concatenation")
	}
}

// A catalog/v2 leaf commits to the record, received_at to the microsecond, and the first source;
// each change is named.
func TestCheckMessageLeaf(t *testing.T) {
	m := record.Message{SHA256: sha256.Sum256([]byte("x")), Size: 1, Kind: pec.KindAccettazione, Subject: "Oggetto",
		Recipients: []string{"A@Pec.It "}, RecipientTypes: []string{"certificato"},
		ReceivedAt: time.Date(2026, 5, 18, 10, 0, 0, 123456789, time.UTC)}
	first := record.Source{Mailbox: "ordine", Folder: "INBOX", UIDValidity: 7, UID: 9, FirstSeen: m.ReceivedAt}
	leaf := tlog.Leaf{Kind: tlog.KindMessage, SHA256: m.SHA256, Time: m.ReceivedAt.Truncate(time.Second), Extra: m.LeafExtraV2(&first)}
	if err := record.CheckMessageLeaf(leaf, &m, &first); err != nil {
		t.Fatal(err)
	}
	altered := m
	altered.Subject = "Altro"
	micro := m
	micro.ReceivedAt = m.ReceivedAt.Add(time.Microsecond)
	moved := first
	moved.UID = 10
	for name, c := range map[string]struct {
		m    record.Message
		src  *record.Source
		want error
	}{
		"a field":        {altered, &first, record.ErrAltered},
		"received_at µs": {micro, &first, record.ErrAltered},
		"first source":   {m, &moved, record.ErrSourceAltered},
		"no source":      {m, nil, record.ErrSourceAltered},
	} {
		if err := record.CheckMessageLeaf(leaf, &c.m, c.src); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if d, err := record.ParseLeafDigest(leaf.Extra); err != nil || d.Version != record.DigestV2 || d.Row != m.EvidenceDigestV2() {
		t.Fatalf("ParseLeafDigest: %+v %v", d, err)
	}
	if _, err := record.ParseLeafDigest("catalog/v2 00"); !errors.Is(err, record.ErrInvalid) {
		t.Fatalf("a bad digest: %v", err)
	}
}

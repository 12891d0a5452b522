package verdict_test

import (
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/evidence/verdict"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/smime"
)

// decodeReceipts turns fuzz bytes into receipts: 4 bytes each, picking the kind, the msgid (the
// one asked about or another), the consegna, the recipients, the signature's state and a time.
func decodeReceipts(data []byte) []verdict.Message {
	kinds := append(append([]pec.Kind{}, pec.Kinds...), pec.KindNotPEC, "")
	addrs := []string{"", "a@pec.it", "A@PEC.IT ", "b@pec.it", "c@pec.it"}
	reasons := [][]string{nil, {smime.ReasonWeakDigestSHA1}, {smime.ReasonExpired}, {smime.ReasonBadSignature}}
	var out []verdict.Message
	for i := 0; i+4 <= len(data) && len(out) < 64; i += 4 {
		b := data[i : i+4]
		m := verdict.Message{
			SHA256:   sha256.Sum256(b),
			Kind:     kinds[int(b[0])%len(kinds)],
			MsgID:    []string{"<m@x>", "m@x", "other@x", ""}[b[1]%4],
			Consegna: addrs[int(b[1]>>2)%len(addrs)],
			Valid:    b[2]&1 != 0, Trusted: b[2]&2 != 0,
			Reasons: reasons[int(b[2]>>2)%len(reasons)],
			Errore:  pec.ErrorCode([]string{"", "no-dest", "altro"}[int(b[2]>>4)%3]),
		}
		for j, a := range addrs {
			if b[3]&(1<<j) != 0 {
				m.Recipients = append(m.Recipients, a)
			}
		}
		if b[3]&0x80 != 0 {
			m.DaticertTime = time.Unix(int64(b[0])*3600+int64(b[3]), 0)
		}
		out = append(out, m)
	}
	return out
}

// FuzzDecide: whatever the receipts claim, Decide never panics, answers every recipient with a
// verdict and two explanations, and DELIVERED rests on a receipt that counts, is a delivery
// receipt about that very message and names that very recipient.
func FuzzDecide(f *testing.F) {
	f.Add([]byte{3, 4, 3, 0x03}, []byte("a@pec.it"))
	f.Add([]byte{0, 0, 3, 0x1f, 3, 8, 1, 0, 5, 12, 3, 0x84}, []byte("A@pec.it,b@pec.it"))
	f.Fuzz(func(t *testing.T, data, rcpts []byte) {
		receipts := decodeReceipts(data)
		orig := verdict.Original{MsgID: "m@x", Recipients: strings.Split(string(rcpts), ",")}
		res := verdict.Decide(orig, receipts)
		seen := map[string]bool{}
		for _, r := range res.Recipients {
			if r.Address == "" || seen[r.Address] || r.Address != verdict.NormAddr(r.Address) {
				t.Fatalf("recipient %q listed twice, empty or not normalised", r.Address)
			}
			seen[r.Address] = true
			if r.ExplanationIT == "" || r.ExplanationEN == "" {
				t.Fatalf("%s: no explanation", r.Address)
			}
			switch r.Verdict {
			case verdict.Unverified, verdict.Pending:
				if r.Deciding != -1 {
					t.Fatalf("%s: %s with deciding receipt %d", r.Address, r.Verdict, r.Deciding)
				}
				continue
			}
			if r.Deciding < 0 || r.Deciding >= len(receipts) {
				t.Fatalf("%s: %s without a deciding receipt", r.Address, r.Verdict)
			}
			d := receipts[r.Deciding]
			if !verdict.Counts(&d) || verdict.NormMsgID(d.MsgID) != "m@x" {
				t.Fatalf("%s: %s rests on a receipt that does not count: %+v", r.Address, r.Verdict, d)
			}
			if r.Verdict == verdict.Delivered && (d.Kind != pec.KindAvvenutaConsegna || verdict.NormAddr(d.Consegna) != r.Address) {
				t.Fatalf("%s: DELIVERED by %+v", r.Address, d)
			}
		}
		for _, a := range orig.Recipients {
			if a := verdict.NormAddr(a); a != "" && !seen[a] {
				t.Fatalf("recipient %q of the original not answered", a)
			}
		}
	})
}

package catalog

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pecarchive/pecarchive/pec"
)

// Limits applied by [Message.Normalize] so that no input can make a row unstorable.
const (
	MaxText      = 4096 // bytes of one text field (subject, errore-esteso, signer, ...)
	MaxID        = 998  // bytes of a message id or an address (RFC 5322 line length)
	MaxList      = 1000 // entries of a list (recipients, reasons, problems)
	MaxListEntry = 1024 // bytes of one reason or problem
)

// clean makes s storable in a PostgreSQL text column: valid UTF-8, no NUL, at most max bytes
// (cut at a rune boundary). It is idempotent.
func clean(s string, max int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if len(s) > max {
		i := max
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i]
	}
	return s
}

func cleanList(l []string, max int) []string {
	if len(l) > MaxList {
		l = l[:MaxList]
	}
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = clean(s, max)
	}
	return out
}

// addr normalises an e-mail address for correlation: trimmed, lower case.
// Cleaning comes first so that trimming sees the final characters (a NUL after a space would
// otherwise leave the space for a second pass to trim: normalisation must be idempotent).
func addr(s string) string { return strings.TrimSpace(clean(strings.ToLower(s), MaxID)) }

// MsgID normalises a message id for correlation: cleaned, then trimmed of white space and of
// the angle brackets around it (every enclosing pair, so that normalising twice changes nothing).
func MsgID(s string) string {
	s = strings.TrimSpace(clean(s, MaxID))
	for len(s) >= 2 && s[0] == '<' && s[len(s)-1] == '>' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	return s
}

func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Truncate(time.Microsecond)
}

// RefMsgID returns the correlation key of a message: the Message-ID of the original it is, is a
// copy of, or is about. For a PEC message (receipt, envelope) that is the daticert msgid, else
// its X-Riferimento-Message-ID. For a message that is not PEC it is its X-Riferimento-Message-ID
// when it has one (a provider's copy of an original, such as the postacert.eml of an envelope or
// a complete delivery receipt, whose own Message-ID is the PEC id), else its own Message-ID (the
// original as sent).
func RefMsgID(kind pec.Kind, messageID, origMsgID, xRiferimento string) string {
	if kind == pec.KindNotPEC {
		if x := MsgID(xRiferimento); x != "" {
			return x
		}
		return MsgID(messageID)
	}
	if o := MsgID(origMsgID); o != "" {
		return o
	}
	return MsgID(xRiferimento)
}

// Normalize makes m storable and canonical: text cleaned and bounded, addresses lower-cased,
// message ids without angle brackets, times truncated to microseconds (PostgreSQL's precision),
// RecipientTypes as long as Recipients, RefMsgID derived when empty. It is idempotent; [Write]
// and [Message.EvidenceDigest] rely on it.
func (m *Message) Normalize() {
	m.Kind = pec.Kind(clean(string(m.Kind), 64))
	m.MessageID = MsgID(m.MessageID)
	m.PECID = MsgID(m.PECID)
	m.OrigMsgID = MsgID(m.OrigMsgID)
	m.XRiferimento = MsgID(m.XRiferimento)
	if m.RefMsgID == "" {
		m.RefMsgID = RefMsgID(m.Kind, m.MessageID, m.OrigMsgID, m.XRiferimento)
	}
	m.RefMsgID = MsgID(m.RefMsgID)
	m.Sender = addr(m.Sender)
	m.From = addr(m.From)
	if len(m.Recipients) > MaxList {
		m.Recipients = m.Recipients[:MaxList]
	}
	rs := make([]string, len(m.Recipients))
	ts := make([]string, len(m.Recipients))
	for i, r := range m.Recipients {
		rs[i] = addr(r)
		if i < len(m.RecipientTypes) {
			ts[i] = clean(m.RecipientTypes[i], 32)
		}
	}
	m.Recipients, m.RecipientTypes = rs, ts
	m.Subject = clean(m.Subject, MaxText)
	m.Provider = clean(m.Provider, MaxText)
	m.DaticertTime = normTime(m.DaticertTime)
	m.HeaderDate = normTime(m.HeaderDate)
	m.ReceiptType = pec.ReceiptType(clean(string(m.ReceiptType), 32))
	m.Errore = pec.ErrorCode(clean(string(m.Errore), 32))
	m.ErroreEsteso = clean(m.ErroreEsteso, MaxText)
	m.Consegna = addr(m.Consegna)
	m.Verdict.Digest = clean(m.Verdict.Digest, 64)
	m.Verdict.Signer = clean(m.Verdict.Signer, MaxText)
	m.Verdict.SignerEmail = addr(m.Verdict.SignerEmail)
	m.Verdict.SignedAt = normTime(m.Verdict.SignedAt)
	m.Verdict.VerifiedAt = normTime(m.Verdict.VerifiedAt)
	m.Verdict.Provider = clean(m.Verdict.Provider, MaxText)
	m.Verdict.Reasons = cleanList(m.Verdict.Reasons, MaxListEntry)
	m.Verdict.Details = cleanList(m.Verdict.Details, MaxListEntry)
	m.Problems = cleanList(m.Problems, MaxListEntry)
	m.ReceivedAt = normTime(m.ReceivedAt)
}

// DigestVersion prefixes [Message.LeafExtra].
const DigestVersion = "catalog/v1"

// EvidenceDigest returns the SHA-256 of a canonical, length-prefixed encoding of m's evidence
// fields (every field except LeafIndex and ReceivedAt, which the leaf carries itself), after
// [Message.Normalize]. It does not modify m.
func (m *Message) EvidenceDigest() [32]byte {
	c := *m
	c.Normalize()
	var b bytes.Buffer
	b.WriteString(DigestVersion)
	str := func(s string) {
		var n [binary.MaxVarintLen64]byte
		b.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		b.WriteString(s)
	}
	num := func(v int64) {
		var n [binary.MaxVarintLen64]byte
		b.Write(n[:binary.PutVarint(n[:], v)])
	}
	tm := func(t time.Time) {
		if t.IsZero() {
			b.WriteByte(0)
			return
		}
		b.WriteByte(1)
		num(t.UnixMicro())
		_, off := t.Zone()
		num(int64(off))
	}
	flag := func(v bool) {
		if v {
			b.WriteByte(1)
		} else {
			b.WriteByte(0)
		}
	}
	list := func(l []string) {
		num(int64(len(l)))
		for _, s := range l {
			str(s)
		}
	}
	b.Write(c.SHA256[:])
	num(c.Size)
	str(string(c.Kind))
	str(c.MessageID)
	str(c.PECID)
	str(c.OrigMsgID)
	str(c.XRiferimento)
	str(c.RefMsgID)
	str(c.Sender)
	str(c.From)
	list(c.Recipients)
	list(c.RecipientTypes)
	str(c.Subject)
	str(c.Provider)
	tm(c.DaticertTime)
	tm(c.HeaderDate.UTC())
	str(string(c.ReceiptType))
	str(string(c.Errore))
	str(c.ErroreEsteso)
	str(c.Consegna)
	flag(c.Verdict.Present)
	flag(c.Verdict.Valid)
	flag(c.Verdict.Trusted)
	str(c.Verdict.Digest)
	str(c.Verdict.Signer)
	str(c.Verdict.SignerEmail)
	str(c.Verdict.Provider)
	tm(c.Verdict.SignedAt.UTC())
	tm(c.Verdict.VerifiedAt.UTC())
	list(c.Verdict.Reasons)
	list(c.Verdict.Details)
	list(c.Problems)
	b.Write(c.ChainSHA256[:])
	b.Write(c.AnchorsSHA256[:])
	b.Write(c.PostacertSHA256[:])
	return sha256.Sum256(b.Bytes())
}

// LeafExtra returns the Extra field of the message's log leaf: "catalog/v1 " and the hex
// [Message.EvidenceDigest].
func (m *Message) LeafExtra() string {
	d := m.EvidenceDigest()
	return DigestVersion + " " + hex.EncodeToString(d[:])
}

// ParseLeafExtra returns the evidence digest carried by a leaf's Extra field.
func ParseLeafExtra(extra string) ([32]byte, error) {
	var d [32]byte
	h, ok := strings.CutPrefix(extra, DigestVersion+" ")
	if !ok || len(h) != 64 {
		return d, fmt.Errorf("%w: leaf extra %.80q is not a %s digest", ErrInvalid, extra, DigestVersion)
	}
	if _, err := hex.Decode(d[:], []byte(h)); err != nil {
		return d, fmt.Errorf("%w: leaf extra: %v", ErrInvalid, err)
	}
	return d, nil
}

// certConcatSum returns SHA-256 over the concatenated DER certificates (DER is self-delimiting,
// so the concatenation is unambiguous).
func certConcatSum(certs [][]byte) [32]byte {
	h := sha256.New()
	for _, c := range certs {
		h.Write(c)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// ChainSet returns the CertSet of a signer chain (DER, signer first; order kept). Its SHA256 is
// the SHA-256 of the concatenated DER.
func ChainSet(certs [][]byte) CertSet {
	return CertSet{SHA256: certConcatSum(certs), Certs: certs}
}

// AnchorSet returns the CertSet of a trust-anchor set: the DER certificates sorted by their bytes,
// duplicates removed, and SHA256 over their concatenation, which is what pec/smime's
// TrustStore.ID is (in hex), so the same anchors always give the same key. label is
// informational.
func AnchorSet(certs [][]byte, label string) CertSet {
	out := make([][]byte, len(certs))
	copy(out, certs)
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i], out[j]) < 0 })
	k := 0
	for i := range out {
		if i > 0 && bytes.Equal(out[i], out[k-1]) {
			continue
		}
		out[k] = out[i]
		k++
	}
	out = out[:k]
	return CertSet{SHA256: certConcatSum(out), Label: clean(label, MaxText), Certs: out}
}

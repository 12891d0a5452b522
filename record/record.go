package record

import (
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

// Clean makes s storable in a PostgreSQL text column: valid UTF-8, no NUL, at most max bytes
// (cut at a rune boundary). It is idempotent.
func Clean(s string, max int) string {
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

// CleanList cleans every entry of l (see [Clean]) and keeps at most MaxList of them.
func CleanList(l []string, max int) []string {
	if len(l) > MaxList {
		l = l[:MaxList]
	}
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = Clean(s, max)
	}
	return out
}

// Addr normalises an e-mail address for correlation: trimmed, lower case.
// Cleaning comes first so that trimming sees the final characters (a NUL after a space would
// otherwise leave the space for a second pass to trim: normalisation must be idempotent).
func Addr(s string) string { return strings.TrimSpace(Clean(strings.ToLower(s), MaxID)) }

// MsgID normalises a message id for correlation: cleaned, then trimmed of white space and of
// the angle brackets around it (every enclosing pair, so that normalising twice changes nothing).
func MsgID(s string) string {
	s = strings.TrimSpace(Clean(s, MaxID))
	for len(s) >= 2 && s[0] == '<' && s[len(s)-1] == '>' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	return s
}

// NormTime truncates t to the microsecond (PostgreSQL's precision); the zero time stays zero.
func NormTime(t time.Time) time.Time {
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
// RecipientTypes as long as Recipients, RefMsgID derived when empty. It is idempotent; the catalog's writes and
// [Message.EvidenceDigest] rely on it.
func (m *Message) Normalize() {
	m.Kind = pec.Kind(Clean(string(m.Kind), 64))
	m.MessageID = MsgID(m.MessageID)
	m.PECID = MsgID(m.PECID)
	m.OrigMsgID = MsgID(m.OrigMsgID)
	m.XRiferimento = MsgID(m.XRiferimento)
	if m.RefMsgID == "" {
		m.RefMsgID = RefMsgID(m.Kind, m.MessageID, m.OrigMsgID, m.XRiferimento)
	}
	m.RefMsgID = MsgID(m.RefMsgID)
	m.Sender = Addr(m.Sender)
	m.From = Addr(m.From)
	if len(m.Recipients) > MaxList {
		m.Recipients = m.Recipients[:MaxList]
	}
	rs := make([]string, len(m.Recipients))
	ts := make([]string, len(m.Recipients))
	for i, r := range m.Recipients {
		rs[i] = Addr(r)
		if i < len(m.RecipientTypes) {
			ts[i] = Clean(m.RecipientTypes[i], 32)
		}
	}
	m.Recipients, m.RecipientTypes = rs, ts
	m.Subject = Clean(m.Subject, MaxText)
	m.Provider = Clean(m.Provider, MaxText)
	m.DaticertTime = NormTime(m.DaticertTime)
	m.HeaderDate = NormTime(m.HeaderDate)
	m.ReceiptType = pec.ReceiptType(Clean(string(m.ReceiptType), 32))
	m.Errore = pec.ErrorCode(Clean(string(m.Errore), 32))
	m.ErroreEsteso = Clean(m.ErroreEsteso, MaxText)
	m.Consegna = Addr(m.Consegna)
	m.Verdict.Digest = Clean(m.Verdict.Digest, 64)
	m.Verdict.Signer = Clean(m.Verdict.Signer, MaxText)
	m.Verdict.SignerEmail = Addr(m.Verdict.SignerEmail)
	m.Verdict.SignedAt = NormTime(m.Verdict.SignedAt)
	m.Verdict.VerifiedAt = NormTime(m.Verdict.VerifiedAt)
	m.Verdict.Provider = Clean(m.Verdict.Provider, MaxText)
	m.Verdict.Reasons = CleanList(m.Verdict.Reasons, MaxListEntry)
	m.Verdict.Details = CleanList(m.Verdict.Details, MaxListEntry)
	m.Problems = CleanList(m.Problems, MaxListEntry)
	m.ReceivedAt = NormTime(m.ReceivedAt)
	m.BlobVersion = Clean(m.BlobVersion, 1024)
}

// Verdict is the outcome of verifying a message's signature (see pec/smime), as stored.
type Verdict struct {
	Present     bool   // a signature is present
	Valid       bool   // the CMS signature matches the exact signed bytes
	Trusted     bool   // chain, PEC profile, e-mail and provider index hold as of VerifiedAt
	Digest      string // digest algorithm: "sha1", "sha256", ...
	Signer      string // signer certificate subject DN
	SignerEmail string
	// Provider is the providerName of the provider-index entry listing the signer, when an index
	// was used.
	Provider   string
	SignedAt   time.Time // zero when unknown
	VerifiedAt time.Time // the time the verification was made as of; zero when not verified
	// Reasons are the machine-readable verification reasons (pec/smime Reason values).
	Reasons []string
	// Details are human-readable explanations of the reasons.
	Details []string
}

// Message is what the archive records about one raw message (one row of the catalog's messages
// table).
// Zero [32]byte values mean "none"; zero times mean "unknown".
type Message struct {
	SHA256 [32]byte
	Size   int64
	Kind   pec.Kind
	// MessageID is the message's own Message-ID (without angle brackets). A transport
	// envelope's Message-ID is its PEC id.
	MessageID string
	// PECID is the daticert identificativo.
	PECID string
	// OrigMsgID is the daticert msgid: the Message-ID of the original the message is about.
	OrigMsgID string
	// XRiferimento is the X-Riferimento-Message-ID header.
	XRiferimento string
	// RefMsgID is the correlation key (see [RefMsgID]): the Message-ID of the original the
	// message is, is a copy of, or is about. Derived by Normalize when empty.
	RefMsgID string
	// Sender is the daticert mittente, else the From address.
	Sender string
	// From is the From address.
	From string
	// Recipients are the daticert destinatari for PEC kinds, else the To and Cc addresses;
	// RecipientTypes has the daticert tipo of each ("" when unknown), same length.
	Recipients     []string
	RecipientTypes []string
	Subject        string
	// Provider is the daticert gestore-emittente.
	Provider string
	// DaticertTime is the daticert data, in its zona as a fixed zone.
	DaticertTime time.Time
	// HeaderDate is the Date header.
	HeaderDate   time.Time
	ReceiptType  pec.ReceiptType
	Errore       pec.ErrorCode
	ErroreEsteso string
	Consegna     string
	Verdict      Verdict
	// Problems are the parse problems (and anything else the archive flagged).
	Problems []string
	// ChainSHA256 identifies the signer's certificate chain in cert_chains.
	ChainSHA256 [32]byte
	// AnchorsSHA256 identifies the trust-anchor set used, in trust_anchor_sets.
	AnchorsSHA256 [32]byte
	// PostacertSHA256 is the SHA-256 of the postacert.eml carried inside the message.
	PostacertSHA256 [32]byte
	// LeafIndex is the index of the message's leaf in the transparency log.
	LeafIndex uint64
	// ReceivedAt is when the archive first stored the message (microsecond precision; the log
	// leaf carries it truncated to seconds).
	ReceivedAt time.Time
	// ContainedIn, when set, is the SHA-256 of the message whose blob carries this message's
	// bytes (the postacert.eml of a complete delivery receipt, which has no blob of its own). It says where the bytes are, not what they are: it is not part of the
	// evidence digest.
	ContainedIn [32]byte
	// BlobVersion is the version of the blob-store object that holds the bytes as the archive
	// wrote them (an S3 version ID, see the archive's blob store); "" when the store keeps no versions or
	// the message has no blob of its own. Like ContainedIn it is not part of the evidence digest:
	// reads and the audit use it and re-hash what they read.
	BlobVersion string
}

// Source is one place a message was found.
type Source struct {
	Mailbox      string
	Folder       string
	UIDValidity  uint32
	UID          uint32
	InternalDate time.Time
	Path         string
	// Parent is set for a message extracted from another one (Path names the part).
	Parent    [32]byte
	FirstSeen time.Time
}

package evidence

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Format is the value of [Manifest].Format this package writes and reads.
const Format = "pecarchive-bundle/v1"

// MediaType is the content of the mimetype entry: an ASiC-E container.
const MediaType = "application/vnd.etsi.asic-e+zip"

// Names of the fixed entries.
const (
	NameMimetype     = "mimetype"
	NameASiCManifest = "META-INF/ASiCManifest.xml"
	NameManifest     = "manifest.json"
	NameReport       = "report.html"
	NameCheckpoint   = "checkpoint.txt"
	NameLogKey       = "log-public-key.txt"
)

// Folders of the named entries.
const (
	dirMessages    = "messages/"
	dirChains      = "certs/chains/"
	dirAnchors     = "certs/anchors/"
	dirCheckpoints = "checkpoints/"
)

// Media types of the entries (the ASiC manifest's MimeType, the manifest's files[].type).
const (
	TypeMessage    = "message/rfc822"
	TypeCerts      = "application/pem-certificate-chain"
	TypeCheckpoint = "text/plain; charset=utf-8"
	TypeKey        = "text/plain; charset=utf-8"
	TypeReport     = "text/html; charset=utf-8"
	TypeJSON       = "application/json"
)

// MessageName returns the entry name of the message whose bytes hash to sum.
func MessageName(sum [32]byte) string { return dirMessages + hex.EncodeToString(sum[:]) + ".eml" }

// ChainName returns the entry name of the signer chain whose identifier is sum.
func ChainName(sum [32]byte) string { return dirChains + hex.EncodeToString(sum[:]) + ".pem" }

// AnchorsName returns the entry name of the trust-anchor set whose identifier is sum.
func AnchorsName(sum [32]byte) string { return dirAnchors + hex.EncodeToString(sum[:]) + ".pem" }

// CheckpointName returns the entry name of an earlier checkpoint of the given tree size.
func CheckpointName(size uint64) string {
	return dirCheckpoints + strconv.FormatUint(size, 10) + ".txt"
}

// Manifest is manifest.json, the machine contract of a bundle. Every field is always present
// (empty strings, zero numbers and empty arrays when unknown), and readers refuse unknown keys.
// Hashes are lower-case hex SHA-256; proof hashes and roots are standard base64 with padding, as
// in checkpoints; times are RFC 3339 with their offset (and fractions where known), "" when
// unknown.
type Manifest struct {
	// Format is [Format].
	Format string `json:"format"`
	// CreatedAt is when the bundle was written.
	CreatedAt string `json:"created_at"`
	// ExportedBy names who asked for the bundle (the identity the archive recorded the export
	// under), "" when not known.
	ExportedBy string `json:"exported_by"`
	// Selectors are what was asked for: each selects the messages of one prove query.
	Selectors []Selector `json:"selectors"`
	// Log is the transparency log every message's inclusion is proven in.
	Log Log `json:"log"`
	// Files lists every entry of the bundle except mimetype, manifest.json and META-INF/.
	Files []File `json:"files"`
	// Messages are every message of the bundle: its record as the archive catalogued it, its
	// leaf and its inclusion proof.
	Messages []Message `json:"messages"`
	// Chains are the signer chains the messages' records name.
	Chains []CertSet `json:"chains"`
	// AnchorSets are the trust-anchor snapshots the messages' verdicts were made with.
	AnchorSets []CertSet `json:"anchor_sets"`
	// Deliveries are the claims: per original message and recipient, the verdict and the
	// receipts that decide it.
	Deliveries []Delivery `json:"deliveries"`
}

// Selector is one query of the prove contract: by original msgid, by PEC id, or by sender (and
// optionally recipient and time range).
type Selector struct {
	MsgID     string `json:"msgid"`
	PECID     string `json:"pec_id"`
	Sender    string `json:"sender"`
	Recipient string `json:"recipient"`
	Since     string `json:"since"`
	Until     string `json:"until"`
}

// String renders s the way `pecarchive export --selectors` reads it.
func (s Selector) String() string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, "--"+k+" "+v)
		}
	}
	add("msgid", s.MsgID)
	add("pec-id", s.PECID)
	add("sender", s.Sender)
	add("recipient", s.Recipient)
	add("since", s.Since)
	add("until", s.Until)
	return strings.Join(parts, " ")
}

// Log describes the log and the checkpoints of the bundle.
type Log struct {
	// Origin is the log's origin (the checkpoint's first line and the key's name).
	Origin string `json:"origin"`
	// KeyFile is [NameLogKey].
	KeyFile string `json:"key_file"`
	// Checkpoint is the checkpoint every inclusion proof is against.
	Checkpoint CheckpointRef `json:"checkpoint"`
	// Earlier are older checkpoints the bundle cites, each with a consistency proof to
	// Checkpoint.
	Earlier []EarlierCheckpoint `json:"earlier"`
}

// CheckpointRef is a checkpoint file with what it says.
type CheckpointRef struct {
	File string `json:"file"`
	Size uint64 `json:"size"`
	Root string `json:"root"`
}

// EarlierCheckpoint is an older checkpoint and the consistency proof from it to the bundle's.
type EarlierCheckpoint struct {
	CheckpointRef
	ConsistencyProof []string `json:"consistency_proof"`
}

// File is one entry of the bundle.
type File struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Type   string `json:"type"`
}

// Message is one message of the bundle.
type Message struct {
	SHA256 string `json:"sha256"`
	File   string `json:"file"`
	Size   int64  `json:"size"`
	// ContainedIn is the SHA-256 of the message whose bytes carry this one (the postacert.eml
	// of a complete delivery receipt), "" otherwise. The carrier is in the bundle too.
	ContainedIn string `json:"contained_in"`
	// Leaf is the message's leaf in the log.
	Leaf Leaf `json:"leaf"`
	// InclusionProof proves the leaf is in the tree of Log.Checkpoint.
	InclusionProof []string `json:"inclusion_proof"`
	// Record is what the archive catalogued about the message.
	Record Record `json:"record"`
	// FirstSource is where the archive first found the message: a catalog/v2 leaf commits to
	// it along with the record (a catalog/v1 leaf, older, to the record alone).
	FirstSource Source `json:"first_source"`
}

// Leaf is a message's log leaf: tlog.Leaf{Kind: "message", SHA256, Time, Extra}.
type Leaf struct {
	Index uint64 `json:"index"`
	// Time is the leaf's time in Unix seconds: the record's received_at, truncated.
	Time int64 `json:"time"`
	// Extra is the leaf's extra field: the digests of the record (and of the first source) it
	// commits to, as package record computes them ("catalog/v2 <record> <first source>", or
	// "catalog/v1 <record>" for older leaves).
	Extra string `json:"extra"`
}

// Record is the archive's catalogue entry for one message: the evidence fields its log leaf
// commits to (see services/archive/catalog, Message).
type Record struct {
	Kind           string    `json:"kind"`
	MessageID      string    `json:"message_id"`
	PECID          string    `json:"pec_id"`
	OrigMsgID      string    `json:"orig_msgid"`
	XRiferimento   string    `json:"x_riferimento"`
	RefMsgID       string    `json:"ref_msgid"`
	Sender         string    `json:"sender"`
	From           string    `json:"from"`
	Recipients     []string  `json:"recipients"`
	RecipientTypes []string  `json:"recipient_types"`
	Subject        string    `json:"subject"`
	Provider       string    `json:"provider"`
	DaticertTime   string    `json:"daticert_time"`
	HeaderDate     string    `json:"header_date"`
	ReceiptType    string    `json:"receipt_type"`
	Errore         string    `json:"errore"`
	ErroreEsteso   string    `json:"errore_esteso"`
	Consegna       string    `json:"consegna"`
	Signature      Signature `json:"signature"`
	Problems       []string  `json:"problems"`
	ChainSHA256    string    `json:"chain_sha256"`
	AnchorsSHA256  string    `json:"anchors_sha256"`
	// PostacertSHA256 is the SHA-256 of the postacert.eml the message carries, "" when none.
	PostacertSHA256 string `json:"postacert_sha256"`
	ReceivedAt      string `json:"received_at"`
}

// Signature is the verdict on a message's S/MIME signature as the archive recorded it.
type Signature struct {
	Present     bool     `json:"present"`
	Valid       bool     `json:"valid"`
	Trusted     bool     `json:"trusted"`
	Digest      string   `json:"digest"`
	Signer      string   `json:"signer"`
	SignerEmail string   `json:"signer_email"`
	Provider    string   `json:"provider"`
	SignedAt    string   `json:"signed_at"`
	VerifiedAt  string   `json:"verified_at"`
	Reasons     []string `json:"reasons"`
	Details     []string `json:"details"`
}

// CertSet is a signer chain or a trust-anchor snapshot: PEM certificates in a file, identified by
// the SHA-256 of their concatenated DER (chains in order, signer first; anchor sets sorted by DER,
// which is pec/smime's TrustStore.ID).
type CertSet struct {
	SHA256 string `json:"sha256"`
	File   string `json:"file"`
	Label  string `json:"label"`
}

// Delivery is the claim about one original message: per recipient, the verdict.
type Delivery struct {
	MsgID   string `json:"msgid"`
	PECID   string `json:"pec_id"`
	Subject string `json:"subject"`
	Sender  string `json:"sender"`
	SentAt  string `json:"sent_at"`
	// SHA256 is the original's (or its transport envelope's) message in the bundle, "" when the
	// archive holds neither.
	SHA256     string      `json:"sha256"`
	Recipients []Recipient `json:"recipients"`
}

// Verdicts of the prove contract.
const (
	VerdictDelivered    = "DELIVERED"
	VerdictNotDelivered = "NOT_DELIVERED"
	VerdictNotAccepted  = "NOT_ACCEPTED"
	VerdictWarned       = "WARNED"
	VerdictAcceptedOnly = "ACCEPTED_ONLY"
	VerdictPending      = "PENDING"
	VerdictUnverified   = "UNVERIFIED"
)

// Verdicts lists every verdict.
var Verdicts = []string{VerdictDelivered, VerdictNotDelivered, VerdictNotAccepted, VerdictWarned,
	VerdictAcceptedOnly, VerdictPending, VerdictUnverified}

// Recipient is the verdict about one recipient of a delivery.
type Recipient struct {
	Address       string `json:"address"`
	Verdict       string `json:"verdict"`
	ExplanationIT string `json:"explanation_it"`
	ExplanationEN string `json:"explanation_en"`
	// At is the time of the deciding receipt (its daticert time), "" when none.
	At string `json:"at"`
	// Deciding is the SHA-256 of the receipt the verdict rests on, "" when none.
	Deciding string `json:"deciding"`
	// Receipts are every receipt about this recipient in the bundle (Deciding among them), valid
	// or not, in the order the archive received them.
	Receipts []string `json:"receipts"`
	// Conflicts are the valid and trusted receipts about this recipient that contradict one
	// another (a delivery and a non-delivery), empty when they agree.
	Conflicts []string `json:"conflicts"`
}

// parseSum parses a lower-case hex SHA-256.
func parseSum(s string) ([32]byte, error) {
	var d [32]byte
	if len(s) != 64 || strings.ToLower(s) != s {
		return d, fmt.Errorf("%.80q is not a lower-case hex SHA-256", s)
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return d, fmt.Errorf("%.80q is not a lower-case hex SHA-256", s)
	}
	return d, nil
}

// optSum parses a SHA-256 that may be "" (then the zero value).
func optSum(s string) ([32]byte, error) {
	if s == "" {
		return [32]byte{}, nil
	}
	return parseSum(s)
}

func hexSum(d [32]byte) string { return hex.EncodeToString(d[:]) }

// optHex returns the hex of d, or "" for the zero value.
func optHex(d [32]byte) string {
	if d == ([32]byte{}) {
		return ""
	}
	return hex.EncodeToString(d[:])
}

// EncodeHashes returns proof hashes as base64 strings.
func EncodeHashes(p [][]byte) []string {
	out := make([]string, len(p))
	for i, h := range p {
		out[i] = base64.StdEncoding.EncodeToString(h)
	}
	return out
}

// decodeHashes parses base64 proof hashes; each must be 32 bytes.
func decodeHashes(p []string) ([][]byte, error) {
	out := make([][]byte, len(p))
	for i, s := range p {
		h, err := base64.StdEncoding.Strict().DecodeString(s)
		if err != nil || len(h) != 32 {
			return nil, fmt.Errorf("hash %d (%.60q) is not 32 bytes of base64", i, s)
		}
		out[i] = h
	}
	return out, nil
}

// FormatTime renders t for the manifest: RFC 3339 with fractions and its offset, "" when zero.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}

// parseTime parses a manifest time ("" is the zero time).
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%.60q is not an RFC 3339 time", s)
	}
	return t, nil
}

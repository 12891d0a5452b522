// Package catalog owns the archive's PostgreSQL catalog: the schema (embedded migrations), the
// row types, the writes the archive makes inside its commit transaction, receipt correlation and
// delivery-state derivation, and the read queries of the query layer.
//
// The catalog is an index over the evidence, never the evidence itself: every message is kept
// byte for byte in the blob store under its SHA-256, and every row of the messages table is
// committed in the same transaction as the message's leaf in the transparency log
// (services/archive/merklelog). The leaf commits to the row: its Extra field carries
// [Message.LeafExtra], a SHA-256 over the row's evidence fields, so an auditor can tell a
// tampered row from an honest one (services/archive/audit).
//
// # Schema
//
// See SCHEMA.md next to this file for the tables, indexes and the time-partitioning plan. In
// short:
//   - messages: one row per distinct raw message, keyed by SHA-256, every field of the evidence
//     model (kind, PEC id, msgids, sender, recipients, subject, provider, daticert time, verdict,
//     chain and trust-anchor snapshot, leaf index, received time). Written once, never updated.
//   - message_sources: where each message was found (mailbox, folder, UIDVALIDITY, UID,
//     INTERNALDATE, path); unique per source.
//   - message_links: receipt/envelope -> original links (by msgid, by PEC id, by containment).
//   - delivery_events and deliveries: what each receipt says per (original msgid, recipient),
//     and the delivery state derived from it.
//   - cert_chains, trust_anchor_sets: signer chains and anchor sets, each stored once by hash.
//
// # Correlation
//
// Every row stores its reference keys (own Message-ID, the original's msgid, the PEC id), so a
// receipt that arrives before the original it refers to is linked when the original arrives:
// [Write] resolves links and re-derives delivery states in both directions, inside the caller's
// transaction. Delivery states, per (original msgid, recipient): a valid and trusted acceptance
// makes it accepted (for every daticert destinatario), a preavviso warned, an errore-consegna
// or non-accettazione not-delivered (with errore), an avvenuta-consegna for that consegna
// delivered (with receipt type); the strongest wins (delivered > not-delivered > warned >
// accepted > pending). A receipt whose signature is not valid and trusted is recorded and linked
// but does not move the state; the row's Problem says why. Recipients of a known original that
// no receipt mentions yet are pending.
package catalog

import (
	"context"
	"embed"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pecarchive/pecarchive/internal/pgmigrate"
	"github.com/pecarchive/pecarchive/pec"
)

// Migrations is the catalog's migration set (migrations/NNNN_name.up.sql), run by
// internal/pgmigrate with the version table [VersionTable].
//
//go:embed migrations/*.sql
var Migrations embed.FS

// VersionTable is the pgmigrate version table of the catalog.
const VersionTable = "catalog_schema_version"

// Errors.
var (
	ErrNotFound = errors.New("catalog: not found")
	ErrInvalid  = errors.New("catalog: invalid argument")
)

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

// Message is one row of the messages table: what the archive knows about one raw message.
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
	// bytes (the postacert.eml of a complete delivery receipt, which has no blob of its own; see
	// [ExtractContained]). It says where the bytes are, not what they are: it is not part of the
	// evidence digest.
	ContainedIn [32]byte
	// BlobVersion is the version of the blob-store object that holds the bytes as the archive
	// wrote them (an S3 version ID, see blob.Versioner); "" when the store keeps no versions or
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

// SourceRow is a source of the message SHA256, for [Batch].
type SourceRow struct {
	SHA256 [32]byte
	Source Source
	// Logged says that the source has a log leaf of its own, at LeafIndex (a tlog.KindSource
	// leaf, see [SourceLeafExtra]): every source recorded after a message's first. The first
	// source of a message is covered by the message's own leaf ([Message.LeafExtraV2]).
	Logged    bool
	LeafIndex uint64
}

// Link is one message_links row.
type Link struct {
	Referrer [32]byte // the receipt or envelope
	Original [32]byte // the message it refers to
	Via      string   // LinkMsgID, LinkPECID or LinkPostacert
}

// Link kinds.
const (
	LinkMsgID     = "msgid"
	LinkPECID     = "pec-id"
	LinkPostacert = "postacert"
)

// DeliveryState is the state of one (original, recipient) delivery.
type DeliveryState string

// Delivery states, weakest first.
const (
	StatePending      DeliveryState = "pending"
	StateAccepted     DeliveryState = "accepted"
	StateWarned       DeliveryState = "warned"
	StateNotDelivered DeliveryState = "not-delivered"
	StateDelivered    DeliveryState = "delivered"
)

// Delivery is one deliveries row: the state of one (original msgid, recipient) pair.
type Delivery struct {
	MsgID     string
	Recipient string
	PECID     string
	Sender    string
	State     DeliveryState
	// ReceiptType is the delivery receipt's type (completa, breve, sintetica).
	ReceiptType  pec.ReceiptType
	Errore       pec.ErrorCode
	ErroreEsteso string
	// Original, Acceptance, Delivery, NonDelivery, Warning are the SHA-256 of the original and of
	// the receipts the state rests on (a valid, trusted one where there is one); zero when none.
	Original    [32]byte
	Acceptance  [32]byte
	Delivery    [32]byte
	NonDelivery [32]byte
	Warning     [32]byte
	AcceptedAt  time.Time // daticert time of the acceptance
	StateAt     time.Time // daticert time of the receipt that set the state
	// Problem is non-empty when a receipt that would have moved the state could not be used
	// (signature not valid or not trusted); it names the receipt and the reasons.
	Problem string
	// UpdatedAt is when the row last changed (the commit that derived it as it is).
	UpdatedAt time.Time
}

// CertSet is a certificate chain or a trust-anchor set (DER certificates).
type CertSet struct {
	SHA256 [32]byte
	Label  string // anchor sets only: the trust store's identifier, informational
	Certs  [][]byte
}

// DB is what the catalog needs of a pool or a transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	CopyFrom(ctx context.Context, table pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error)
}

// Catalog reads the catalog through a pool. Writes go through [Write] inside the archive's
// transaction.
type Catalog struct {
	db DB
}

// New returns a Catalog reading through pool (a *pgxpool.Pool, or any [DB]).
func New(pool DB) *Catalog { return &Catalog{db: pool} }

var _ DB = (*pgxpool.Pool)(nil)
var _ DB = (pgx.Tx)(nil)

// Migrate applies the catalog's migrations to the current schema of pool.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return pgmigrate.Run(ctx, pool, Migrations, VersionTable)
}

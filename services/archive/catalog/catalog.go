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
	"github.com/pecarchive/pecarchive/record"
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

// Message is one row of the messages table, Verdict its signature's verdict and Source a place
// it was found: the record of package record, which owns its normalisation and digests.
type (
	Message = record.Message
	Verdict = record.Verdict
	Source  = record.Source
)

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

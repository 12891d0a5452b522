// Package ingest owns the pulling of PEC mailboxes over IMAP into the archive: the mailbox file
// (mailboxes.go), connections with TLS and read deadlines of its own (conn.go), the commands
// go-imap v1 lacks (commands.go: GETQUOTAROOT, UID EXPUNGE), the per-folder pull (folder.go),
// the after_archive policies (policy.go), its PostgreSQL state (state.go: cursors, leases, dead
// letters, UIDVALIDITY events, with migrations of its own) and its Prometheus metrics
// (metrics.go). It stores only through an [Archiver] (archiver.go): the archive stays the single
// writer and the trust boundary.
//
// # Exactly once
//
// One cursor per (mailbox, folder) holds the folder's UIDVALIDITY and the highest UID below
// which the archive acknowledged every message (stored, or refused and written to the
// dead-letter table). Messages are fetched with `UID FETCH last+1:*` (answers at or below last
// are dropped), stored by several workers at once, and the cursor moves only over the
// contiguous acknowledged prefix, so a crash at any moment re-fetches at most the messages in
// flight, which the archive, idempotent by SHA-256, finds already stored. A UIDVALIDITY change
// starts a new epoch: the folder is fetched again from its start (the archive reconciles by
// SHA-256, never by Message-ID), and the change is logged, counted and kept
// (ingest_uidvalidity_events).
//
// # Replicas
//
// A lease per mailbox in PostgreSQL (expiring, renewed every third of its period) lets one
// replica pull a mailbox at a time; every cursor and dead-letter write is fenced by the lease's
// token, and a replica that cannot renew in time stops before the lease expires, so another
// takes over within one lease period of a replica's death.
//
// # Connections
//
// At most two connections per mailbox: a pass over every selected folder (EXAMINE, or SELECT
// when a policy writes; two folders at a time, one per connection, when there are several),
// then IDLE on INBOX (or the first wanted folder when INBOX is not wanted; re-issued before 29
// minutes). IDLE tells of mail arriving in the folder it watches; mail filed straight into
// other folders (by a provider's filters) is found by a STATUS check (UIDVALIDITY, UIDNEXT,
// MESSAGES: one short command per folder) each Options.StatusInterval, and only folders with
// news are opened; every folder is pulled again each Options.FullPassInterval (policies act on
// messages as they age). Where IDLE is not offered it polls with full passes. IDLE on one
// folder per connection cannot watch many folders, and NOTIFY (RFC 5465), which could, is
// rarely offered by PEC providers and not by go-imap v1; a STATUS check a minute costs the
// server little. Failed connections are retried with exponential backoff and jitter; refused
// credentials or certificates wait minutes (Options.AuthBackoff). Cancelling the context
// closes the connection at once.
//
// # A hostile or broken server
//
// go-imap trusts the server; the connection guard (conn.go) does not: a literal over the size
// limit, a line over MaxResponseLine or continuation requests nobody asked for close the
// connection before go-imap holds them. Every command has a read deadline (a FETCH's scaled to
// its bytes), so a silent server costs a timeout, never a hang. The listing keeps only UIDs
// the folder can hold (above the cursor, below the UIDNEXT seen on opening, at most as many as
// it has messages); answers about messages not asked for are dropped; a message the server
// leaves out of its answer while it still lists it, or returns empty, fails the pass instead of
// being passed over; UIDNEXT below the cursor under the same UIDVALIDITY starts a new epoch.
// Such a server can keep a folder from moving on (each attempt logged), never make it skip a
// message.
package ingest

// Package ingest will pull PEC mailboxes over IMAP (and import files, mbox and Maildir), keep one
// cursor per folder (UIDVALIDITY, UID) in PostgreSQL, verify each message with package pec for
// reporting, and hand the raw bytes to the archive's Store API. It advances a cursor only after the
// archive has acknowledged a durable commit, and never deletes from a mailbox unless told to.
//
// Nothing is implemented here yet: this package is a placeholder for the ingest issue.
package ingest

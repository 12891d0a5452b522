package testenv

import (
	"bytes"
	"testing"
	"time"
)

// TestDovecot starts the project's Dovecot, adds a user, appends a message over implicit TLS
// and reads back its quota: what the ingest tests build on.
func TestDovecot(t *testing.T) {
	d := StartDovecot(t)
	d.AddUser(t, "alice", "secret", "10M")
	c := d.Client(t, "alice", "secret")
	msg := []byte("From: a@example.it\r\nSubject: hi\r\n\r\nhello\r\n")
	if err := c.Append("INBOX", nil, time.Now(), bytes.NewBuffer(msg)); err != nil {
		t.Fatal(err)
	}
	mbox, err := c.Select("INBOX", true)
	if err != nil {
		t.Fatal(err)
	}
	if mbox.Messages != 1 || mbox.UidValidity == 0 {
		t.Fatalf("INBOX: %d messages, UIDVALIDITY %d", mbox.Messages, mbox.UidValidity)
	}
	if ok, _ := c.Support("QUOTA"); !ok {
		t.Error("no QUOTA capability")
	}
	d.Stop()
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	c2 := d.Client(t, "alice", "secret")
	if _, err := c2.Select("INBOX", true); err != nil {
		t.Fatal(err)
	}
}

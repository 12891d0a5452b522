package auth_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/pecarchive/pecarchive/internal/auth"
)

// FuzzParseCredentials checks that any credentials file either parses or fails with
// ErrCredentials, never panics, and that what parses is internally consistent.
func FuzzParseCredentials(f *testing.F) {
	h := auth.HashToken("t")
	for _, s := range []string{
		"",
		"# comment only\n",
		"token " + h + " ingest-1 ingest\n",
		"token sha256:" + h + " ops admin,reader # trailing\n",
		"cert dns:ingest.example.test ingest ingest\ncert uri:spiffe://x/y q reader,auditor\n",
		"cert email:A@B.it a auditor\ncert cn:client c reader\r\n",
		"token " + h + " a ingest\ntoken " + h + " b reader\n",
		"token " + strings.ToUpper(h) + " a ingest,,reader\n",
		"cert dns: x ingest\n",
		"\x00\xff token",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := auth.ParseCredentials(data)
		if err != nil {
			if !errors.Is(err, auth.ErrCredentials) {
				t.Fatalf("error %v does not wrap ErrCredentials", err)
			}
			return
		}
		if c.Len() > auth.MaxCredentialEntries || c.Len() > strings.Count(string(data), "\n")+1 {
			t.Fatalf("%d entries from %d lines", c.Len(), strings.Count(string(data), "\n")+1)
		}
	})
}

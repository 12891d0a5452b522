package tlog

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// MaxCheckpointSize is the largest signed checkpoint accepted by the verification functions.
const MaxCheckpointSize = 16 << 10

// GenerateKey returns a new Ed25519 note key pair whose name is the log origin. skey
// ("PRIVATE+KEY+<origin>+<hash>+<base64>") must be kept secret; vkey ("<origin>+<hash>+<base64>")
// is published for auditors. The origin must be a valid note name: non-empty UTF-8 with no spaces
// and no '+', conventionally a URL-like path such as "pecarchive.example.it/log".
func GenerateKey(origin string) (skey, vkey string, err error) {
	if err := checkOrigin(origin); err != nil {
		return "", "", err
	}
	skey, vkey, err = note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return "", "", fmt.Errorf("tlog: generate key: %w", err)
	}
	return skey, vkey, nil
}

// NewSigner parses a secret key made by [GenerateKey] into a note signer.
func NewSigner(skey string) (note.Signer, error) {
	s, err := note.NewSigner(strings.TrimSpace(skey))
	if err != nil {
		return nil, fmt.Errorf("%w: signer key: %v", ErrInvalidKey, err)
	}
	return s, nil
}

// NewVerifier parses a public verifier key made by [GenerateKey] into a note verifier.
func NewVerifier(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, fmt.Errorf("%w: verifier key: %v", ErrInvalidKey, err)
	}
	return v, nil
}

// VerifierKey returns the public verifier key matching the secret key skey, so the public key can
// be printed from the secret key file alone.
func VerifierKey(skey string) (vkey string, err error) {
	skey = strings.TrimSpace(skey)
	if _, err := note.NewSigner(skey); err != nil { // checks syntax and the key hash
		return "", fmt.Errorf("%w: signer key: %v", ErrInvalidKey, err)
	}
	// PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return "", fmt.Errorf("%w: signer key: malformed", ErrInvalidKey)
	}
	key, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(key) != 1+ed25519.SeedSize || key[0] != 1 {
		return "", fmt.Errorf("%w: signer key: not an Ed25519 key", ErrInvalidKey)
	}
	pub := ed25519.NewKeyFromSeed(key[1:]).Public().(ed25519.PublicKey)
	vkey, err = note.NewEd25519VerifierKey(parts[2], pub)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	return vkey, nil
}

// SignCheckpoint returns the signed note for cp. The signer's name must equal cp.Origin, and
// cp.Hash must be a 32-byte root hash.
func SignCheckpoint(s note.Signer, cp log.Checkpoint) ([]byte, error) {
	if err := checkOrigin(cp.Origin); err != nil {
		return nil, err
	}
	if len(cp.Hash) != 32 {
		return nil, fmt.Errorf("%w: root hash is %d bytes, want 32", ErrInvalidCheckpoint, len(cp.Hash))
	}
	if s.Name() != cp.Origin {
		return nil, fmt.Errorf("%w: signer name %q differs from origin %q", ErrInvalidKey, s.Name(), cp.Origin)
	}
	signed, err := note.Sign(&note.Note{Text: string(cp.Marshal())}, s)
	if err != nil {
		return nil, fmt.Errorf("tlog: sign checkpoint: %w", err)
	}
	return signed, nil
}

// VerifyCheckpoint checks that signed is a canonical checkpoint signed by the key vkey, whose
// origin is the key name, and returns it. Extension lines after the root hash are allowed and
// ignored; other signatures are ignored.
func VerifyCheckpoint(signed []byte, vkey string) (log.Checkpoint, error) {
	v, err := NewVerifier(vkey)
	if err != nil {
		return log.Checkpoint{}, err
	}
	return VerifyCheckpointWith(signed, v)
}

// VerifyCheckpointWith is [VerifyCheckpoint] with a parsed verifier.
func VerifyCheckpointWith(signed []byte, v note.Verifier) (log.Checkpoint, error) {
	if len(signed) > MaxCheckpointSize {
		return log.Checkpoint{}, fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidCheckpoint, len(signed), MaxCheckpointSize)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return log.Checkpoint{}, fmt.Errorf("%w: %v", ErrInvalidCheckpoint, err)
	}
	ok := false
	for _, s := range n.Sigs {
		ok = ok || s.Name == v.Name() && s.Hash == v.KeyHash()
	}
	if !ok {
		return log.Checkpoint{}, fmt.Errorf("%w: no signature by %s", ErrInvalidCheckpoint, v.Name())
	}
	cp, err := parseCheckpointText(n.Text)
	if err != nil {
		return log.Checkpoint{}, err
	}
	if cp.Origin != v.Name() {
		return log.Checkpoint{}, fmt.Errorf("%w: origin %q, want %q", ErrInvalidCheckpoint, cp.Origin, v.Name())
	}
	return cp, nil
}

// ParseCheckpoint parses the text of a signed checkpoint WITHOUT checking any signature; use it
// only to inspect a checkpoint, never to trust one.
func ParseCheckpoint(signed []byte) (log.Checkpoint, error) {
	if len(signed) > MaxCheckpointSize {
		return log.Checkpoint{}, fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidCheckpoint, len(signed), MaxCheckpointSize)
	}
	_, err := note.Open(signed, nil)
	var u *note.UnverifiedNoteError
	if !errors.As(err, &u) {
		return log.Checkpoint{}, fmt.Errorf("%w: %v", ErrInvalidCheckpoint, err)
	}
	return parseCheckpointText(u.Note.Text)
}

func parseCheckpointText(text string) (log.Checkpoint, error) {
	var cp log.Checkpoint
	if _, err := cp.Unmarshal([]byte(text)); err != nil {
		return log.Checkpoint{}, fmt.Errorf("%w: %v", ErrInvalidCheckpoint, err)
	}
	if len(cp.Hash) != 32 {
		return log.Checkpoint{}, fmt.Errorf("%w: root hash is %d bytes, want 32", ErrInvalidCheckpoint, len(cp.Hash))
	}
	if !bytes.HasPrefix([]byte(text), cp.Marshal()) {
		return log.Checkpoint{}, fmt.Errorf("%w: not canonical", ErrInvalidCheckpoint)
	}
	if err := checkOrigin(cp.Origin); err != nil {
		return log.Checkpoint{}, fmt.Errorf("%w: %v", ErrInvalidCheckpoint, err)
	}
	return cp, nil
}

func checkOrigin(origin string) error {
	// A note key name: non-empty UTF-8 with no spaces and no '+'; no control characters either,
	// as the origin is a line of the note text.
	if origin == "" || len(origin) > 256 || !utf8.ValidString(origin) || strings.ContainsRune(origin, '+') ||
		strings.ContainsFunc(origin, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return fmt.Errorf("%w: origin %.60q is not a valid note name", ErrInvalidKey, origin)
	}
	return nil
}

package query

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// A page token is opaque to callers: base64url of a version byte, the first 8 bytes of the
// SHA-256 of the request it continues (so it cannot continue another), then the position. The
// filter is applied again on every page, so a forged token moves the position, never the access.
const tokenVersion = 1

// maxTokenLen bounds an accepted page token.
const maxTokenLen = 2048

// position is where a page ends: a time (zero for none), a key (msgid, or a SHA-256) and an
// offset.
type position struct {
	at     time.Time
	key    []byte
	offset uint32
}

func requestHash(req string) [8]byte {
	h := sha256.Sum256([]byte(req))
	return [8]byte(h[:8])
}

func encodeToken(req string, p position) string {
	b := []byte{tokenVersion}
	h := requestHash(req)
	b = append(b, h[:]...)
	if p.at.IsZero() {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = binary.BigEndian.AppendUint64(b, uint64(p.at.UnixMicro()))
	}
	b = binary.BigEndian.AppendUint32(b, p.offset)
	b = append(b, p.key...)
	return base64.RawURLEncoding.EncodeToString(b)
}

var errToken = errors.New("query: the page token is not one this service made for this request")

func decodeToken(req, tok string) (position, error) {
	var p position
	if len(tok) > maxTokenLen {
		return p, errToken
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) < 1+8+1+4 || b[0] != tokenVersion {
		return p, errToken
	}
	if h := requestHash(req); string(b[1:9]) != string(h[:]) {
		return p, errToken
	}
	b = b[9:]
	switch b[0] {
	case 0:
		b = b[1:]
	case 1:
		if len(b) < 1+8+4 {
			return p, errToken
		}
		p.at = time.UnixMicro(int64(binary.BigEndian.Uint64(b[1:9]))).UTC()
		b = b[9:]
	default:
		return p, errToken
	}
	p.offset = binary.BigEndian.Uint32(b[:4])
	p.key = b[4:]
	return p, nil
}

package pectest

import (
	"bytes"
	"encoding/base64"
	"mime"
	"net/mail"
	"strings"
	"testing"

	"github.com/smallstep/pkcs7"
)

// splitSigned extracts the signed entity (as in the message) and the CMS from a generated
// message, independently of the generator.
func splitSigned(t testing.TB, raw []byte) (entity, cms []byte, opaque bool) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("read message: %v", err)
	}
	ct, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("content-type: %v", err)
	}
	body := raw[bytes.Index(raw, []byte("\n\n"))+2:]
	if bytes.Contains(raw, []byte("\r\n")) {
		body = raw[bytes.Index(raw, []byte("\r\n\r\n"))+4:]
	}
	if strings.HasSuffix(ct, "pkcs7-mime") {
		b, err := base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(body)))
		if err != nil {
			t.Fatalf("base64 p7m: %v", err)
		}
		return nil, b, true
	}
	if ct != "multipart/signed" {
		t.Fatalf("content type %q", ct)
	}
	nl := "\n"
	if bytes.Contains(raw, []byte("\r\n")) {
		nl = "\r\n"
	}
	delim := []byte(nl + "--" + params["boundary"])
	first := bytes.Index(body, []byte("--"+params["boundary"]+nl))
	if first < 0 {
		t.Fatal("no first boundary")
	}
	start := first + len("--"+params["boundary"]+nl)
	end := bytes.Index(body[start:], delim)
	if end < 0 {
		t.Fatal("no second boundary")
	}
	entity = body[start : start+end]
	rest := body[start+end+len(delim):]
	sigStart := bytes.Index(rest, []byte(nl+nl)) + 2*len(nl)
	sigEnd := bytes.Index(rest[sigStart:], delim)
	if sigEnd < 0 {
		t.Fatal("no closing boundary")
	}
	b64 := strings.NewReplacer("\r", "", "\n", "").Replace(string(rest[sigStart : sigStart+sigEnd]))
	cms, err = base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("base64 p7s: %v", err)
	}
	return entity, cms, false
}

func canon(b []byte) []byte { return toCRLF(toLF(b)) }

func TestEnvelopeAndDeliveryVerify(t *testing.T) {
	p, err := NewProvider(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Peer(nil)
	if err != nil {
		t.Fatal(err)
	}
	o, err := p.Original(nil)
	if err != nil {
		t.Fatal(err)
	}
	env, err := p.Envelope(Params{Original: o})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := b.Delivery(Params{Original: o})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*Generated{env, rec} {
		entity, cms, _ := splitSigned(t, g.Bytes)
		if !bytes.Equal(canon(entity), g.Content) {
			t.Fatalf("%s: entity differs from Content", g.Name)
		}
		p7, err := pkcs7.Parse(cms)
		if err != nil {
			t.Fatalf("%s: parse: %v", g.Name, err)
		}
		p7.Content = canon(entity)
		if err := p7.VerifyWithChainAtTime(p.CA.Roots(), g.SigningTime); err != nil {
			t.Fatalf("%s: verify: %v", g.Name, err)
		}
	}
}

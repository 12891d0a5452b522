package evidence

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// XML namespaces and algorithm of the ASiC manifest (ETSI EN 319 162-1, schema of ETSI TS 102 918
// v1.2.1; the target namespace is "http://uri.etsi.org/02918/v1.2.1#") and XML-DSig.
const (
	NamespaceASiC   = "http://uri.etsi.org/02918/v1.2.1#"
	NamespaceDSig   = "http://www.w3.org/2000/09/xmldsig#"
	DigestSHA256URI = "http://www.w3.org/2001/04/xmlenc#sha256"
)

// asicRef is one DataObjectReference.
type asicRef struct {
	URI      string
	MimeType string
	SHA256   [32]byte
}

// writeASiCManifest writes the ASiC manifest listing refs.
func writeASiCManifest(w io.Writer, refs []asicRef) error {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` + "\n")
	b.WriteString(`<asic:ASiCManifest xmlns:asic="` + NamespaceASiC + `" xmlns:ds="` + NamespaceDSig + `">` + "\n")
	for _, r := range refs {
		b.WriteString(`  <asic:DataObjectReference URI="`)
		xml.EscapeText(&b, []byte(r.URI))
		b.WriteString(`" MimeType="`)
		xml.EscapeText(&b, []byte(r.MimeType))
		b.WriteString(`">` + "\n")
		b.WriteString(`    <ds:DigestMethod Algorithm="` + DigestSHA256URI + `"/>` + "\n")
		b.WriteString(`    <ds:DigestValue>` + base64.StdEncoding.EncodeToString(r.SHA256[:]) + `</ds:DigestValue>` + "\n")
		b.WriteString(`  </asic:DataObjectReference>` + "\n")
		if b.Len() > 64<<10 {
			if _, err := w.Write(b.Bytes()); err != nil {
				return err
			}
			b.Reset()
		}
	}
	b.WriteString(`</asic:ASiCManifest>` + "\n")
	_, err := w.Write(b.Bytes())
	return err
}

// parseASiCManifest reads an ASiC manifest as written by writeASiCManifest: the root
// ASiCManifest and DataObjectReference elements, each with a SHA-256 DigestMethod and its
// DigestValue, in the right namespaces. It refuses DTDs, processing instructions other than the
// XML declaration, other elements, and text outside DigestValue. Errors wrap [ErrXML].
func parseASiCManifest(data []byte) ([]asicRef, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	var (
		refs  []asicRef
		path  []xml.Name
		cur   *asicRef
		text  strings.Builder
		algOK bool
		root  bool
		seen  = map[string]bool{}
	)
	fail := func(format string, args ...any) ([]asicRef, error) {
		return nil, fmt.Errorf("%w: %s", ErrXML, fmt.Sprintf(format, args...))
	}
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail("%v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(path) >= 4 {
				return fail("nested too deep")
			}
			want := [...]xml.Name{
				{Space: NamespaceASiC, Local: "ASiCManifest"},
				{Space: NamespaceASiC, Local: "DataObjectReference"},
			}
			depth := len(path)
			if depth == 0 {
				if root {
					return fail("more than one root element")
				}
				root = true
			}
			switch {
			case depth < 2 && t.Name == want[depth]:
			case depth == 2 && t.Name == xml.Name{Space: NamespaceDSig, Local: "DigestMethod"}:
			case depth == 2 && t.Name == xml.Name{Space: NamespaceDSig, Local: "DigestValue"}:
			default:
				return fail("unexpected element {%s}%s", t.Name.Space, t.Name.Local)
			}
			attrs := map[string]string{}
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
					continue
				}
				if a.Name.Space != "" {
					return fail("unexpected attribute {%s}%s", a.Name.Space, a.Name.Local)
				}
				attrs[a.Name.Local] = a.Value
			}
			switch t.Name.Local {
			case "ASiCManifest":
				if len(attrs) != 0 {
					return fail("unexpected attributes on ASiCManifest")
				}
			case "DataObjectReference":
				cur = &asicRef{URI: attrs["URI"], MimeType: attrs["MimeType"]}
				delete(attrs, "URI")
				delete(attrs, "MimeType")
				if cur.URI == "" || len(attrs) != 0 {
					return fail("DataObjectReference needs a URI and no attributes but URI and MimeType")
				}
				if seen[cur.URI] {
					return fail("%q is referenced twice", cur.URI)
				}
				seen[cur.URI] = true
				algOK = false
			case "DigestMethod":
				if algOK || attrs["Algorithm"] != DigestSHA256URI || len(attrs) != 1 {
					return fail("%q: digest method must be %s, once", cur.URI, DigestSHA256URI)
				}
				algOK = true
			case "DigestValue":
				if len(attrs) != 0 {
					return fail("unexpected attributes on DigestValue")
				}
				text.Reset()
			}
			path = append(path, t.Name)
		case xml.EndElement:
			name := path[len(path)-1]
			path = path[:len(path)-1]
			switch name.Local {
			case "DigestValue":
				v, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(text.String()))
				if err != nil || len(v) != 32 || cur.SHA256 != ([32]byte{}) {
					return fail("%q: DigestValue is not one base64 SHA-256", cur.URI)
				}
				copy(cur.SHA256[:], v)
				text.Reset()
			case "DataObjectReference":
				if !algOK || cur.SHA256 == ([32]byte{}) {
					return fail("%q: DigestMethod or DigestValue missing", cur.URI)
				}
				refs = append(refs, *cur)
				cur = nil
			}
		case xml.CharData:
			if len(path) == 3 && path[2].Local == "DigestValue" {
				if text.Len()+len(t) > 1024 {
					return fail("DigestValue too long")
				}
				text.Write(t)
			} else if len(bytes.TrimSpace(t)) != 0 {
				return fail("unexpected text")
			}
		case xml.ProcInst:
			if t.Target != "xml" || root {
				return fail("unexpected processing instruction %q", t.Target)
			}
		case xml.Directive:
			return fail("DTDs and other directives are not allowed")
		case xml.Comment:
		}
	}
	if len(path) != 0 || refs == nil {
		return fail("incomplete, or no DataObjectReference")
	}
	return refs, nil
}

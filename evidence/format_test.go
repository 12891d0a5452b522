package evidence_test

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/evidence"
)

// The container is ASiC-E as EN 319 162-1 lays it out: mimetype first at offset 0, stored, no
// extra field and no data descriptor, then the data objects, each listed with its SHA-256 in
// META-INF/ASiCManifest.xml in the ETSI namespaces.
func TestASiCLayout(t *testing.T) {
	f := getFixture(t)
	b := f.bundle
	// Local file header of the first entry, byte by byte.
	if string(b[0:4]) != "PK\x03\x04" {
		t.Fatal("no local header at offset 0")
	}
	flags, method := binary.LittleEndian.Uint16(b[6:]), binary.LittleEndian.Uint16(b[8:])
	csize, usize := binary.LittleEndian.Uint32(b[18:]), binary.LittleEndian.Uint32(b[22:])
	nlen, xlen := binary.LittleEndian.Uint16(b[26:]), binary.LittleEndian.Uint16(b[28:])
	if flags&0x8 != 0 || method != 0 || xlen != 0 || csize != usize || int(usize) != len(evidence.MediaType) {
		t.Fatalf("mimetype header: flags %#x method %d extra %d sizes %d/%d", flags, method, xlen, csize, usize)
	}
	if name := string(b[30 : 30+nlen]); name != "mimetype" {
		t.Fatalf("first entry %q", name)
	}
	if got := string(b[30+int(nlen) : 30+int(nlen)+int(usize)]); got != "application/vnd.etsi.asic-e+zip" {
		t.Fatalf("mimetype holds %q", got)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Comment != "mimetype=application/vnd.etsi.asic-e+zip" {
		t.Errorf("comment %q", zr.Comment)
	}
	// Every entry carries the bundle's time (to the 2 seconds of MS-DOS time), so that ZIP tools
	// show a date, not 1980-00-00.
	for _, f := range zr.File {
		if d := f.Modified.Sub(zr.File[1].Modified); d < -2*time.Second || d > 2*time.Second {
			t.Errorf("%s: modified %v, %s: %v", f.Name, f.Modified, zr.File[1].Name, zr.File[1].Modified)
		}
	}
	es := unzip(t, b)
	x := es[find(es, evidence.NameASiCManifest)].Data
	var doc struct {
		XMLName xml.Name `xml:"http://uri.etsi.org/02918/v1.2.1# ASiCManifest"`
		Refs    []struct {
			URI      string `xml:"URI,attr"`
			MimeType string `xml:"MimeType,attr"`
			Method   struct {
				Algorithm string `xml:"Algorithm,attr"`
			} `xml:"http://www.w3.org/2000/09/xmldsig# DigestMethod"`
			Value string `xml:"http://www.w3.org/2000/09/xmldsig# DigestValue"`
		} `xml:"http://uri.etsi.org/02918/v1.2.1# DataObjectReference"`
	}
	if err := xml.Unmarshal(x, &doc); err != nil {
		t.Fatal(err)
	}
	// Every entry but mimetype and META-INF/ is a data object, listed once.
	var want []string
	for _, e := range es {
		if e.Name != evidence.NameMimetype && !strings.HasPrefix(e.Name, "META-INF/") {
			want = append(want, e.Name)
		}
	}
	if len(doc.Refs) != len(want) {
		t.Fatalf("%d references, %d data objects", len(doc.Refs), len(want))
	}
	for i, r := range doc.Refs {
		if r.URI != want[i] || r.Method.Algorithm != "http://www.w3.org/2001/04/xmlenc#sha256" || r.MimeType == "" || len(r.Value) != 44 {
			t.Errorf("reference %d: %+v", i, r)
		}
	}
	if es[len(es)-1].Name != evidence.NameASiCManifest || es[len(es)-2].Name != evidence.NameManifest || es[len(es)-3].Name != evidence.NameReport {
		t.Errorf("the last entries are not report.html, manifest.json, META-INF/ASiCManifest.xml")
	}
}

func TestASiCManifestStrict(t *testing.T) {
	f := getFixture(t)
	es := unzip(t, f.bundle)
	orig := string(es[find(es, evidence.NameASiCManifest)].Data)
	cases := map[string]string{
		"DTD":             strings.Replace(orig, "<asic:ASiCManifest", "<!DOCTYPE x [<!ENTITY e \"e\">]><asic:ASiCManifest", 1),
		"wrong namespace": strings.Replace(orig, "02918/v1.2.1#", "2918/v1.1.1#", 1),
		"SHA-1":           strings.Replace(orig, "xmlenc#sha256", "xmldsig#sha1", 1),
		"unknown element": strings.Replace(orig, "</asic:ASiCManifest>", "<asic:Other/></asic:ASiCManifest>", 1),
		"two roots":       orig + orig[strings.Index(orig, "<asic:"):],
		"bad digest":      strings.Replace(orig, "<ds:DigestValue>", "<ds:DigestValue>!", 1),
		"text":            strings.Replace(orig, "</asic:ASiCManifest>", "hello</asic:ASiCManifest>", 1),
	}
	for name, x := range cases {
		t.Run(name, func(t *testing.T) {
			es := unzip(t, f.bundle)
			es[find(es, evidence.NameASiCManifest)].Data = []byte(x)
			res := verifyBytes(t, rezip(t, es), f.arch.VKey)
			if res.OK || !hasFailure(res, evidence.FailFile, evidence.NameASiCManifest, "malformed ASiC manifest") {
				t.Fatalf("got:\n%s", failures(res))
			}
		})
	}
}

// manifest.json is strict: what encoding/json lets through is refused.
func TestManifestStrictJSON(t *testing.T) {
	f := getFixture(t)
	es := unzip(t, f.bundle)
	orig := string(es[find(es, evidence.NameManifest)].Data)
	cases := map[string]string{
		"duplicate key":        strings.Replace(orig, `"format": "pecarchive-bundle/v1",`, `"format": "pecarchive-bundle/v1", "format": "pecarchive-bundle/v1",`, 1),
		"duplicate nested key": strings.Replace(orig, `"origin": `, `"origin": "x", "origin": `, 1),
		"unknown key":          strings.Replace(orig, `"format": `, `"extra": 1, "format": `, 1),
		"case-variant key":     strings.Replace(orig, `"format": `, `"Format": `, 1),
		"null":                 strings.Replace(orig, `"exported_by": "auditor@ordine.example.it"`, `"exported_by": null`, 1),
		"trailing data":        orig + "{}",
		"bad UTF-8":            strings.Replace(orig, `"exported_by": "auditor`, "\"exported_by\": \"\xff\xfeauditor", 1),
		"wrong type":           strings.Replace(orig, `"size": `, `"size": "1",`+` "x": `, 1),
		"deep":                 strings.Replace(orig, `"exported_by": "auditor@ordine.example.it"`, `"exported_by": `+strings.Repeat("[", 40)+strings.Repeat("]", 40), 1),
		"other format":         strings.Replace(orig, "pecarchive-bundle/v1", "pecarchive-bundle/v9", 1),
	}
	for name, j := range cases {
		t.Run(name, func(t *testing.T) {
			if j == orig {
				t.Fatal("the case changes nothing")
			}
			es := unzip(t, f.bundle)
			es[find(es, evidence.NameManifest)].Data = []byte(j)
			res := verifyBytes(t, rezip(t, es), f.arch.VKey)
			if res.OK || !hasFailure(res, evidence.FailBundle, evidence.NameManifest, "") {
				t.Fatalf("got:\n%s", failures(res))
			}
		})
	}
	var m evidence.Manifest
	if err := evidence.DecodeStrict([]byte(orig), &m); err != nil {
		t.Fatalf("the written manifest is not strict JSON: %v", err)
	}
	if err := evidence.DecodeStrict([]byte(`{"format":"a","format":"b"}`), &m); !errors.Is(err, evidence.ErrJSON) {
		t.Fatalf("duplicate: %v", err)
	}
}

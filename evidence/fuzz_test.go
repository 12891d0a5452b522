package evidence_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/pecarchive/pecarchive/evidence"
)

// fuzzLimits keep a fuzzed bundle cheap however it is built.
var fuzzLimits = evidence.Limits{MaxEntries: 64, MaxEntrySize: 1 << 20, MaxTotalSize: 4 << 20, MaxManifestSize: 1 << 20}

// FuzzBundleReader feeds arbitrary archives to the reader and the verifier: neither may panic,
// every refusal is a *FormatError, reading stays within the limits, and nothing but a verified
// bundle is ever OK.
func FuzzBundleReader(f *testing.F) {
	f.Add(makeZip(f, mimetypeFile(), file("manifest.json", `{"format":"pecarchive-bundle/v1"}`)))
	f.Add(makeZip(f, mimetypeFile(), file("../x", "y")))
	f.Add(makeZip(f, mimetypeFile(), file("a", "1"), file("A", "2")))
	f.Add([]byte("PK\x03\x04"))
	fx := getFixture(f)
	es := unzip(f, fx.bundle)
	small := []entry{es[0]}
	for _, e := range es {
		switch e.Name {
		case evidence.NameManifest, evidence.NameASiCManifest, evidence.NameCheckpoint, evidence.NameLogKey:
			small = append(small, e)
		}
	}
	f.Add(rezip(f, small))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := evidence.Open(bytes.NewReader(data), int64(len(data)), &evidence.ReadOptions{Limits: fuzzLimits})
		if err != nil {
			var fe *evidence.FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("Open: %T %v is not a *FormatError", err, err)
			}
			return
		}
		var total int64
		for _, e := range r.Entries() {
			rc, err := r.Open(e.Name)
			if err != nil {
				continue
			}
			n, _ := io.Copy(io.Discard, rc)
			rc.Close()
			if n > e.Size || n > fuzzLimits.MaxEntrySize {
				t.Fatalf("%s: read %d bytes, declared %d", e.Name, n, e.Size)
			}
			total += n
		}
		if total > fuzzLimits.MaxTotalSize {
			t.Fatalf("read %d bytes in all", total)
		}
		res := evidence.VerifyReaderAt(context.Background(), bytes.NewReader(data), int64(len(data)),
			&evidence.VerifyOptions{Limits: fuzzLimits, LogKey: fx.arch.VKey, Workers: 1})
		if res.OK && res.Messages == 0 && res.Deliveries == 0 && len(data) < 2000 {
			// An empty but valid bundle needs a signed checkpoint, which the fuzzer cannot forge.
			t.Fatalf("a bundle without a valid checkpoint verified")
		}
	})
}

// FuzzManifestJSON: the strict decoder never panics, and what it accepts, encoding/json accepts
// as the same manifest.
func FuzzManifestJSON(f *testing.F) {
	fx := getFixture(f)
	es := unzip(f, fx.bundle)
	m := es[find(es, evidence.NameManifest)].Data
	if len(m) > 4096 {
		m = m[:4096]
	}
	f.Add(m)
	f.Add([]byte(`{"format":"pecarchive-bundle/v1","files":[{"name":"a","sha256":"b","size":1,"type":"t"}]}`))
	f.Add([]byte(`{"format":"a","format":"b"}`))
	f.Add([]byte(`{"log":{"origin":"x","origin":"y"}}`))
	f.Add([]byte(`{"a":{"b":{}},"c":[{},{"d":1,"d":2}]}`))
	f.Add([]byte(`{"a":1,"\u0061":2}`))
	f.Add([]byte(`{"a":"\"}\\","b":[1e5,true,false],"c":{"x":{}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		// On JSON, the fast scanner refuses whatever the tokenizer-based reference refuses (it
		// also refuses escaped keys, which the reference decodes first).
		if json.Valid(data) {
			if ref := evidence.CheckTokensRef(data); ref != nil && evidence.CheckTokens(data) == nil {
				t.Fatalf("the scanner accepts what the reference refuses: %v", ref)
			}
		}
		var strict evidence.Manifest
		if err := evidence.DecodeStrict(data, &strict); err != nil {
			if !errors.Is(err, evidence.ErrJSON) {
				t.Fatalf("error %v does not wrap ErrJSON", err)
			}
			return
		}
		var loose evidence.Manifest
		if err := json.Unmarshal(data, &loose); err != nil {
			t.Fatalf("strict accepted what encoding/json refuses: %v", err)
		}
		a, _ := json.Marshal(strict)
		b, _ := json.Marshal(loose)
		if !bytes.Equal(a, b) {
			t.Fatalf("strict and loose decodings differ")
		}
	})
}

// FuzzASiCManifest: the ASiC manifest parser never panics.
func FuzzASiCManifest(f *testing.F) {
	fx := getFixture(f)
	es := unzip(f, fx.bundle)
	x := es[find(es, evidence.NameASiCManifest)].Data
	if len(x) > 4096 {
		x = x[:4096]
	}
	f.Add(x)
	f.Add([]byte(`<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := evidence.ParseASiCManifest(data)
		if err == nil && n == 0 {
			t.Fatal("accepted a manifest with no reference")
		}
		if err != nil && !errors.Is(err, evidence.ErrXML) {
			t.Fatalf("error %v does not wrap ErrXML", err)
		}
	})
}

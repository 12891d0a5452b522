package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pecarchive/pecarchive/internal/samples"
	"github.com/pecarchive/pecarchive/pec/pectest"
)

// contractFields are the JSON fields of `pecarchive inspect --json`, all always present.
var contractFields = []string{"file", "sha256", "kind", "receipt_type", "error", "identificativo", "msgid",
	"subject", "sender", "recipients", "delivered_to", "provider", "time", "signature", "problems"}
var contractSignatureFields = []string{"present", "valid", "trusted", "digest", "signer", "signer_email", "signed_at", "reasons"}

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func decodeLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var res []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
		for _, f := range contractFields {
			v, ok := m[f]
			if !ok || v == nil {
				t.Errorf("%v: field %q absent or null", m["file"], f)
			}
		}
		sig, _ := m["signature"].(map[string]any)
		for _, f := range contractSignatureFields {
			if v, ok := sig[f]; !ok || v == nil {
				t.Errorf("%v: signature field %q absent or null", m["file"], f)
			}
		}
		res = append(res, m)
	}
	return res
}

func TestInspectRealEnvelope(t *testing.T) {
	file := samples.Path(t, "real/aruba-busta-trasporto-2023-08-18.eml")
	code, out, errOut := runCLI(t, "inspect", "--json", file)
	if code != exitOK {
		t.Fatalf("exit %d, stderr %s, out %s", code, errOut, out)
	}
	r := decodeLines(t, out)[0]
	want := map[string]any{
		"kind": "posta-certificata", "receipt_type": "completa", "error": "nessuno",
		"identificativo": "opec21010.20230818173714.75133.134.1.56@pec.aruba.it",
		"msgid":          "RZLFE1$D00882600B2330420CAE7B3643F81CDD@pec.datamanagementitalia.it",
		"subject":        "[XDCR] xdcr_2022_02_00583.txt", "sender": "sviluppo@pec.datamanagementitalia.it",
		"provider": "ARUBA PEC S.p.A.", "time": "2023-08-18T17:37:14+02:00",
		"sha256": "e4d8a5a84c7c9be1d63e6928a46b6ee044a76041765e14cdce4cf1edacb37366",
	}
	for k, v := range want {
		if r[k] != v {
			t.Errorf("%s = %v, want %v", k, r[k], v)
		}
	}
	sig := r["signature"].(map[string]any)
	if sig["valid"] != true || sig["trusted"] != true || sig["digest"] != "sha1" ||
		sig["signer_email"] != "posta-certificata@pec.aruba.it" || sig["signed_at"] != "2023-08-18T15:37:13Z" {
		t.Errorf("signature = %v", sig)
	}

	// As of today the provider certificate has expired: trusted false with reason "expired", exit 1.
	code, out, _ = runCLI(t, "inspect", "--json", "--at", "2026-11-25T00:00:00Z", file)
	if code != exitNotValid {
		t.Errorf("exit at today's date = %d, want 1", code)
	}
	sig = decodeLines(t, out)[0]["signature"].(map[string]any)
	if sig["valid"] != true || sig["trusted"] != false || !strings.Contains(strings.Join(toStrings(sig["reasons"]), ","), "expired") {
		t.Errorf("signature at today's date = %v", sig)
	}

	// With only the Actalis root added (it is built in too), the result is the same.
	code, _, _ = runCLI(t, "inspect", "--trust", samples.Path(t, "certs/Actalis_Authentication_Root_CA.pem"), file)
	if code != exitOK {
		t.Errorf("with --trust Actalis: exit %d", code)
	}
}

func toStrings(v any) []string {
	var s []string
	for _, x := range v.([]any) {
		s = append(s, x.(string))
	}
	return s
}

func TestInspectAnonymisedSamples(t *testing.T) {
	files := samples.Glob(t, "anonymised/*.eml")
	if len(files) == 0 {
		t.Skip("no anonymised samples")
	}
	code, out, _ := runCLI(t, append([]string{"inspect", "--json"}, files...)...)
	if code != exitNotValid {
		t.Errorf("exit %d, want 1 (the anonymised samples' signatures are truncated)", code)
	}
	kinds := map[string]string{
		"accettazione.eml": "accettazione", "consegna.eml": "errore-consegna",
		"email_2.eml": "avvenuta-consegna", "email_3.eml": "posta-certificata",
	}
	for _, r := range decodeLines(t, out) {
		base := filepath.Base(r["file"].(string))
		if want := kinds[base]; r["kind"] != want {
			t.Errorf("%s: kind %v, want %s", base, r["kind"], want)
		}
		sig := r["signature"].(map[string]any)
		if sig["present"] != true || sig["valid"] != false {
			t.Errorf("%s: signature %v, want present and not valid", base, sig)
		}
		if base == "consegna.eml" && (r["error"] != "no-dest" || r["delivered_to"] != "rec@fakepec.it") {
			t.Errorf("consegna.eml: error %v delivered_to %v", r["error"], r["delivered_to"])
		}
	}
}

func TestInspectGeneratedKinds(t *testing.T) {
	dir := t.TempDir()
	ca, err := pectest.NewCA(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(root, ca.RootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, g := range pectest.AllKinds(1) {
		file := filepath.Join(dir, g.Name+".eml")
		if err := os.WriteFile(file, g.Bytes, 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runCLI(t, "inspect", "--json", "--trust", root, file)
		r := decodeLines(t, out)[0]
		sig := r["signature"].(map[string]any)
		if r["kind"] != string(g.Kind) || sig["valid"] != g.WantValid || sig["trusted"] != g.WantTrusted {
			t.Errorf("%s: kind %v valid %v trusted %v reasons %v; want %s %v %v (stderr %s)",
				g.Name, r["kind"], sig["valid"], sig["trusted"], sig["reasons"], g.Kind, g.WantValid, g.WantTrusted, errOut)
		}
		wantCode := exitOK
		if !g.WantValid || !g.WantTrusted || g.Kind == "not-pec" {
			wantCode = exitNotValid
		}
		if code != wantCode {
			t.Errorf("%s: exit %d, want %d", g.Name, code, wantCode)
		}
		if g.ID != "" && g.Kind != "not-pec" && r["identificativo"] != g.ID {
			t.Errorf("%s: identificativo %v, want %s", g.Name, r["identificativo"], g.ID)
		}
		if g.Recipient != "" && g.Kind == "avvenuta-consegna" && r["delivered_to"] != g.Recipient {
			t.Errorf("%s: delivered_to %v, want %s", g.Name, r["delivered_to"], g.Recipient)
		}
	}
	// Without the test root the genuine messages are valid but not trusted.
	g := pectest.AllKinds(1)[1]
	file := filepath.Join(dir, g.Name+".eml")
	code, out, _ := runCLI(t, "inspect", "--json", file)
	sig := decodeLines(t, out)[0]["signature"].(map[string]any)
	if code != exitNotValid || sig["valid"] != true || sig["trusted"] != false {
		t.Errorf("without the test root: exit %d signature %v", code, sig)
	}
}

func TestInspectUsageAndIOErrors(t *testing.T) {
	if code, _, _ := runCLI(t, "inspect"); code != exitUsage {
		t.Errorf("no files: exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, "inspect", "--at", "yesterday", "x.eml"); code != exitUsage {
		t.Errorf("bad --at: exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, "inspect", filepath.Join(t.TempDir(), "missing.eml")); code != exitUsage {
		t.Errorf("missing file: exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, "inspect", "--trust", filepath.Join(t.TempDir(), "none.pem"), "x.eml"); code != exitUsage {
		t.Errorf("missing trust file: exit %d, want 2", code)
	}
}

func TestInspectMalformedInput(t *testing.T) {
	dir := t.TempDir()
	inputs := map[string][]byte{
		"empty.eml":   nil,
		"garbage.eml": []byte("\x00\xff\xfe not a message at all"),
		"plain.eml":   []byte("From: a@b.c\r\nTo: d@e.f\r\nSubject: hi\r\n\r\nhello\r\n"),
		"cut.eml":     pectest.TypicalDeliveryReceipt(1)[:4000],
	}
	for name, b := range inputs {
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, _ := runCLI(t, "inspect", "--json", file)
		if code != exitNotValid {
			t.Errorf("%s: exit %d, want 1", name, code)
		}
		decodeLines(t, out)
	}
}

func TestDemo(t *testing.T) {
	code, out, errOut := runCLI(t, "demo", "--out", t.TempDir())
	if code != exitOK {
		t.Fatalf("demo exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestDemoArchive(t *testing.T) {
	pgEnv(t)
	code, out, errOut := runCLI(t, "demo", "--archive", "--out", t.TempDir())
	if code != exitOK {
		t.Fatalf("demo --archive exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"mario.rossi@pec.esempio.it   delivered", "anna.bianchi@pec.esempio.it  not-delivered  no-dest",
		"new=false", "audit: ", "OK, nothing missing", "ingest: segreteria/INBOX fetched 9, new 9, already 0, refused 0",
		"pecarchive export --msgid ", "convocazione.zip: 10 messages, 1 deliveries, checkpoint checked against the key given: OK"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

func TestBenchVerify(t *testing.T) {
	res, err := measureVerify(1, 50e6)
	if err != nil {
		t.Fatal(err)
	}
	if res.perSec <= 0 || res.floorPerSec <= 0 {
		t.Fatalf("bad figures: %v", res)
	}
	t.Log(res)
}

func TestInspectProviderIndex(t *testing.T) {
	dir := t.TempDir()
	p, err := pectest.NewProvider(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := p.Peer(nil)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root.pem")
	os.WriteFile(root, p.CA.RootPEM(), 0o644)
	var acc pectest.Generated
	for _, g := range pectest.AllKinds(1) {
		if g.Name == "accettazione" {
			acc = g
		}
	}
	msg := filepath.Join(dir, "accettazione.eml")
	os.WriteFile(msg, acc.Bytes, 0o644)

	both, err := p.CA.SignIndex(pectest.IndexLDIF(p, peer), pectest.DefaultTime)
	if err != nil {
		t.Fatal(err)
	}
	onlyPeer := pectest.IndexLDIF(peer)
	os.WriteFile(filepath.Join(dir, "both.ldif.p7m"), both, 0o644)
	os.WriteFile(filepath.Join(dir, "peer.ldif"), onlyPeer, 0o644)

	code, out, errOut := runCLI(t, "inspect", "--json", "--trust", root, "--index", filepath.Join(dir, "both.ldif.p7m"), msg)
	sig := decodeLines(t, out)[0]["signature"].(map[string]any)
	if code != exitOK || sig["trusted"] != true {
		t.Errorf("signed index listing the signer: exit %d signature %v %s", code, sig, errOut)
	}
	code, out, _ = runCLI(t, "inspect", "--json", "--trust", root, "--index", filepath.Join(dir, "peer.ldif"), msg)
	sig = decodeLines(t, out)[0]["signature"].(map[string]any)
	if code != exitNotValid || sig["trusted"] != false || !strings.Contains(strings.Join(toStrings(sig["reasons"]), ","), "not-in-index") {
		t.Errorf("index without the signer: exit %d signature %v", code, sig)
	}
	// A tampered signed index is refused before use.
	bad := append([]byte(nil), both...)
	bad[len(bad)/2] ^= 1
	os.WriteFile(filepath.Join(dir, "bad.ldif.p7m"), bad, 0o644)
	if code, _, _ := runCLI(t, "inspect", "--trust", root, "--index", filepath.Join(dir, "bad.ldif.p7m"), msg); code != exitUsage {
		t.Errorf("tampered signed index: exit %d, want 2", code)
	}
}

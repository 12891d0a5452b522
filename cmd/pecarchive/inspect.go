package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/smime"
)

func init() {
	register("inspect", "parse and verify PEC message files offline (no database, no network)", runInspect)
}

// inspectResult is one line of `pecarchive inspect --json` (a contract: see ARCHITECTURE.md).
// Unknown fields are empty strings or empty arrays, never absent.
type inspectResult struct {
	File           string           `json:"file"`
	SHA256         string           `json:"sha256"`
	Kind           string           `json:"kind"`
	ReceiptType    string           `json:"receipt_type"`
	Error          string           `json:"error"`
	Identificativo string           `json:"identificativo"`
	MsgID          string           `json:"msgid"`
	Subject        string           `json:"subject"`
	Sender         string           `json:"sender"`
	Recipients     []inspectRcpt    `json:"recipients"`
	DeliveredTo    string           `json:"delivered_to"`
	Provider       string           `json:"provider"`
	Time           string           `json:"time"`
	Signature      inspectSignature `json:"signature"`
	Problems       []string         `json:"problems"`
}

type inspectRcpt struct {
	Address string `json:"address"`
	Type    string `json:"type"`
}

type inspectSignature struct {
	Present     bool     `json:"present"`
	Valid       bool     `json:"valid"`
	Trusted     bool     `json:"trusted"`
	Digest      string   `json:"digest"`
	Signer      string   `json:"signer"`
	SignerEmail string   `json:"signer_email"`
	SignedAt    string   `json:"signed_at"`
	Reasons     []string `json:"reasons"`
}

func runInspect(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var trust multiFlag
	fs.Var(&trust, "trust", "PEM file or directory of trust anchors to add to the built-in ones (repeatable)")
	at := fs.String("at", "", "verify as of this time (RFC 3339); default: the message's signing time")
	asJSON := fs.Bool("json", false, "print one JSON object per file, one per line")
	index := fs.String("index", "", "provider index (IGPEC LDIF, plain or signed .p7m): the signer must be listed and manage the From domain")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pecarchive inspect [--trust PATH]... [--at RFC3339] [--index LDIF] [--json] FILE...")
		fs.PrintDefaults()
	}
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(files) == 0 {
		fs.Usage()
		return exitUsage
	}
	var atTime time.Time
	if *at != "" {
		atTime, err = time.Parse(time.RFC3339, *at)
		if err != nil {
			fmt.Fprintf(stderr, "pecarchive inspect: --at: %v\n", err)
			return exitUsage
		}
	}
	v, err := verifierSources{Trust: trust, TrustName: "--trust", Index: *index, IndexName: "--index"}.verifier()
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive inspect: %v\n", err)
		return exitUsage
	}
	ctx := context.Background()
	status := exitOK
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(stderr, "pecarchive inspect: %v\n", err)
			return exitUsage
		}
		r := inspectBytes(ctx, v, f, raw, atTime)
		if r.Kind == string(pec.KindNotPEC) || !r.Signature.Valid || !r.Signature.Trusted {
			status = exitNotValid
		}
		if *asJSON {
			if err := enc.Encode(r); err != nil {
				fmt.Fprintf(stderr, "pecarchive inspect: %v\n", err)
				return exitUsage
			}
			continue
		}
		printInspectText(stdout, r)
	}
	return status
}

// inspectBytes parses and verifies one message and fills the contract's fields.
func inspectBytes(ctx context.Context, v *smime.Verifier, name string, raw []byte, at time.Time) inspectResult {
	sum := sha256.Sum256(raw)
	r := inspectResult{
		File:       name,
		SHA256:     hex.EncodeToString(sum[:]),
		Kind:       string(pec.KindNotPEC),
		Recipients: []inspectRcpt{},
		Problems:   []string{},
		Signature:  inspectSignature{Reasons: []string{}},
	}
	m, err := pec.Parse(raw, nil)
	if err != nil {
		r.Problems = append(r.Problems, err.Error())
	}
	if m == nil {
		return r
	}
	for _, p := range m.Problems {
		r.Problems = append(r.Problems, p.Error())
	}
	r.Kind = string(m.Kind)
	r.ReceiptType = string(m.ReceiptType())
	r.Subject = m.Headers.Subject
	r.MsgID = m.Headers.XRiferimentoMessageID
	r.Sender = m.Headers.From
	if d := m.Daticert; d != nil {
		r.Error = string(d.Errore)
		r.Identificativo = d.Identificativo
		if d.MsgID != "" {
			r.MsgID = d.MsgID
		}
		if d.Oggetto != "" {
			r.Subject = d.Oggetto
		}
		if d.Mittente != "" {
			r.Sender = d.Mittente
		}
		for _, rc := range d.Destinatari {
			r.Recipients = append(r.Recipients, inspectRcpt{Address: rc.Address, Type: string(rc.Type)})
		}
		r.DeliveredTo = d.Consegna
		r.Provider = d.GestoreEmittente
		if !d.Data.IsZero() {
			r.Time = d.Data.Format(time.RFC3339)
		}
	}
	if (m.Kind == pec.KindPostaCertificata || m.Kind == pec.KindAnomalia) && r.Identificativo == "" {
		r.Identificativo = m.Headers.MessageID
	}
	if m.Kind == pec.KindNotPEC && r.Error != "" {
		r.Error = ""
	}
	vd := v.VerifyMessage(ctx, m, &smime.VerifyOptions{At: at})
	r.Signature = inspectSignature{
		Present:     vd.Present,
		Valid:       vd.Valid,
		Trusted:     vd.Trusted,
		Digest:      vd.Digest,
		Signer:      vd.Signer,
		SignerEmail: vd.SignerEmail,
		Reasons:     append([]string{}, vd.Reasons...),
	}
	if !vd.SignedAt.IsZero() {
		r.Signature.SignedAt = vd.SignedAt.Format(time.RFC3339)
	}
	return r
}

func printInspectText(w io.Writer, r inspectResult) {
	verdict := "NOT VERIFIED"
	switch {
	case !r.Signature.Present:
		verdict = "UNSIGNED"
	case r.Signature.Valid && r.Signature.Trusted:
		verdict = "VALID+TRUSTED"
	case r.Signature.Valid:
		verdict = "VALID, NOT TRUSTED"
	default:
		verdict = "INVALID SIGNATURE"
	}
	fmt.Fprintf(w, "%s\n  kind: %s", r.File, r.Kind)
	if r.ReceiptType != "" {
		fmt.Fprintf(w, " (%s)", r.ReceiptType)
	}
	if r.Error != "" && r.Error != "nessuno" {
		fmt.Fprintf(w, " errore=%s", r.Error)
	}
	fmt.Fprintf(w, "\n  signature: %s", verdict)
	if r.Signature.Digest != "" {
		fmt.Fprintf(w, " digest=%s", r.Signature.Digest)
	}
	if r.Signature.SignedAt != "" {
		fmt.Fprintf(w, " signed_at=%s", r.Signature.SignedAt)
	}
	if len(r.Signature.Reasons) > 0 {
		fmt.Fprintf(w, " reasons=%s", strings.Join(r.Signature.Reasons, ","))
	}
	fmt.Fprintln(w)
	if r.Identificativo != "" {
		fmt.Fprintf(w, "  pec id: %s\n", r.Identificativo)
	}
	if r.MsgID != "" {
		fmt.Fprintf(w, "  msgid: %s\n", r.MsgID)
	}
	if r.Sender != "" {
		fmt.Fprintf(w, "  sender: %s\n", r.Sender)
	}
	for _, rc := range r.Recipients {
		fmt.Fprintf(w, "  recipient: %s (%s)\n", rc.Address, rc.Type)
	}
	if r.DeliveredTo != "" {
		fmt.Fprintf(w, "  delivered to: %s\n", r.DeliveredTo)
	}
	if r.Provider != "" || r.Time != "" {
		fmt.Fprintf(w, "  provider: %s at %s\n", r.Provider, r.Time)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
}

package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"

	querypb "github.com/pecarchive/pecarchive/gen/pecarchive/query/v1"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/pec/smime"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/audit"
	"github.com/pecarchive/pecarchive/services/archive/blob/fsstore"
	"github.com/pecarchive/pecarchive/services/archive/reader"
	"github.com/pecarchive/pecarchive/tlog"
)

// demoArchive runs the archive on embedded defaults (filesystem blob store in dir, the local
// PostgreSQL in schema pecarchive_demo, a log key made in dir): a whole PEC conversation is
// delivered to a local IMAP mailbox (receipts in shuffled order) and pulled into the archive by
// ingest (demo_ingest.go), then it shows the delivery
// state of each recipient, proves one delivery receipt's inclusion in the signed log, stores a
// receipt again to show idempotency, audits everything, and exports the conversation as an
// evidence bundle that it verifies offline (demoBundle).
func demoArchive(ctx context.Context, s settings, seed int64, dir string, out io.Writer) error {
	schema := s.get("PECARCHIVE_PG_SCHEMA", "pecarchive_demo")
	s["PECARCHIVE_PG_SCHEMA"] = schema
	pool, err := s.openPool(ctx)
	if err != nil {
		return fmt.Errorf("%w (start one with scripts/postgres.sh, or set PECARCHIVE_PG_DSN)", err)
	}
	defer pool.Close()
	id := pgx.Identifier{schema}.Sanitize()
	if _, err := pool.Exec(ctx, "DROP SCHEMA "+id+" CASCADE; CREATE SCHEMA "+id); err != nil {
		return err
	}
	blobs, err := fsstore.New(ctx, fsstore.Config{Root: filepath.Join(dir, "blobs")})
	if err != nil {
		return err
	}
	skey, _, err := tlog.GenerateKey("demo.pecarchive.local/log")
	if err != nil {
		return err
	}
	if err := writeSecretFile(filepath.Join(dir, "log.key"), []byte(skey+"\n")); err != nil {
		return err
	}
	if err := archive.Migrate(ctx, pool); err != nil {
		return err
	}
	l, vkey, err := openLogWithKey(ctx, pool, blobs, skey, nil)
	if err != nil {
		return err
	}
	ca, err := pectest.NewCA(seed, nil)
	if err != nil {
		return err
	}
	v, err := smime.New(smime.Config{Anchors: smime.Merge(smime.DefaultTrustStore(), smime.NewTrustStore(ca.Root))})
	if err != nil {
		return err
	}
	a, err := archive.New(ctx, archive.Config{Pool: pool, Blobs: blobs, Log: l, Verifier: v, NoMigrate: true})
	if err != nil {
		return err
	}
	defer a.Close(context.Background())

	p, err := pectest.NewProvider(seed, nil)
	if err != nil {
		return err
	}
	conv, err := p.Conversation(&pectest.ConversationConfig{
		Original: &pectest.Original{
			FromName: "Ordine dei Medici - Segreteria",
			To:       []string{"mario.rossi@pec.esempio.it", "anna.bianchi@pec.esempio.it", "studio.verdi@pec.esempio.it"},
			Subject:  "Convocazione assemblea annuale degli iscritti",
		},
		Outcomes: map[string]pectest.Outcome{
			"anna.bianchi@pec.esempio.it": {Error: pec.ErrNoDest},
			"studio.verdi@pec.esempio.it": {Late: true},
		},
	})
	if err != nil {
		return err
	}
	msgs := append([]*pectest.Generated(nil), conv.Messages...)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	rng.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
	rd, err := reader.New(ctx, reader.Config{Pool: pool, Blobs: blobs, Log: l})
	if err != nil {
		return err
	}
	recs, srcs, from, err := demoIngest(ctx, pool, localArchiver{a, rd}, msgs, dir, out)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\narchive: what it acknowledged, in that order\n")
	fmt.Fprintf(out, "  blobs: %s (write-once files; S3 Object Lock in production)\n  catalog + log: PostgreSQL schema %s\n\n", filepath.Join(dir, "blobs"), schema)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LEAF\tSHA-256\tKIND\tFOR\tSIGNATURE\tFROM")
	var receipt archive.Record
	for i, rec := range recs {
		g := from[rec.SHA256]
		if g == nil {
			return fmt.Errorf("demo: the archive acknowledged %x, which the provider did not send", rec.SHA256[:8])
		}
		full, err := rd.Get(ctx, rec.SHA256)
		if err != nil {
			return err
		}
		sig := "unsigned"
		if full.Verdict.Present {
			sig = "valid, trusted"
			if !full.Verdict.Valid || !full.Verdict.Trusted {
				sig = "NOT TRUSTED: " + strings.Join(full.Verdict.Reasons, ",")
			}
		}
		who := g.Recipient
		if who == "" {
			who = g.Mailbox
		}
		fmt.Fprintf(tw, "%d\t%s…\t%s\t%s\t%s\t%s/%s UID %d\n", rec.LeafIndex, hex.EncodeToString(rec.SHA256[:6]), rec.Kind, who, sig,
			srcs[i].Mailbox, srcs[i].Folder, srcs[i].UID)
		if g.Kind == pec.KindAvvenutaConsegna && g.Recipient == "mario.rossi@pec.esempio.it" {
			receipt = archive.Record{Message: full.Message}
		}
	}
	tw.Flush()

	dels, err := rd.Deliveries(ctx, reader.Selector{MsgID: conv.Original.MessageID})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\ndelivery of %q (msgid %s):\n", conv.Original.Subject, conv.Original.MessageID)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, d := range dels {
		detail := string(d.ReceiptType)
		if d.Errore != "" && d.Errore != pec.ErrNessuno {
			detail = string(d.Errore) + " " + d.ErroreEsteso
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", d.Recipient, d.State, detail)
	}
	tw.Flush()

	if receipt.LeafIndex == 0 && receipt.SHA256 == ([32]byte{}) {
		return fmt.Errorf("demo: no delivery receipt for mario.rossi")
	}
	cpSigned, err := a.Publish(ctx)
	if err != nil {
		return err
	}
	cp, err := tlog.VerifyCheckpoint(cpSigned, vkey)
	if err != nil {
		return err
	}
	proof, err := rd.InclusionProof(ctx, receipt.LeafIndex, cp.Size)
	if err != nil {
		return err
	}
	leaf, err := rd.LeafData(ctx, receipt.LeafIndex)
	if err != nil {
		return err
	}
	if err := tlog.VerifyInclusion(tlog.LeafHash(leaf), receipt.LeafIndex, cp.Size, proof, cp.Hash); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nproof: the delivery receipt for mario.rossi (leaf %d) is in the log under this signed checkpoint,\n"+
		"checked with the log's public key %s and a %d-hash inclusion proof:\n\n%s\n",
		receipt.LeafIndex, vkey, len(proof), indent(string(cpSigned)))

	again, err := a.Store(ctx, crlf(msgs[0].Bytes), archive.Source{Path: "re-import/" + msgs[0].Name + ".eml"})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "idempotency: storing a message again returns leaf %d, new=%v (only the new source is added)\n", again.LeafIndex, again.New)

	rep, err := audit.Run(ctx, audit.Config{Pool: pool, Blobs: blobs, Log: l, LogKey: vkey})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "audit: %d leaves, %d catalog rows, %d blobs re-hashed, %d checkpoints (%d kept on write-once storage), deliveries of %d message ids derived again: ",
		rep.LogSize, rep.Rows, rep.Blobs, rep.Checkpoints, rep.WriteOnceCheckpoints, rep.DeliveryMsgIDs)
	if !rep.OK() {
		fmt.Fprintln(out, "FAILED")
		for _, f := range rep.Findings {
			fmt.Fprintf(out, "  %s\n", f)
		}
		return fmt.Errorf("demo: audit failed")
	}
	fmt.Fprintln(out, "OK, nothing missing, altered or unlogged")
	if err := a.Close(ctx); err != nil {
		return err
	}
	return demoBundle(ctx, s, dir, conv.Original.MessageID, vkey, out)
}

// demoBundle exports the demo's conversation as an auditor receives it, with `pecarchive export`
// from the demo's archive (write-once files in dir, the PostgreSQL schema of s), and verifies the
// bundle offline with `pecarchive verify-bundle` against the log's public key, printing both
// commands so that they can be run again.
func demoBundle(ctx context.Context, s settings, dir, msgid, vkey string, out io.Writer) error {
	// The demo's archive as the settings of any command: DATA_DIR holds its blobs and log key.
	ds := settings{"PECARCHIVE_DATA_DIR": dir, "PECARCHIVE_PG_SCHEMA": s.get("PECARCHIVE_PG_SCHEMA", "")}
	env := fmt.Sprintf("PECARCHIVE_DATA_DIR=%s PECARCHIVE_PG_SCHEMA=%s", shellQuote(dir), shellQuote(ds["PECARCHIVE_PG_SCHEMA"]))
	if dsn := s.get("PECARCHIVE_PG_DSN", ""); dsn != "" {
		ds["PECARCHIVE_PG_DSN"] = dsn // not printed: it may hold a password
	}
	keyFile := filepath.Join(dir, "log.pub")
	bundle := filepath.Join(dir, "convocazione.zip")
	for _, f := range []string{keyFile, bundle} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := os.WriteFile(keyFile, []byte(vkey+"\n"), 0o644); err != nil {
		return err
	}
	req := &querypb.ExportEvidenceBundleRequest{Selectors: []*querypb.Selector{{Selector: &querypb.Selector_Msgid{Msgid: msgid}}}}
	size, sum, err := ds.exportFile(ctx, req, bundle)
	if err != nil {
		return fmt.Errorf("export: %s", describeStatus(err))
	}
	fmt.Fprintf(out, "\nevidence bundle: the notice, its envelopes and receipts, their proofs, certificates and report.html, for an auditor:\n"+
		"  $ %s pecarchive export --msgid %s --out %s\n  %s: %d bytes, sha256 %x\n",
		env, shellQuote(msgid), bundle, bundle, size, sum)
	fmt.Fprintf(out, "verified offline (no database, no network) against the log's public key (%s):\n  $ pecarchive verify-bundle %s --log-key %s\n  ",
		keyFile, bundle, keyFile)
	var errOut strings.Builder
	if code := runVerifyBundle([]string{bundle, "--log-key", keyFile}, out, &errOut); code != exitOK {
		return fmt.Errorf("verify-bundle: exit %d: %s", code, errOut.String())
	}
	return nil
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}

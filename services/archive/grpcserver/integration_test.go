package grpcserver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	archivev1 "github.com/pecarchive/pecarchive/gen/pecarchive/archive/v1"
	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/pec/smime"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/archiveclient"
	"github.com/pecarchive/pecarchive/services/archive/blob/fsstore"
	"github.com/pecarchive/pecarchive/services/archive/grpcserver"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
	"github.com/pecarchive/pecarchive/services/archive/reader"
	"github.com/pecarchive/pecarchive/tlog"
)

// TestRealArchive runs the service over the real archive core (PostgreSQL in a fresh schema, a
// filesystem blob store, the pectest CA as trust anchor): store signed PEC messages over gRPC,
// read them back, and check the log's checkpoint and proofs with package tlog as an auditor would.
func TestRealArchive(t *testing.T) {
	ctx := ctxT(t)
	prov, err := pectest.NewProvider(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := prov.Peer(nil)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := smime.New(smime.Config{Anchors: smime.NewTrustStore(prov.CA.Root)})
	if err != nil {
		t.Fatal(err)
	}
	pool := testenv.PG(t)
	blobDir := t.TempDir()
	blobs, err := fsstore.New(ctx, fsstore.Config{Root: blobDir})
	if err != nil {
		t.Fatal(err)
	}
	if err := archive.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	const origin = "pecarchive.test/grpc"
	skey, vkey, err := tlog.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := tlog.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	logVerifier, err := tlog.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	log, err := merklelog.New(ctx, merklelog.Config{Pool: pool, Origin: origin, Signer: signer, Verifier: logVerifier, Checkpoints: blobs})
	if err != nil {
		t.Fatal(err)
	}
	a, err := archive.New(ctx, archive.Config{Pool: pool, Blobs: blobs, Log: log, Verifier: verifier,
		CheckpointInterval: -1, CheckpointEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })

	rd, err := reader.New(ctx, reader.Config{Pool: pool, Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{cfg: grpcserver.Config{Archive: a, Reader: rd}})
	ingest, reader := e.client(t, ingestToken), e.client(t, readerToken)

	o, err := prov.Original(&pectest.Original{To: []string{"a@pec.esempio.it"}, Subject: "Diffida", MessageID: "diffida-1@pec.example.it"})
	if err != nil {
		t.Fatal(err)
	}
	acc, err := prov.Acceptance(pectest.Params{Original: o})
	if err != nil {
		t.Fatal(err)
	}
	del, err := peer.Delivery(pectest.Params{Original: o, Recipient: "a@pec.esempio.it", ReceiptType: pec.ReceiptCompleta})
	if err != nil {
		t.Fatal(err)
	}
	src := &archivev1.Source{Mailbox: "ufficio@pec.example.it", Folder: "INBOX", UidValidity: 3, Uid: 10,
		InternalDate: timestamppb.New(pectest.DefaultTime.Add(time.Hour))}

	rec, err := archiveclient.StoreBytes(ctx, ingest, del.Bytes, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.GetNew() || rec.GetKind() != string(pec.KindAvvenutaConsegna) || rec.GetReceiptType() != "completa" ||
		!rec.GetVerdict().GetValid() || !rec.GetVerdict().GetTrusted() || rec.GetOrigMsgid() != o.MessageID ||
		rec.GetDaticertTime() == "" || len(rec.GetRecipients()) == 0 {
		t.Errorf("delivery record: %v", rec)
	}
	if rec.GetPostacert() == nil || !rec.GetPostacert().GetNew() || !bytes.Equal(rec.GetPostacert().GetSha256(), rec.GetPostacertSha256()) {
		t.Errorf("postacert: %v", rec.GetPostacert())
	}
	again, err := archiveclient.StoreBytes(ctx, ingest, del.Bytes, &archivev1.Source{Path: "/import/del.eml"}, nil)
	if err != nil || again.GetNew() || again.GetLeafIndex() != rec.GetLeafIndex() {
		t.Errorf("second store: %v, %v", again, err)
	}
	accRec, err := archiveclient.StoreBytes(ctx, ingest, acc.Bytes, src, nil)
	if err != nil || accRec.GetKind() != string(pec.KindAccettazione) {
		t.Fatalf("acceptance: %v, %v", accRec, err)
	}

	got, err := reader.GetRecord(ctx, &archivev1.GetRecordRequest{Sha256: rec.GetSha256()})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetRecord().GetLeafIndex() != rec.GetLeafIndex() || len(got.GetRecord().GetSources()) != 2 {
		t.Errorf("GetRecord: %v", got.GetRecord())
	}

	// The auditor's view: a signed checkpoint, and proofs that check against it.
	if _, err := a.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	cpResp, err := reader.GetCheckpoint(ctx, &archivev1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := tlog.VerifyCheckpoint(cpResp.GetCheckpoint(), vkey)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 4 { // receipt, its postacert.eml, the receipt's second source, acceptance
		t.Errorf("checkpoint size %d, want 4", cp.Size)
	}
	for _, r := range []*archivev1.Record{rec, rec.GetPostacert(), accRec} {
		ip, err := reader.GetInclusionProof(ctx, &archivev1.GetInclusionProofRequest{LeafIndex: r.GetLeafIndex(), TreeSize: cp.Size})
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.VerifyInclusion(tlog.LeafHash(ip.GetLeafData()), r.GetLeafIndex(), cp.Size, ip.GetHashes(), cp.Hash); err != nil {
			t.Errorf("inclusion of leaf %d: %v", r.GetLeafIndex(), err)
		}
		leaf, err := tlog.ParseLeaf(ip.GetLeafData())
		if err != nil || leaf.SHA256 != [32]byte(r.GetSha256()) {
			t.Errorf("leaf %d: %+v, %v; want sha256 %x", r.GetLeafIndex(), leaf, err, r.GetSha256())
		}
	}
	// Consistency between the tree of the first two leaves and the checkpoint.
	root2, err := log.Root(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := reader.GetConsistencyProof(ctx, &archivev1.GetConsistencyProofRequest{FromSize: 2, ToSize: cp.Size})
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.VerifyConsistency(2, cp.Size, cons.GetHashes(), root2, cp.Hash); err != nil {
		t.Errorf("consistency 2 -> %d: %v", cp.Size, err)
	}

	// A read recorded through the archive lands in the log after the messages.
	recResp, err := e.client(t, recorderToken).RecordAccess(ctx, &archivev1.RecordAccessRequest{Principal: "segreteria", Auth: "token",
		Method: "/pecarchive.query.v1.EvidenceService/GetMessage", Returned: [][]byte{rec.GetSha256()}})
	if err != nil || recResp.GetLeafIndex() != cp.Size {
		t.Errorf("RecordAccess: %v, %v; want leaf %d", recResp, err, cp.Size)
	}

	// Errors from the real components keep their meaning.
	unknown := sha256.Sum256([]byte("never stored"))
	if _, err := reader.GetRecord(ctx, &archivev1.GetRecordRequest{Sha256: unknown[:]}); codeOf(err) != "NotFound" {
		t.Errorf("unknown record: %v", err)
	}
	if _, err := reader.GetInclusionProof(ctx, &archivev1.GetInclusionProofRequest{LeafIndex: 0, TreeSize: cp.Size + 5}); codeOf(err) != "OutOfRange" {
		t.Errorf("proof beyond the log: %v", err)
	}

	// GetRecord with verify_blob, as ingest asks before an after_archive policy removes a message
	// from a mailbox (with its own token): the bytes are read back and confirmed, the postacert's
	// extracted from its receipt; once the receipt's blob is lost, neither is confirmed.
	verify := func(sum []byte) (*archivev1.GetRecordResponse, error) {
		return ingest.GetRecord(ctx, &archivev1.GetRecordRequest{Sha256: sum, VerifyBlob: true})
	}
	for _, r := range []*archivev1.Record{rec, rec.GetPostacert(), accRec} {
		if got, err := verify(r.GetSha256()); err != nil || !got.GetBlobVerified() {
			t.Errorf("verify_blob of %x: %v, %v", r.GetSha256(), got, err)
		}
	}
	if got, err := reader.GetRecord(ctx, &archivev1.GetRecordRequest{Sha256: rec.GetSha256()}); err != nil || got.GetBlobVerified() {
		t.Errorf("without verify_blob: %v, %v", got, err)
	}
	hexSum := fmt.Sprintf("%x", rec.GetSha256())
	if err := os.Remove(filepath.Join(blobDir, "sha256", hexSum[:2], hexSum)); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*archivev1.Record{rec, rec.GetPostacert()} {
		if got, err := verify(r.GetSha256()); codeOf(err) != "DataLoss" {
			t.Errorf("verify_blob of %x with the receipt's blob lost: %v, %v; want DataLoss", r.GetSha256(), got, err)
		}
	}
	if got, err := verify(accRec.GetSha256()); err != nil || !got.GetBlobVerified() {
		t.Errorf("verify_blob of the acceptance: %v, %v", got, err)
	}
}

func codeOf(err error) string { return status.Code(err).String() }

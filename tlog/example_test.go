package tlog_test

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/pecarchive/pecarchive/tlog"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
)

// An auditor holding the log's public key, a signed checkpoint, a message and its inclusion
// proof checks that the message was logged.
func Example_auditor() {
	// The log side (here an in-memory tree standing in for the archive).
	skey, vkey, _ := tlog.GenerateKey("pecarchive.example.it/log")
	signer, _ := tlog.NewSigner(skey)
	tree := testonly.New(rfc6962.DefaultHasher)
	raw := []byte("the exact bytes of a PEC receipt")
	leaf := tlog.Leaf{Kind: tlog.KindMessage, SHA256: sha256.Sum256(raw), Time: time.Unix(1714979289, 0)}
	tree.AppendData([]byte("an earlier leaf"), leaf.Marshal(), []byte("a later leaf"))
	signed, _ := tlog.SignCheckpoint(signer, log.Checkpoint{Origin: "pecarchive.example.it/log", Size: 3, Hash: tree.Hash()})
	proof, _ := tree.InclusionProof(1, 3)

	// The auditor side: only vkey, signed, raw, the leaf time, the index and proof are needed.
	cp, err := tlog.VerifyCheckpoint(signed, vkey)
	if err != nil {
		fmt.Println("bad checkpoint:", err)
		return
	}
	mine := tlog.Leaf{Kind: tlog.KindMessage, SHA256: sha256.Sum256(raw), Time: time.Unix(1714979289, 0)}
	err = tlog.VerifyInclusion(tlog.LeafHash(mine.Marshal()), 1, cp.Size, proof, cp.Hash)
	fmt.Println("included:", err == nil)
	// Output: included: true
}

package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/pecarchive/pecarchive/pec/smime"
)

// verifierSources say where a signature verifier's trust comes from: `pecarchive inspect` takes
// them from --trust and --index, the archive (as a service or opened in-process) from
// PECARCHIVE_TRUST and PECARCHIVE_PROVIDER_INDEX.
type verifierSources struct {
	// Trust are PEM (or DER) files or folders of trust anchors added to the built-in ones;
	// TrustName names the setting in errors.
	Trust     []string
	TrustName string
	// Index is a provider index file (IGPEC LDIF, plain or signed .p7m); IndexName names the
	// setting in errors. A signed index is verified against the same anchors before use.
	Index     string
	IndexName string
}

// verifier builds the verifier: the built-in anchors plus Trust, and the provider index when one
// is named.
func (vs verifierSources) verifier() (*smime.Verifier, error) {
	anchors := smime.DefaultTrustStore()
	if len(vs.Trust) > 0 {
		extra, err := smime.LoadPEM(vs.Trust...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", vs.TrustName, err)
		}
		anchors = smime.Merge(anchors, extra)
	}
	cfg := smime.Config{Anchors: anchors}
	if vs.Index != "" {
		data, err := os.ReadFile(vs.Index)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", vs.IndexName, err)
		}
		if cfg.Index, err = smime.LoadIndex(data, &smime.IndexOptions{Anchors: anchors}); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", vs.IndexName, vs.Index, err)
		}
	}
	return smime.New(cfg)
}

// Settings of the archive's signature verifier, for the archive service and every command that
// opens the archive in-process:
//
//	PECARCHIVE_TRUST                PEM files or folders of trust anchors added to the built-in ones,
//	                                separated by the path-list separator (':')
//	PECARCHIVE_PROVIDER_INDEX       provider index (IGPEC LDIF, plain or signed .p7m, verified before
//	                                use): a signer must be listed and manage the From domain

// verifier returns the archive's signature verifier, or nil (the archive's default: the built-in
// anchors, no provider index) when neither setting is given.
func (s settings) verifier() (*smime.Verifier, error) {
	vs := verifierSources{TrustName: "PECARCHIVE_TRUST", Index: s.get("PECARCHIVE_PROVIDER_INDEX", ""), IndexName: "PECARCHIVE_PROVIDER_INDEX"}
	for _, p := range filepath.SplitList(s.get("PECARCHIVE_TRUST", "")) {
		if p != "" {
			vs.Trust = append(vs.Trust, p)
		}
	}
	if len(vs.Trust) == 0 && vs.Index == "" {
		return nil, nil
	}
	return vs.verifier()
}

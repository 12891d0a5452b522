package evidence_test

import (
	"testing"

	"github.com/pecarchive/pecarchive/evidence"
	"github.com/pecarchive/pecarchive/evidence/evidencetest"
)

// The tests of this package rewrite bundles with evidencetest's forging helpers.

type entry = evidencetest.Entry

func unzip(t testing.TB, data []byte) []entry                { return evidencetest.Unzip(t, data) }
func rezip(t testing.TB, entries []entry) []byte             { return evidencetest.Rezip(t, entries) }
func find(entries []entry, name string) int                  { return evidencetest.Find(entries, name) }
func manifestOf(t testing.TB, es []entry) *evidence.Manifest { return evidencetest.ManifestOf(t, es) }
func setManifest(t testing.TB, es []entry, m *evidence.Manifest) {
	evidencetest.SetManifest(t, es, m)
}
func reseal(t testing.TB, es []entry) []entry { return evidencetest.Reseal(t, es, true) }
func hasFailure(res *evidence.Result, kind, subject, detail string) bool {
	return evidencetest.HasFailure(res, kind, subject, detail)
}
func failures(res *evidence.Result) string { return evidencetest.Failures(res) }

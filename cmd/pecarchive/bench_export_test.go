package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
)

// bench export runs end to end on small bundles against the real PostgreSQL and prints each
// bundle's export, floor and verification figures and, last, the ratio.
func TestBenchExportSmall(t *testing.T) {
	pgEnv(t)
	var out strings.Builder
	err := runExportBench(context.Background(), exportBenchConfig{Sizes: []int{1, 10}, Rounds: 2, BigMB: 2}, &out)
	if err != nil {
		t.Fatalf("bench export: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, re := range []string{
		`(?m)^fill: 10 messages stored through the archive`,
		`(?m)^bundle of 1 message \(.*\): export [\d.]+ ms \(CPU [\d.]+ ms\), zip floor [\d.]+ ms \(CPU [\d.]+ ms\): floor/export \d+\.\d\d \(CPU \d+\.\d\d\)$`,
		`(?m)^bundle of 10 messages .*floor/export \d+\.\d\d \(CPU \d+\.\d\d\)$`,
		`(?m)^  verify-bundle: [\d.]+ ms on one core \(CPU [\d.]+ ms: \d+ messages/s per core\)`,
		`(?m)^bundle of one 2 MB message`,
		`(?m)^ratio: \d+\.\d\d\n$`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("output does not match %s:\n%s", re, text)
		}
	}
}

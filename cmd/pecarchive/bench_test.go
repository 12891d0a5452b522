package main

import (
	"regexp"
	"testing"
)

// The command list names every benchmark.
func TestBenchSummaryNamesEveryBenchmark(t *testing.T) {
	for name := range benchmarks {
		if !regexp.MustCompile(`\b` + name + `\b`).MatchString(benchSummary) {
			t.Errorf("bench %s is missing from the command list: %q", name, benchSummary)
		}
	}
}

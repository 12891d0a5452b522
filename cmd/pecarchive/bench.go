package main

import (
	"fmt"
	"io"
	"sort"
)

// benchSummary names the benchmarks in the command list; a test keeps it in step with benchmarks.
const benchSummary = "bench verify | archive | ingest | query | export (and bench rss CMD..., the peak RSS of a command)"

// benchmarks are the `pecarchive bench NAME` subcommands; each prints its figure next to the floor
// it is compared with, measured in the same run on the same machine.
var benchmarks = map[string]func(args []string, stdout, stderr io.Writer) int{}

func init() {
	register("bench", "measure a capability against its floor: "+benchSummary, runBench)
}

func runBench(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || benchmarks[args[0]] == nil {
		names := make([]string, 0, len(benchmarks))
		for n := range benchmarks {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(stderr, "usage: pecarchive bench %v [flags]\n", names)
		return exitUsage
	}
	return benchmarks[args[0]](args[1:], stdout, stderr)
}

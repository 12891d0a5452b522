// Package procstat reads a process's state and CPU time from /proc/PID/stat (Linux), for the
// benchmarks that report a server's CPU cost per operation and the tests that freeze a server.
// Where /proc does not exist, Read fails.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ErrFormat reports a /proc/PID/stat line that could not be read.
var ErrFormat = errors.New("procstat: bad /proc stat line")

// Stat is what Read returns.
type Stat struct {
	// State is the one-letter process state ('R', 'S', 'T' for stopped, ...).
	State byte
	// CPU is the user + system CPU time used so far.
	CPU time.Duration
}

// Stopped reports whether the process is stopped (by a signal or by tracing).
func (s Stat) Stopped() bool { return s.State == 'T' || s.State == 't' }

// userHZ is the clock-tick unit of /proc on Linux.
const userHZ = 100

// Read reads process pid's state and CPU time.
func Read(pid int) (Stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, err
	}
	return parse(b)
}

// CPUByName returns the CPU time used so far by every running process whose command name (the
// comm field, at most 15 bytes) is name, for example all of PostgreSQL's server processes.
// Processes that end between the listing and the read are skipped.
func CPUByName(name string) (time.Duration, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	want := []byte("(" + name + ")")
	var total time.Duration
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i, j := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if i < 0 || j < i || !bytes.Equal(b[i:j+1], want) {
			continue
		}
		if st, err := parse(b); err == nil {
			total += st.CPU
		}
	}
	return total, nil
}

func parse(b []byte) (Stat, error) {
	// The fields after the parenthesized command name (which may hold spaces and parentheses):
	// state first, utime and stime 12th and 13th.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, ErrFormat
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 || len(f[0]) != 1 {
		return Stat{}, ErrFormat
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return Stat{}, ErrFormat
	}
	return Stat{State: f[0][0], CPU: time.Duration(ut+st) * time.Second / userHZ}, nil
}

// Package procstat reads a process's state and CPU time from /proc/PID/stat and the machine's
// CPU time from /proc/stat (Linux), for the benchmarks that report a server's CPU cost per
// operation and how busy the machine was, and the tests that freeze a server. Where /proc does
// not exist, Read and ReadMachine fail.
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

// Machine is the CPU time of the whole machine so far, summed over its CPUs, from the first line
// of /proc/stat.
type Machine struct {
	// Busy is the time the CPUs ran anything: user, nice, system, irq and softirq time.
	Busy time.Duration
	// Idle is the time they were idle or waiting for I/O.
	Idle time.Duration
	// Steal is the time a hypervisor gave them to other guests.
	Steal time.Duration
}

// Sub returns the CPU time spent between earlier and m.
func (m Machine) Sub(earlier Machine) Machine {
	return Machine{Busy: m.Busy - earlier.Busy, Idle: m.Idle - earlier.Idle, Steal: m.Steal - earlier.Steal}
}

// Add returns the sum of the CPU times of m and o.
func (m Machine) Add(o Machine) Machine {
	return Machine{Busy: m.Busy + o.Busy, Idle: m.Idle + o.Idle, Steal: m.Steal + o.Steal}
}

// Total returns the CPU time of every kind.
func (m Machine) Total() time.Duration { return m.Busy + m.Idle + m.Steal }

// ReadMachine reads the machine's CPU time so far.
func ReadMachine() (Machine, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return Machine{}, err
	}
	return parseMachine(b)
}

func parseMachine(b []byte) (Machine, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	// cpu user nice system idle iowait irq softirq steal [guest guest_nice]; guest time is
	// already counted in user and nice.
	if len(f) < 9 || f[0] != "cpu" {
		return Machine{}, ErrFormat
	}
	var v [8]uint64
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return Machine{}, ErrFormat
		}
		v[i] = n
	}
	tick := func(n uint64) time.Duration { return time.Duration(n) * time.Second / userHZ }
	return Machine{
		Busy:  tick(v[0] + v[1] + v[2] + v[5] + v[6]),
		Idle:  tick(v[3] + v[4]),
		Steal: tick(v[7]),
	}, nil
}

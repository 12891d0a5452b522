package procstat

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestReadSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	s, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.Stopped() || s.State == 0 {
		t.Errorf("state %q for a running test", s.State)
	}
	if s.CPU < 0 {
		t.Errorf("CPU %v", s.CPU)
	}
	if _, err := Read(-1); err == nil {
		t.Error("Read(-1) succeeded")
	}
}

func TestCPUByName(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	self, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	total, err := CPUByName(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if total < self.CPU {
		t.Fatalf("CPUByName(%q) = %v, less than this process alone (%v)", strings.TrimSpace(string(b)), total, self.CPU)
	}
	if n, err := CPUByName("no-such-command-name"); err != nil || n != 0 {
		t.Fatalf("CPUByName(unknown) = %v, %v", n, err)
	}
}

func TestParseMachine(t *testing.T) {
	m, err := parseMachine([]byte("cpu  100 5 40 200 10 1 2 3 0 0\ncpu0 50 2 20 100 5 0 1 1 0 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Machine{Busy: 1480 * time.Millisecond, Idle: 2100 * time.Millisecond, Steal: 30 * time.Millisecond}
	if m != want {
		t.Errorf("got %+v, want %+v", m, want)
	}
	for _, bad := range []string{"", "intr 1 2 3", "cpu 1 2 3", "cpu 1 2 3 4 5 6 7 x"} {
		if _, err := parseMachine([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if _, err := ReadMachine(); err != nil {
		t.Skipf("no /proc/stat here: %v", err)
	}
}

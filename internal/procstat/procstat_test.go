package procstat

import (
	"os"
	"runtime"
	"strings"
	"testing"
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

package procstat

import (
	"os"
	"runtime"
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

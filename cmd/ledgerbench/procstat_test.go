package main

import (
	"os"
	"runtime"
	"testing"
)

func TestParseStat(t *testing.T) {
	t.Parallel()
	// Fields 14..17 (utime, stime, cutime, cstime) are 1234 56 7 8.
	const tail = " 0 1234 56 7 8 20 0 9 0 4242 1000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0\n"
	for _, tc := range []struct {
		name    string
		text    string
		want    procStat
		wantErr bool
	}{
		{
			name: "ledgerd",
			text: "4242 (ledgerd) S 1 4242 4242 0 -1 4194560 1000 0 0" + tail,
			want: procStat{ppid: 1, utime: 1234, stime: 56, cutime: 7, cstime: 8},
		},
		{
			name: "comm with spaces and parentheses",
			text: "77 (postgres: (x) y) R 4242 77 77 0 -1 4194560 1000 0 0" + tail,
			want: procStat{ppid: 4242, utime: 1234, stime: 56, cutime: 7, cstime: 8},
		},
		{name: "truncated", text: "4242 (ledgerd) S 1 4242 4242 0 -1 4194560 1000 0 0 0 1234 56", wantErr: true},
		{name: "no comm", text: "4242 ledgerd S 1", wantErr: true},
		{name: "not a number", text: "4242 (ledgerd) S 1 4242 4242 0 -1 4194560 1000 0 0 0 x 56 7 8 20", wantErr: true},
		{name: "empty", text: "", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseStat([]byte(tc.text))
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseStat = %+v, %v; want error %v", got, err, tc.wantErr)
			}
			if !tc.wantErr && got != tc.want {
				t.Errorf("parseStat = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestCPUPer1000(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		ticks  int64
		clkTck int
		ops    int64
		want   float64
		wantOK bool
	}{
		{"100 Hz", 250, 100, 5000, 0.5, true},
		{"1000 Hz", 250, 1000, 5000, 0.05, true},
		{"idle", 0, 100, 10, 0, true},
		{"no operations", 10, 100, 0, 0, false},
		{"clock went backwards", -1, 100, 10, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := cpuPer1000(tc.ticks, tc.clkTck, tc.ops)
			if ok != tc.wantOK || got != tc.want {
				t.Errorf("cpuPer1000(%d, %d, %d) = %v, %v; want %v, %v", tc.ticks, tc.clkTck, tc.ops, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// TestProcessCPU reads this very process, which has used some CPU by now.
func TestProcessCPU(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	t.Parallel()
	if _, err := processCPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	total, err := treeCPU(os.Getppid())
	if err != nil {
		t.Fatal(err)
	}
	own, err := processCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if total < own {
		t.Errorf("CPU of the parent's tree %d < this child's %d", total, own)
	}
}

// FuzzParseStat: no /proc/<pid>/stat text may panic the parser.
func FuzzParseStat(f *testing.F) {
	f.Add("4242 (ledgerd) S 1 4242 4242 0 -1 4194560 1000 0 0 0 1234 56 7 8 20 0 9 0")
	f.Add("1 ()) R 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0")
	f.Fuzz(func(_ *testing.T, text string) { _, _ = parseStat([]byte(text)) })
}

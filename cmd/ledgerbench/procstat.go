package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// procStat is what ledgerbench needs from /proc/<pid>/stat, times in clock
// ticks (see getconf CLK_TCK).
type procStat struct {
	ppid           int
	utime, stime   int64 // this process, user and system
	cutime, cstime int64 // its children that exited and were waited for
}

// parseStat reads the text of /proc/<pid>/stat (proc(5)): "pid (comm) state
// ppid ...", where utime and stime are fields 14 and 15, cutime and cstime
// 16 and 17. comm may hold spaces and parentheses, so the fields are
// counted from the last ')'.
func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("stat: no ')' after comm")
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3 (state)
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("stat: %d fields after comm, want at least 15", len(f))
	}
	var s procStat
	var err error
	if s.ppid, err = strconv.Atoi(string(f[1])); err != nil {
		return procStat{}, fmt.Errorf("stat: ppid: %w", err)
	}
	for _, v := range []struct {
		field int
		dst   *int64
	}{{14, &s.utime}, {15, &s.stime}, {16, &s.cutime}, {17, &s.cstime}} {
		if *v.dst, err = strconv.ParseInt(string(f[v.field-3]), 10, 64); err != nil {
			return procStat{}, fmt.Errorf("stat: field %d: %w", v.field, err)
		}
	}
	return s, nil
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

// processCPU is the CPU time, in ticks, that process pid has used so far.
func processCPU(pid int) (int64, error) {
	s, err := readStat(pid)
	return s.utime + s.stime, err
}

// treeCPU is the CPU time, in ticks, used so far by process pid and its
// children: its own time, the live children's, and that of the children it
// has already reaped. For the PostgreSQL postmaster this covers every
// backend and background process, including backends that came and went.
func treeCPU(pid int) (int64, error) {
	root, err := readStat(pid)
	if err != nil {
		return 0, err
	}
	total := root.utime + root.stime + root.cutime + root.cstime
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		s, err := readStat(child)
		if err != nil || s.ppid != pid {
			continue // gone since the listing, or not a child
		}
		total += s.utime + s.stime
	}
	return total, nil
}

// cpuPer1000 is CPU seconds per 1,000 operations from a tick delta.
func cpuPer1000(ticks int64, clkTck int, ops int64) (float64, bool) {
	if ops <= 0 || clkTck <= 0 || ticks < 0 {
		return 0, false
	}
	return float64(ticks) / float64(clkTck) / float64(ops) * 1000, true
}

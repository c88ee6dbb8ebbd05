package csi

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// sessionServers lists the live processes of session sid (other than sid
// itself) whose command line names dir or a file next to it.
func sessionServers(sid int, dir string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil || c == sid {
			continue
		}
		if st, ok := procStat(c); ok && st.session == sid && st.state != 'Z' && st.state != 'X' && namesDir(c, dir) {
			out = append(out, c)
		}
	}
	return out
}

// namesDir reports whether pid's command line names dir or a file in
// dir's parent. JuiceFS (gspt) rewrites its process title to its
// arguments joined by spaces and may cut the end, where dir is; the
// metadata URL file next to dir comes earlier.
func namesDir(pid int, dir string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	cmdline := string(b)
	return strings.Contains(cmdline, dir) || strings.Contains(cmdline, filepath.Dir(dir)+string(filepath.Separator))
}

// procInfo is what /proc/PID/stat tells of a process.
type procInfo struct {
	state   byte
	ppid    int
	session int
	start   uint64 // field 22, clock ticks since boot
}

// procStat reads /proc/PID/stat.
func procStat(pid int) (procInfo, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procInfo{}, false
	}
	return parseProcStat(string(b))
}

// parseProcStat parses a /proc/PID/stat line: "pid (comm) state ppid pgrp
// session ... starttime ..."; comm may hold spaces and parentheses.
func parseProcStat(s string) (procInfo, bool) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procInfo{}, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); starttime is field 22, f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return procInfo{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	sid, err2 := strconv.Atoi(f[3])
	start, err3 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return procInfo{}, false
	}
	return procInfo{state: f[0][0], ppid: ppid, session: sid, start: start}, true
}

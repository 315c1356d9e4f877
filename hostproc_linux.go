package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// hostProcess names the process that ran this hook: the nearest ancestor
// that is not a shell, as "PID:start", its start in clock ticks since
// boot from /proc (field 22 of its stat), which with the PID names one
// process for as long as the machine runs. Empty when /proc cannot say.
// A host runs a hook command through a shell (sh -c), which may or may
// not exec the command: the shell is skipped either way, up to a few.
func hostProcess() string {
	pid := os.Getppid()
	for range 4 {
		comm, ppid, start, ok := procStat(pid)
		if !ok {
			return ""
		}
		if !isShell(comm) || ppid <= 1 {
			return strconv.Itoa(pid) + ":" + start
		}
		pid = ppid
	}
	return ""
}

// procStat reads a process's command name, parent and start time from
// /proc/PID/stat.
func procStat(pid int) (comm string, ppid int, start string, ok bool) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, "", false
	}
	open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return "", 0, "", false
	}
	fields := strings.Fields(string(stat[end+1:]))
	const ppidField, startField = 4 - 3, 22 - 3 // fields[0] is field 3
	if len(fields) <= startField {
		return "", 0, "", false
	}
	ppid, err = strconv.Atoi(fields[ppidField])
	if err != nil {
		return "", 0, "", false
	}
	return string(stat[open+1 : end]), ppid, fields[startField], true
}

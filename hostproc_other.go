//go:build !linux

package main

import (
	"os"
	"strconv"

	"github.com/shirou/gopsutil/v4/process"
)

// hostProcess names the process that ran this hook: the nearest ancestor
// that is not a shell, as "PID:start", its creation time in milliseconds,
// which with the PID names one process for as long as the machine runs.
// Empty when the OS cannot say. See hostproc_linux.go.
func hostProcess() string {
	pid := int32(os.Getppid())
	for range 4 {
		p, err := process.NewProcess(pid)
		if err != nil {
			return ""
		}
		created, err := p.CreateTime()
		if err != nil {
			return ""
		}
		name, _ := p.Name()
		ppid, _ := p.Ppid()
		if !isShell(name) || ppid <= 1 {
			return strconv.Itoa(int(pid)) + ":" + strconv.FormatInt(created, 10)
		}
		pid = ppid
	}
	return ""
}

package demo

import "syscall"

// sysProcAttr puts each program in its own process group, so that a
// Ctrl-C in the terminal reaches the demo only (which stops them in
// order), and has the kernel stop it should the demo die.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

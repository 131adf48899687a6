//go:build !linux

package demo

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }

//go:build !linux

package dnsserver

import "syscall"

func reusePort(network, address string, c syscall.RawConn) error { return nil }

const canReusePort = false

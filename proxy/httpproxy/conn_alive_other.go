//go:build !linux

package httpproxy

import (
	"errors"
	"net"
	"syscall"
)

func connAlive(net.Conn) bool { return true }

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

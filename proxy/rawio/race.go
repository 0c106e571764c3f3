//go:build race && unix

package rawio

import (
	"runtime"
	"unsafe"
)

// The race detector learns of a raw read or write as it learns of
// syscall.Read and Write's: the bytes read are written to the buffer, the
// bytes written are read from it, and a write happens before the read that
// receives it (through one shared address, as package syscall's ioSync).
// Without this, -race would miss a buffer reused while the kernel fills it,
// and report data handed over a socket between goroutines of one process.

var ioSync int64

func raceRead(p []byte, n int, ok bool) {
	if n > 0 {
		runtime.RaceWriteRange(unsafe.Pointer(&p[0]), n)
	}
	if ok {
		runtime.RaceAcquire(unsafe.Pointer(&ioSync))
	}
}

func raceWriteStart() { runtime.RaceReleaseMerge(unsafe.Pointer(&ioSync)) }

func raceWrote(p []byte, n int) {
	if n > 0 {
		runtime.RaceReadRange(unsafe.Pointer(&p[0]), n)
	}
}

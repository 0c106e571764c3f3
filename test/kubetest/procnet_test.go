package kubetest

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// listeningSockets maps the inode of every listening TCP socket (IPv4 and
// IPv6) in this network namespace to its port, from /proc/net/tcp{,6}.
func listeningSockets() map[string]int {
	out := make(map[string]int)
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" { // 0A is TCP_LISTEN
				continue
			}
			_, portHex, ok := strings.Cut(fields[1], ":")
			if !ok {
				continue
			}
			port, err := strconv.ParseUint(portHex, 16, 16)
			if err == nil {
				out[fields[9]] = int(port)
			}
		}
		f.Close()
	}
	return out
}

// listeningPorts lists the TCP ports pid listens on: its socket fds matched
// against the listening sockets.
func listeningPorts(pid int, listening map[string]int) []int {
	fds, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "fd", "*"))
	var ports []int
	for _, fd := range fds {
		link, err := os.Readlink(fd)
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		inode := strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")
		if port, ok := listening[inode]; ok {
			ports = append(ports, port)
		}
	}
	return ports
}

// portOwners lists the processes listening on port.
func portOwners(port int) []int {
	listening := listeningSockets()
	entries, _ := os.ReadDir("/proc")
	var owners []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		for _, p := range listeningPorts(pid, listening) {
			if p == port {
				owners = append(owners, pid)
				break
			}
		}
	}
	return owners
}

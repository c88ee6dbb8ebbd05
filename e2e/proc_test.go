package e2e

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// processTree returns root and every descendant process of root, from
// /proc/<pid>/stat.
func processTree(root int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		if pp, err := strconv.Atoi(f[1]); err == nil {
			parent[pid] = pp
		}
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		for pid, pp := range parent {
			if pp == out[i] {
				out = append(out, pid)
			}
		}
	}
	return out
}

// socketInodes returns the inodes of the sockets pid has open.
func socketInodes(pid int) map[string]bool {
	out := map[string]bool{}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if in, ok := strings.CutPrefix(l, "socket:["); ok {
			out[strings.TrimSuffix(in, "]")] = true
		}
	}
	return out
}

// tcpListen is a listening TCP socket from /proc/net/tcp{,6}.
type tcpListen struct {
	addr  string // host:port as bound
	inode string
}

// listeningSockets lists the listening TCP sockets of pid's network
// namespace.
func listeningSockets(pid int) ([]tcpListen, error) {
	var out []tcpListen
	for _, name := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, name))
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			if len(fl) < 10 || fl[3] != "0A" { // 0A: TCP_LISTEN
				continue
			}
			addr, err := procAddr(fl[1])
			if err != nil {
				f.Close()
				return nil, err
			}
			out = append(out, tcpListen{addr: addr, inode: fl[9]})
		}
		f.Close()
	}
	return out, nil
}

// procAddr decodes /proc/net/tcp's "0100007F:1F90" (address words in host
// byte order, little-endian here).
func procAddr(s string) (string, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return "", fmt.Errorf("bad address %q", s)
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return "", fmt.Errorf("bad address %q", s)
	}
	for i := 0; i+4 <= len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return "", fmt.Errorf("bad port in %q", s)
	}
	return net.JoinHostPort(net.IP(raw).String(), strconv.Itoa(int(port))), nil
}

// tcpListenersOf returns the addresses every process in pids listens on,
// rewritten so they can be dialled (a wildcard address becomes loopback).
func tcpListenersOf(pids []int) ([]string, error) {
	if len(pids) == 0 {
		return nil, nil
	}
	socks, err := listeningSockets(pids[0])
	if err != nil {
		return nil, err
	}
	mine := map[string]bool{}
	for _, pid := range pids {
		for in := range socketInodes(pid) {
			mine[in] = true
		}
	}
	var out []string
	for _, s := range socks {
		if !mine[s.inode] {
			continue
		}
		host, port, _ := net.SplitHostPort(s.addr)
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		out = append(out, net.JoinHostPort(host, port))
	}
	return out, nil
}

// pidListeningOn returns the process that holds the listening socket on
// addr (host:port), or 0.
func pidListeningOn(addr string) int {
	socks, err := listeningSockets(os.Getpid())
	if err != nil {
		return 0
	}
	var inode string
	for _, s := range socks {
		if s.addr == addr {
			inode = s.inode
		}
	}
	if inode == "" {
		return 0
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if socketInodes(pid)[inode] {
			return pid
		}
	}
	return 0
}

// fadviseDontNeed drops fd's clean cached pages.
func fadviseDontNeed(fd int) error { return unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED) }

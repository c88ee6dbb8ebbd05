package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

type peerSide struct {
	Name           string  `json:"name"`
	MBs            float64 `json:"mb_s"`
	ServerCPUPerGB float64 `json:"server_cpu_seconds_per_gb"`
	ClientCPUPerGB float64 `json:"client_cpu_seconds_per_gb"`
}

// peerBench: one reader pulling warm 4 MiB blocks from one cache node
// process over loopback, against a plain Go TCP copy of the same bytes
// between two processes; throughput and CPU seconds per GB on both sides.
func peerBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("peer", flag.ContinueOnError)
	bin := fs.String("bin", "bin", "directory with the cachenode and csi binaries")
	dur := fs.Duration("duration", 5*time.Second, "how long each side reads")
	jsonOut := fs.String("json", "", "write results as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	d, err := deploy(ctx, *bin, 64<<20, 1)
	if err != nil {
		return err
	}
	defer d.close()
	ns, keys := d.nodes, d.keys
	c, err := ns[0].Client()
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Warm(ctx, "models", keys); err != nil {
		return err
	}
	// The ring: read warm blocks round robin.
	ringSide, err := measure("cache node (peer Read over the data plane)", ns[0].Pid(), *dur, func(i int) (int, error) {
		b, _, err := c.Read(ctx, "models", keys[i%len(keys)], 0, -1)
		return len(b), err
	})
	if err != nil {
		return err
	}
	// The baseline: a plain TCP server process sending 4 MiB per request.
	srv := exec.CommandContext(ctx, self, "tcp-serve")
	stdout, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	line := make([]byte, 64)
	n, _ := stdout.Read(line)
	addr := strings.TrimSpace(string(line[:n]))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	buf := make([]byte, 4<<20)
	tcpSide, err := measure("plain TCP copy (baseline)", srv.Process.Pid, *dur, func(int) (int, error) {
		if _, err := conn.Write([]byte{1}); err != nil {
			return 0, err
		}
		return io.ReadFull(conn, buf)
	})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "side\tMB/s\tvs. TCP\tserver CPU s/GB\treader CPU s/GB\t")
	for _, s := range []peerSide{ringSide, tcpSide} {
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%.3f\t%.3f\t\n", s.Name, s.MBs, s.MBs/tcpSide.MBs, s.ServerCPUPerGB, s.ClientCPUPerGB)
	}
	tw.Flush()
	return writeJSON(*jsonOut, []peerSide{ringSide, tcpSide})
}

// measure runs read for d and returns throughput and the CPU time both
// processes spent per GB.
func measure(name string, serverPid int, d time.Duration, read func(i int) (int, error)) (peerSide, error) {
	s0, err := procCPU(serverPid)
	if err != nil {
		return peerSide{}, err
	}
	c0 := selfCPU()
	start := time.Now()
	var total int64
	for i := 0; time.Since(start) < d; i++ {
		n, err := read(i)
		if err != nil {
			return peerSide{}, err
		}
		total += int64(n)
	}
	secs := time.Since(start).Seconds()
	s1, err := procCPU(serverPid)
	if err != nil {
		return peerSide{}, err
	}
	gb := float64(total) / 1e9
	return peerSide{Name: name, MBs: float64(total) / secs / 1e6,
		ServerCPUPerGB: (s1 - s0) / gb, ClientCPUPerGB: (selfCPU() - c0) / gb}, nil
}

// procCPU is a process's user+system CPU seconds from /proc.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, nil // USER_HZ is 100 on Linux
}

func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// tcpServe is the baseline's server process: it prints its address and
// answers every byte it reads with 4 MiB.
func tcpServe() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(l.Addr().String())
	data := make([]byte, 4<<20)
	rand.Read(data)
	binary.LittleEndian.PutUint32(data, 1)
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			req := make([]byte, 1)
			for {
				if _, err := io.ReadFull(c, req); err != nil {
					return
				}
				if _, err := c.Write(data); err != nil {
					return
				}
			}
		}()
	}
}

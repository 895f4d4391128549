package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// udpPort is where the demo's dns Service's UDP port 53 listens: mapped,
// so that no root is needed.
const udpPort = 8053

// udp is scenario 9: UDP through the relay (kubefwd svc --relay), which
// kubectl port-forward cannot carry at all, so there is no kubectl column:
// a warm flow's round trip, a new flow's first round trip (it opens a
// stream to the relay), and a flow's throughput with a window of
// datagrams in flight, against the demo's dns pod's UDP echo.
func (b *bench) udp(ctx context.Context) ([]Result, error) {
	perRun, flows, window, dur := 500, 50, 32, 5*time.Second
	if b.quick {
		perRun, flows, dur = 100, 10, 2*time.Second
	}
	kf, hostsPath, err := b.startKubefwd("udp", "-n", "demo", "--relay", "--relay-image", "kubefwd/relay:bench", "-m", "53:"+strconv.Itoa(udpPort))
	if err != nil {
		return nil, err
	}
	defer kf.stop()
	addr, err := waitAnswer(ctx, hostsPath, "dns", udpPort, 90*time.Second, func(addr string) error {
		_, err := udpRoundTrips(addr, 1)
		return err
	})
	if err != nil {
		return nil, err
	}
	warmP50 := newResult("9 UDP through the relay (kubectl cannot)", "round trip, warm flow, p50 ms", reported)
	warmP99 := newResult("9 UDP through the relay (kubectl cannot)", "round trip, warm flow, p99 ms", reported)
	cold := newResult("9 UDP through the relay (kubectl cannot)", "first round trip of a new flow, p50 ms", reported)
	tput := newResult("9 UDP through the relay (kubectl cannot)", "one flow, 1,200-byte datagrams, 32 in flight, MB/s", reported)
	lost := newResult("9 UDP through the relay (kubectl cannot)", "of those, datagrams lost, %", reported)
	for range b.pairs {
		rtts, err := udpRoundTrips(addr, perRun)
		if err != nil {
			return nil, err
		}
		warmP50.Kubefwd = append(warmP50.Kubefwd, percentile(rtts, 50))
		warmP99.Kubefwd = append(warmP99.Kubefwd, percentile(rtts, 99))
		var firsts []float64
		for range flows {
			ms, err := udpRoundTrips(addr, 1)
			if err != nil {
				return nil, err
			}
			firsts = append(firsts, ms...)
		}
		cold.Kubefwd = append(cold.Kubefwd, percentile(firsts, 50))
		mbps, lostPct, err := udpThroughput(addr, 1200, window, dur)
		if err != nil {
			return nil, err
		}
		tput.Kubefwd = append(tput.Kubefwd, mbps)
		lost.Kubefwd = append(lost.Kubefwd, lostPct)
	}
	warmP50.Note = fmt.Sprintf("%d round trips per run on one flow (its first not counted); %d new flows per run, each from a new client port", perRun, flows)
	tput.Note = fmt.Sprintf("%s per run; a datagram not answered within 1 s counts as lost", dur)
	return []Result{warmP50, warmP99, cold, tput, lost}, nil
}

// udpRoundTrips opens a flow (a new client socket) and times n round trips
// on it, one after the other, in ms; with n > 1 the first (which opens the
// flow) is left out.
func udpRoundTrips(addr string, n int) ([]float64, error) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	buf := make([]byte, 2048)
	var ms []float64
	rounds := n
	if n > 1 {
		rounds++
	}
	for i := range rounds {
		msg := []byte("ping " + strconv.Itoa(i))
		start := time.Now()
		if _, err := conn.Write(msg); err != nil {
			return nil, err
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := conn.Read(buf)
		if err != nil {
			return nil, fmt.Errorf("round trip %d: %w", i, err)
		}
		if !strings.HasSuffix(string(buf[:got]), " "+string(msg)) {
			return nil, fmt.Errorf("round trip %d: answered %q", i, buf[:got])
		}
		if n > 1 && i == 0 {
			continue
		}
		ms = append(ms, float64(time.Since(start).Microseconds())/1000)
	}
	return ms, nil
}

// udpThroughput keeps window datagrams of size bytes in flight on one flow
// for dur, and returns the echoed payload's MB/s and the share of
// datagrams lost.
func udpThroughput(addr string, size, window int, dur time.Duration) (mbps, lostPct float64, err error) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	if _, err := udpRoundTrips(addr, 1); err != nil { // the relay and its tunnel are warm
		return 0, 0, err
	}
	payload := make([]byte, size)
	buf := make([]byte, size+256)
	var sent, got int
	var bytes int64
	start := time.Now()
	for time.Since(start) < dur {
		for range window {
			if _, err := conn.Write(payload); err != nil {
				return 0, 0, err
			}
			sent++
		}
		for range window {
			_ = conn.SetReadDeadline(time.Now().Add(time.Second))
			n, err := conn.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // the rest of this window is lost
				}
				return 0, 0, err
			}
			got++
			bytes += int64(min(n, size))
		}
	}
	elapsed := time.Since(start).Seconds()
	return float64(bytes) / elapsed / 1e6, 100 * float64(sent-got) / float64(sent), nil
}

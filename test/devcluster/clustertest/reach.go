package clustertest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubefwd/kubefwd/test/devcluster/cluster"
)

// Buffer collects a process's output; safe to read while it is written.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// HostsAddr is the address the hosts file at path gives name, or "".
func HostsAddr(path, name string) string {
	data, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		for i := 1; i < len(f); i++ {
			if f[i] == name {
				return f[0]
			}
		}
	}
	return ""
}

// Get makes one HTTP request to addr:port on a fresh connection and returns
// the body (the devcluster's backends answer "pod=NS/NAME port=P").
func Get(addr string, port int) (string, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(fmt.Sprintf("http://%s/", net.JoinHostPort(addr, fmt.Sprint(port))))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// WaitAnswers waits until name is in the hosts file at hostsPath and its
// port 80 answers from a pod of namespace, and returns how long that took.
// On failure it shows the hosts file and logs.
func WaitAnswers(t testing.TB, hostsPath, name, namespace string, logs ...fmt.Stringer) time.Duration {
	t.Helper()
	start := time.Now()
	err := cluster.Poll(context.Background(), 30*time.Second, func(context.Context) (bool, error) {
		addr := HostsAddr(hostsPath, name)
		if addr == "" {
			return false, nil
		}
		body, err := Get(addr, 80)
		return err == nil && strings.HasPrefix(body, "pod="+namespace+"/"), nil
	})
	if err != nil {
		data, _ := os.ReadFile(hostsPath)
		var out strings.Builder
		for _, l := range logs {
			out.WriteString(l.String())
		}
		t.Fatalf("%s never answered from namespace %s; hosts:\n%s\nlogs:\n%s", name, namespace, data, out.String())
	}
	return time.Since(start)
}
